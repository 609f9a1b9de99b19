package oidcauth

import (
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// TestServeHTTPVerificationRefuses holds the verification path (one parse,
// the signature checked over the segments as received, the RSA modulus
// precomputed) to every check: each forged or invalid token is refused
// with its reason, with the cache on (after the genuine token was cached)
// and off, and the genuine token still passes.
func TestServeHTTPVerificationRefuses(t *testing.T) {
	iss := startIssuer(t)
	rs := iss.KeyFor("RS256")
	es := iss.KeyFor("ES256")
	claims := iss.AccessClaims("user-123", "connector-api", devidp.Claims{"exp": time.Now().Add(time.Hour).Unix()})
	valid := iss.MustMint(claims)
	parts := strings.Split(valid, ".")
	other := strings.Split(iss.MustMint(iss.AccessClaims("admin", "connector-api", nil)), ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	b64 := base64.RawURLEncoding.EncodeToString
	header := func(h map[string]any) string {
		b, _ := json.Marshal(h)
		return b64(b)
	}
	// joseSign signs claims with an RSA key under alg, with header alg
	// then overwritten by label (a token that lies about its algorithm).
	joseSign := func(alg jose.SignatureAlgorithm, label string) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: rs.Signer},
			(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", rs.ID))
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(claims)
		obj, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := obj.CompactSerialize()
		if label == string(alg) {
			return tok
		}
		p := strings.Split(tok, ".")
		return header(map[string]any{"alg": label, "kid": rs.ID, "typ": "at+jwt"}) + "." + p[1] + "." + p[2]
	}
	pub := rs.Signer.Public().(*rsa.PublicKey)
	nBytes := pub.N.FillBytes(make([]byte, pub.Size()))
	mint := func(key *devidp.Key, h devidp.Header, c devidp.Claims) string {
		tok, err := iss.MintWith(key, h, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	with := func(extra devidp.Claims) devidp.Claims {
		c := devidp.Claims{}
		for k, v := range claims {
			c[k] = v
		}
		for k, v := range extra {
			c[k] = v
			if v == nil {
				delete(c, k)
			}
		}
		return c
	}
	// The last character of a 256-byte signature carries 4 unused bits,
	// zero in the canonical encoding; the next letter of the alphabet sets
	// one, and a lenient decoder returns the same signature.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, parts[2][len(parts[2])-1])
	nonCanonical := parts[2][:len(parts[2])-1] + alphabet[last+1:last+2]
	if lenient, _ := base64.RawURLEncoding.DecodeString(nonCanonical); string(lenient) != string(sig) {
		t.Fatal("the non-canonical signature does not decode to the same bytes")
	}

	cases := []struct {
		name, token, reason string
	}{
		{"alg none", devidp.Unsigned(claims), "algorithm_not_allowed"},
		{"alg none with the RS256 signature", header(map[string]any{"alg": "none", "kid": rs.ID, "typ": "at+jwt"}) + "." + parts[1] + "." + parts[2], "algorithm_not_allowed"},
		{"HS256 keyed with the public modulus", devidp.SignHMAC(devidp.Header{"kid": rs.ID}, claims, nBytes), "algorithm_not_allowed"},
		{"HS256 relabelled RS256", devidp.SignHMAC(devidp.Header{"alg": "RS256", "kid": rs.ID}, claims, nBytes), "token_invalid"},
		{"ES256 token naming the RSA key", mint(es, devidp.Header{"kid": rs.ID, "typ": "at+jwt"}, claims), "token_invalid"},
		{"RS256 header on an ES256 signature", mint(es, devidp.Header{"alg": "RS256", "kid": rs.ID, "typ": "at+jwt"}, claims), "token_invalid"},
		{"RS384 signature labelled RS256", joseSign(jose.RS384, "RS256"), "token_invalid"},
		{"PS256 signature labelled RS256", joseSign(jose.PS256, "RS256"), "token_invalid"},
		{"RS256 signature labelled PS256", joseSign(jose.RS256, "PS256"), "token_invalid"},
		{"signature of another token", parts[0] + "." + parts[1] + "." + other[2], "token_invalid"},
		{"payload of another token", parts[0] + "." + other[1] + "." + parts[2], "token_invalid"},
		{"header rewritten", header(map[string]any{"alg": "RS256", "kid": rs.ID, "typ": "at+jwt", "x": 1}) + "." + parts[1] + "." + parts[2], "token_invalid"},
		{"signature with a leading zero byte", parts[0] + "." + parts[1] + "." + b64(append([]byte{0}, sig...)), "token_invalid"},
		{"signature one byte short", parts[0] + "." + parts[1] + "." + b64(sig[1:]), "token_invalid"},
		{"signature equal to the modulus", parts[0] + "." + parts[1] + "." + b64(nBytes), "token_invalid"},
		{"signature in non-canonical base64", parts[0] + "." + parts[1] + "." + nonCanonical, "token_malformed"},
		{"signature in padded base64", valid + "==", "token_malformed"},
		{"unknown kid", mint(rs, devidp.Header{"kid": "nobody", "typ": "at+jwt"}, claims), "token_invalid"},
		{"another issuer", mint(rs, devidp.Header{"typ": "at+jwt"}, with(devidp.Claims{"iss": "https://evil.example"})), "issuer_unknown"},
		{"another audience", mint(rs, devidp.Header{"typ": "at+jwt"}, with(devidp.Claims{"aud": "other-api"})), "audience_mismatch"},
		{"expired", mint(rs, devidp.Header{"typ": "at+jwt"}, with(devidp.Claims{"exp": time.Now().Add(-time.Hour).Unix()})), "token_expired"},
		{"no exp", mint(rs, devidp.Header{"typ": "at+jwt"}, with(devidp.Claims{"exp": nil})), "token_invalid"},
		{"not yet valid", mint(rs, devidp.Header{"typ": "at+jwt"}, with(devidp.Claims{"nbf": time.Now().Add(time.Hour).Unix()})), "token_not_yet_valid"},
		{"ID token where an access token is required", mint(rs, devidp.Header{"typ": "JWT"}, claims), "token_type_invalid"},
		{"crit header", mint(rs, devidp.Header{"typ": "at+jwt", "crit": []string{"exp"}, "exp": 1}, claims), "token_invalid"},
	}
	for _, cache := range []struct {
		name string
		size int
	}{{"cache on", 0}, {"cache off", -1}} {
		t.Run(cache.name, func(t *testing.T) {
			m := newHandler(t, iss, func(m *OIDCAuth) {
				m.CacheSize = cache.size
				m.TokenType = "at+jwt"
				m.Algorithms = []string{"RS256", "PS256", "ES256"}
			})
			if s := serve(t, m, valid); s.next.called != 1 {
				t.Fatalf("the genuine token was refused: %s", s.resp.Body)
			}
			for _, c := range cases {
				if s := serve(t, m, c.token); s.reason(t) != c.reason {
					t.Errorf("%s: reason %q, want %q", c.name, s.reason(t), c.reason)
				}
			}
			if s := serve(t, m, valid); s.next.called != 1 {
				t.Fatalf("the genuine token was refused after the forgeries: %s", s.resp.Body)
			}
		})
	}
}

// TestServeHTTPUnknownKidsFetchWithinLimits: tokens naming kids the issuer
// does not publish cause at most one key fetch per min_refresh_interval on
// the verification path, however many arrive.
func TestServeHTTPUnknownKidsFetchWithinLimits(t *testing.T) {
	iss := startIssuer(t)
	m := newHandler(t, iss, func(m *OIDCAuth) { m.CacheSize = -1 })
	claims := iss.AccessClaims("u", "connector-api", nil)
	if s := serve(t, m, iss.MustMint(claims)); s.next.called != 1 {
		t.Fatalf("refused: %s", s.resp.Body)
	}
	fetches := iss.JWKSFetches()
	for i := range 20 {
		tok, _ := iss.MintWith(iss.KeyFor("RS256"), devidp.Header{"kid": "rotated-" + string(rune('a'+i))}, claims)
		if s := serve(t, m, tok); s.reason(t) != "token_invalid" {
			t.Fatalf("unknown kid: reason %q", s.reason(t))
		}
	}
	if got := iss.JWKSFetches() - fetches; got > 1 {
		t.Fatalf("20 unknown kids caused %d JWKS fetches within min_refresh_interval, want at most 1", got)
	}
}

// TestVerifySignatureChecksEveryCandidate: a token without kid is tried
// against each key that fits its alg; the one that verifies is returned, a
// signature no key made is refused, and an unknown alg never verifies.
func TestVerifySignatureChecksEveryCandidate(t *testing.T) {
	iss := startIssuer(t)
	second, err := iss.AddKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	var keys []*publicKey
	for _, k := range []*devidp.Key{iss.KeyFor("RS256"), second} {
		pk, err := newPublicKey(jose.JSONWebKey{Key: k.Signer.Public(), KeyID: k.ID, Algorithm: "RS256"})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, pk)
	}
	tok, _ := iss.MintWith(second, devidp.Header{"kid": nil}, iss.AccessClaims("u", "connector-api", nil))
	pre, err := parseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	used, err := verifySignature(pre, keys)
	if err != nil || used != keys[1] {
		t.Fatalf("verified by %v, err %v; want the second key", used, err)
	}
	if _, err := verifySignature(pre, keys[:1]); err == nil {
		t.Fatal("a key that did not sign the token verified it")
	}
	pre.alg = "RS1"
	if _, err := verifySignature(pre, keys); err == nil {
		t.Fatal("an algorithm without a hash verified")
	}
	if h, ok := jwsHash("HS256"); ok || h != crypto.Hash(0) {
		t.Fatal("HS256 has a JWS hash here")
	}
}
