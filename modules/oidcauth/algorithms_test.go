package oidcauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/go-jose/go-jose/v4"
)

// TestServeHTTPEveryAllowedAlgorithm signs with each asymmetric family the
// allowlist admits, through a jwks_uri (no discovery), and checks that a
// key of the wrong type for the token's alg never verifies it.
func TestServeHTTPEveryAllowedAlgorithm(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	keys := map[string]crypto.Signer{"ed": edKey, "rsa": rsaKey, "p384": p384}
	var set jose.JSONWebKeySet
	for kid, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public(), KeyID: kid, Use: "sig"})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(srv.Close)

	const issuerURL = "https://issuer.test"
	m := &OIDCAuth{Issuers: []*Issuer{{Issuer: issuerURL, Audiences: []string{"api"}, JWKSURI: srv.URL}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := m.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Cleanup() })

	sign := func(alg jose.SignatureAlgorithm, kid string, key crypto.Signer) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
			(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(map[string]any{"iss": issuerURL, "aud": "api", "sub": "s", "exp": time.Now().Add(time.Minute).Unix()})
		obj, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, c := range []struct {
		alg jose.SignatureAlgorithm
		kid string
	}{{jose.EdDSA, "ed"}, {jose.PS256, "rsa"}, {jose.RS512, "rsa"}, {jose.ES384, "p384"}} {
		if s := serve(t, m, sign(c.alg, c.kid, keys[c.kid])); s.next.called != 1 {
			t.Errorf("%s refused: %s", c.alg, s.resp.Body)
		}
	}
	// An ES384 token whose header names the RSA key: the key cannot fit.
	if s := serve(t, m, sign(jose.ES384, "rsa", p384)); s.reason(t) != "token_invalid" {
		t.Error("a token was checked against a key of the wrong type")
	}
}
