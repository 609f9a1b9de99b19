package integration

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// keySizeCaddyfile is oidc_auth with a fixed JWKS URL, beside a health check.
const keySizeCaddyfile = `{
	admin {$SIDECAR_ADMIN}
}

http://{$SIDECAR_ADDR} {
	handle /healthz {
		sidecar_health
	}
	handle {
		oidc_auth {
			issuer {$ISSUER} {
				audience connector-api
				jwks_uri {$JWKS}
				min_refresh_interval 1s
				fetch_timeout 2s
			}
		}
		reverse_proxy {$UPSTREAM}
	}
}
`

// TestRSAKeyOver4096BitsIsNeverUsed is what docs/oidc_auth.md says about
// key sizes, against the built binary: an 8192-bit RSA key in the issuer's
// JWKS is skipped (go-jose v4.1.9 refuses moduli over 4096 bits while
// parsing the JWK). A set holding only that key counts as a failed fetch:
// tokens signed with it get 503 keys_unavailable and the health check
// reports no keys with "JWKS holds no usable signature key". Beside a usable
// key, the set loads without it, and a token signed with it gets 401
// token_invalid, like any token whose key is not published.
func TestRSAKeyOver4096BitsIsNeverUsed(t *testing.T) {
	// Eight 1024-bit primes give an 8192-bit modulus in about a second;
	// two 4096-bit primes take tens of seconds. The sidecar sees only the
	// public modulus and exponent either way.
	large, err := rsa.GenerateMultiPrimeKey(rand.Reader, 8, 8192) //nolint:staticcheck // speed, see above
	if err != nil {
		t.Fatal(err)
	}
	if large.N.BitLen() != 8192 {
		t.Fatalf("modulus of %d bits", large.N.BitLen())
	}
	usable, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	published := []jose.JSONWebKey{{Key: &large.PublicKey, KeyID: "rsa-8192", Algorithm: "RS256", Use: "sig"}}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		set := jose.JSONWebKeySet{Keys: published}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(jwks.Close)
	up := StartUpstream(t, nil)
	sc := StartSidecarConfig(t, keySizeCaddyfile, map[string]string{"ISSUER": jwks.URL, "JWKS": jwks.URL + "/keys", "UPSTREAM": up.Addr})

	mint := func(key crypto.Signer, kid string) string {
		t.Helper()
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
			(&jose.SignerOptions{}).WithType("at+jwt"))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		claims, _ := json.Marshal(map[string]any{"iss": jwks.URL, "sub": "u-1", "aud": "connector-api",
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
		obj, err := signer.Sign(claims)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	bigToken := mint(large, "rsa-8192")

	// Only the 8192-bit key is published.
	resp, body := sc.Get(t, "/v1/contacts", bigToken)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"reason":"keys_unavailable"`) || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a token signed with the only (8192-bit) key: %d %s (Retry-After %q), want 503 keys_unavailable with Retry-After",
			resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	rep, status := pollHealth(t, sc, func(r healthReport) bool { return len(r.Issuers) == 1 && r.Issuers[0].LastError != "" })
	if status != http.StatusServiceUnavailable || rep.Issuers[0].KeysLoaded || rep.Issuers[0].Keys != 0 ||
		!strings.Contains(rep.Issuers[0].LastError, "JWKS holds no usable signature key") {
		t.Fatalf("health with only an 8192-bit key published: %d %+v", status, rep)
	}

	// A usable key beside it: the set loads with one key.
	mu.Lock()
	published = append(published, jose.JSONWebKey{Key: &usable.PublicKey, KeyID: "rsa-2048", Algorithm: "RS256", Use: "sig"})
	mu.Unlock()
	rep, status = pollHealth(t, sc, func(r healthReport) bool { return r.Status == "ok" })
	if status != http.StatusOK || rep.Issuers[0].Keys != 1 {
		t.Fatalf("health with a 2048-bit and an 8192-bit key published: %d %+v, want ok with 1 key", status, rep)
	}
	resp, body = sc.Get(t, "/v1/contacts", bigToken)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"reason":"token_invalid"`) {
		t.Fatalf("a token signed with the published 8192-bit key: %d %s, want 401 token_invalid", resp.StatusCode, body)
	}
	up.AssertNotCalled(t)
	if resp, body = sc.Get(t, "/v1/contacts", mint(usable, "rsa-2048")); resp.StatusCode != http.StatusOK {
		t.Fatalf("a token signed with the 2048-bit key: %d %s", resp.StatusCode, body)
	}
}
