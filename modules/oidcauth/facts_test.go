package oidcauth

// Regression tests for the dependency behaviour this package is designed
// around, each citing its upstream source: go-oidc v3.21.0 (oidc/verify.go,
// oidc/jwks.go) and go-jose v4.1.9 (jws.go, encoding.go). If one fails after an upgrade, re-read the
// design note next to it before changing the test.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// countingKeySet counts how often go-oidc asks for a signature check.
type countingKeySet struct {
	inner oidc.KeySet
	calls atomic.Int64
}

func (c *countingKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	c.calls.Add(1)
	return c.inner.VerifySignature(ctx, jwt)
}

func rawVerifier(iss *devidp.Issuer, ks oidc.KeySet) *oidc.IDTokenVerifier {
	return oidc.NewVerifier(iss.URL, ks, &oidc.Config{ClientID: "connector-api", SupportedSigningAlgs: []string{"RS256", "ES256"}})
}

func staticKeys(iss *devidp.Issuer) *oidc.StaticKeySet {
	return &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{iss.KeyFor("RS256").Signer.Public(), iss.KeyFor("ES256").Signer.Public()}}
}

// Fact: Verify checks the signature (and so may fetch keys) before iss, aud
// and exp. Design: precheck runs all claim checks before any key lookup.
func TestFactGoOIDCVerifiesSignatureBeforeClaims(t *testing.T) {
	iss := startIssuer(t)
	ks := &countingKeySet{inner: staticKeys(iss)}
	v := rawVerifier(iss, ks)
	for _, c := range []devidp.Claims{
		{"exp": time.Now().Add(-time.Hour).Unix()},
		{"iss": "https://other.example"},
		{"aud": "other-api"},
	} {
		tok := iss.MustMint(iss.AccessClaims("u", "connector-api", c))
		if _, err := v.Verify(context.Background(), tok); err == nil {
			t.Fatal("go-oidc accepted a bad token")
		}
	}
	if n := ks.calls.Load(); n != 3 {
		t.Fatalf("go-oidc consulted the key set %d times for 3 tokens with bad claims; oidc/verify.go checks the signature before the claims, so 3 were expected", n)
	}
}

// Fact: iat is never checked, nbf has a fixed 5-minute leeway, exp as a
// JSON string is accepted. Design: checkTimes and numericDate do their own.
func TestFactGoOIDCClaimGaps(t *testing.T) {
	iss := startIssuer(t)
	v := rawVerifier(iss, staticKeys(iss))
	now := time.Now()
	for name, c := range map[string]devidp.Claims{
		"iat in the future": {"iat": now.Add(time.Hour).Unix()},
		"nbf in 4 minutes":  {"nbf": now.Add(4 * time.Minute).Unix()},
		"exp as a string":   {"exp": "9999999999"},
	} {
		tok := iss.MustMint(iss.AccessClaims("u", "connector-api", c))
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Errorf("%s: go-oidc now refuses it (%v); oidc/verify.go accepted it before", name, err)
		}
		if pt, err := parseToken(tok); err == nil {
			m := &OIDCAuth{Leeway: caddyDuration(30 * time.Second)}
			if err := m.checkTimes(pt, now); err == nil {
				t.Errorf("%s: oidc_auth accepts it", name)
			}
		}
	}
}

// Fact: RemoteKeySet refetches the JWKS for every unknown kid, one after the
// other, without cooldown. Design: keySet replaces it.
func TestFactRemoteKeySetFetchesPerUnknownKid(t *testing.T) {
	iss := startIssuer(t)
	remote := oidc.NewRemoteKeySet(context.Background(), iss.JWKSURL())
	v := rawVerifier(iss, remote)
	key := iss.KeyFor("RS256")
	claims := iss.AccessClaims("u", "connector-api", nil)
	for i := 0; i < 5; i++ {
		tok, err := iss.MintWith(key, devidp.Header{"kid": "unknown-" + string(rune('a'+i))}, claims)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = v.Verify(context.Background(), tok)
		// RemoteKeySet wakes waiters before it clears its in-flight fetch,
		// so a Verify right after another can share the finished fetch;
		// a pause lets it clear (this is not a timing assertion).
		time.Sleep(20 * time.Millisecond)
	}
	// oidc/jwks.go (RemoteKeySet.verify): no cooldown, about one fetch per unknown kid. At least three
	// of five shows the absence of a cooldown without depending on the
	// scheduler.
	if n := iss.JWKSFetches(); n < 3 {
		t.Fatalf("RemoteKeySet fetched %d times for 5 unknown kids; oidc/jwks.go fetched about once each before (no cooldown)", n)
	}
}

// Fact: go-jose accepts base64url with flipped trailing bits and high-S
// ECDSA signatures, so two strings can be one valid token. Design: the token
// cache keys on the string (a variant misses and is verified), and
// parseToken decodes strictly, refusing the flipped-bits variant outright.
func TestFactJOSEMalleableEncodings(t *testing.T) {
	iss := startIssuer(t)
	es := iss.KeyFor("ES256")
	tok, err := iss.MintWith(es, devidp.Header{"typ": "at+jwt"}, iss.AccessClaims("u", "connector-api", nil))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	n := es.Signer.(*ecdsa.PrivateKey).Curve.Params().N
	s := new(big.Int).SetBytes(sig[32:])
	highS := make([]byte, 64)
	copy(highS, sig[:32])
	new(big.Int).Sub(n, s).FillBytes(highS[32:])
	highSTok := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(highS)

	// 64 bytes encode to 86 characters with 4 unused trailing bits.
	last := parts[2][len(parts[2])-1]
	flipped := parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + string(flipTrailing(last))

	pub := es.Signer.Public()
	for name, variant := range map[string]string{"high-S": highSTok, "flipped trailing bits": flipped} {
		jws, err := jose.ParseSigned(variant, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("%s: go-jose no longer parses it: %v", name, err)
		}
		if _, err := jws.Verify(pub); err != nil {
			t.Errorf("%s: go-jose now refuses it (%v); go-jose accepted it before", name, err)
		}
		if tokenCacheKey(variant) == tokenCacheKey(tok) {
			t.Errorf("%s: the variant has the original's cache key", name)
		}
	}
	if _, err := parseToken(flipped); err == nil {
		t.Error("parseToken accepts base64url with non-zero trailing bits")
	}
	if _, err := parseToken(highSTok); err != nil {
		t.Errorf("parseToken refuses a high-S token's shape: %v", err)
	}
}

func flipTrailing(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return alphabet[i^1]
}

// The JWKS body is never copied into an error (go-oidc's RemoteKeySet does).
func TestJWKSErrorsDoNotQuoteBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys": SECRET-LOOKING-BODY`))
	}))
	t.Cleanup(srv.Close)
	cfg := testKeySetConfig("https://issuer.example")
	cfg.JWKSURI = srv.URL
	ks, _ := newTestKeySet(t, cfg)
	_, _, err := ks.lookup(context.Background(), "k", "RS256")
	if err == nil || strings.Contains(err.Error(), "SECRET-LOOKING-BODY") {
		t.Fatalf("error %v quotes the body", err)
	}
}

func caddyDuration(d time.Duration) caddy.Duration { return caddy.Duration(d) }
