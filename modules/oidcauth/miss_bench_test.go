package oidcauth

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/go-jose/go-jose/v4"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// BenchmarkMiss takes a token-cache miss apart: the whole handler on a hit
// and on a miss (a pool of distinct tokens larger than the cache, as the
// load harness's chain-fresh sends them), go-oidc's raw Verify of the same
// tokens as the baseline, and each stage of the miss on its own. Instruction
// counts are the repeatable figure on a shared machine:
//
//	go test -c -o /tmp/oidc.test ./modules/oidcauth
//	valgrind --tool=callgrind /tmp/oidc.test -test.run '^$' -test.bench 'Miss/stage' -test.benchtime 200x
//
// (run it with two -test.benchtime counts and divide the difference in
// instructions by the difference in iterations).
func BenchmarkMiss(b *testing.B) {
	iss := startIssuer(b)
	const poolSize = 1024
	pool := make([]string, poolSize)
	for i := range pool {
		pool[i] = iss.MustMint(iss.AccessClaims(fmt.Sprintf("bench-user-%06d", i), "connector-api", devidp.Claims{
			"exp": time.Now().Add(time.Hour).Unix(), "scope": "contacts:read contacts:pii", "tenant_id": "acme",
		}))
	}
	tok := pool[0]
	ctx := context.Background()

	b.Run("go-oidc-raw-verify", func(b *testing.B) {
		v := rawVerifier(iss, staticKeys(iss))
		measure(b, func(i int) error { _, err := v.Verify(ctx, pool[i%poolSize]); return err })
	})
	handler := func(b *testing.B, m *OIDCAuth, tokens []string) {
		if s := serve(b, m, tokens[0]); s.next.called != 1 { // loads the keys
			b.Fatalf("refused: %s", s.resp.Body)
		}
		req := httptest.NewRequest(http.MethodGet, "/contacts", nil)
		next := &recordingNext{}
		w := httptest.NewRecorder()
		measure(b, func(i int) error {
			r := req.Clone(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
			r.Header["Authorization"] = []string{"Bearer " + tokens[i%len(tokens)]}
			if err := m.ServeHTTP(w, r, next); err != nil || w.Code != http.StatusOK {
				return fmt.Errorf("refused: %v %d", err, w.Code)
			}
			return nil
		})
	}
	b.Run("handler-hit", func(b *testing.B) {
		handler(b, newHandler(b, iss, nil), pool[:1])
	})
	b.Run("handler-miss", func(b *testing.B) {
		handler(b, newHandler(b, iss, func(m *OIDCAuth) { m.CacheSize = 256 }), pool)
	})

	// The stages of a miss, each on its own.
	m := newHandler(b, iss, func(m *OIDCAuth) { m.CacheSize = 256 })
	if s := serve(b, m, tok); s.next.called != 1 {
		b.Fatalf("refused: %s", s.resp.Body)
	}
	var is *issuer
	for _, v := range m.issuers {
		is = v
	}
	pre, err := parseToken(tok)
	if err != nil {
		b.Fatal(err)
	}
	keys, _, err := is.keys.lookup(ctx, pre.kid, pre.alg)
	if err != nil {
		b.Fatal(err)
	}
	rsaKey := keys[0].jwk.Key.(*rsa.PublicKey)
	signingInput := tok[:strings.LastIndexByte(tok, '.')]
	sig, _ := base64.RawURLEncoding.DecodeString(tok[len(signingInput)+1:])
	algs := []jose.SignatureAlgorithm{jose.RS256, jose.ES256}
	stage := func(name string, f func(i int) error) {
		b.Run("stage/"+name, func(b *testing.B) { measure(b, f) })
	}
	stage("cache-key", func(i int) error { _ = tokenCacheKey(pool[i%poolSize]); return nil })
	stage("parseToken", func(i int) error { _, err := parseToken(pool[i%poolSize]); return err })
	stage("precheck", func(int) error { _, err := m.precheck(pre, time.Now()); return err })
	stage("keys.lookup", func(int) error { _, _, err := is.keys.lookup(ctx, pre.kid, pre.alg); return err })
	stage("verifySignature", func(int) error { _, err := verifySignature(pre, keys); return err })
	// The alternative: parse once with go-jose and verify with it, with
	// crypto/rsa as go-jose calls it, and with the precomputed modulus.
	stage("go-jose-once", func(i int) error {
		jws, err := jose.ParseSignedCompact(pool[i%poolSize], algs)
		if err != nil {
			return err
		}
		_, err = jws.Verify(&keys[0].jwk)
		return err
	})
	stage("go-jose-once-precomputed", func(i int) error {
		jws, err := jose.ParseSignedCompact(pool[i%poolSize], algs)
		if err != nil {
			return err
		}
		_, err = jws.Verify(opaqueRSA{keys[0].rsa})
		return err
	})
	stage("jose.ParseSigned", func(i int) error { _, err := jose.ParseSigned(pool[i%poolSize], algs); return err })
	stage("jose.ParseSignedCompact", func(i int) error {
		_, err := jose.ParseSignedCompact(pool[i%poolSize], algs)
		return err
	})
	parsed, _ := jose.ParseSignedCompact(tok, algs)
	stage("jose.Verify", func(int) error { _, err := parsed.Verify(&keys[0].jwk); return err })
	stage("sha256", func(int) error { _ = sha256.Sum256([]byte(signingInput)); return nil })
	stage("rsa.VerifyPKCS1v15", func(int) error {
		h := sha256.Sum256([]byte(signingInput))
		return rsa.VerifyPKCS1v15(rsaKey, crypto.SHA256, h[:], sig)
	})
	stage("rsaPKCS1Key.verify", func(int) error {
		h := sha256.Sum256([]byte(signingInput))
		return keys[0].rsa.verify(crypto.SHA256, h[:], sig)
	})
	stage("identity+placeholders", func(int) error { _ = newPlaceholders(m.newIdentity(pre, is)); return nil })
	c := newTokenCache(256)
	stage("cache.put", func(i int) error {
		c.put(&cacheEntry{key: cacheKey{byte(i), byte(i >> 8), byte(i >> 16)}, expires: time.Now().Add(time.Hour)})
		return nil
	})
}

// measure runs f(0), f(1), ... in b.Loop between two calls of
// instructionMark, where scripts/bench-instructions has callgrind count the
// loop's instructions and nothing else.
func measure(b *testing.B, f func(i int) error) {
	b.ReportAllocs()
	instructionMark()
	for i := 0; b.Loop(); i++ {
		if err := f(i); err != nil {
			b.Fatal(err)
		}
	}
	instructionMark()
}

// instructionMark does nothing. It is never inlined, so callgrind sees every
// call, and it never grows the stack (a function that does is entered twice,
// once before and once after runtime.morestack).
//
//go:noinline
//go:nosplit
func instructionMark() {}

// opaqueRSA lets go-jose verify with a precomputed RSA key.
type opaqueRSA struct{ k *rsaPKCS1Key }

func (o opaqueRSA) VerifyPayload(payload, sig []byte, alg jose.SignatureAlgorithm) error {
	if alg != jose.RS256 {
		return errBadSignature
	}
	h := sha256.Sum256(payload)
	return o.k.verify(crypto.SHA256, h[:], sig)
}
