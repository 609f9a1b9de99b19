package integration

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// eventually retries check until it reports true or the deadline passes.
// It bounds how long a test waits for a background refresh; it asserts no
// duration.
func eventually(t *testing.T, within time.Duration, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if check() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOIDCAuthCheapChecksFetchNothing: tokens that fail a check needing no
// key never make the sidecar contact the issuer.
func TestOIDCAuthCheapChecksFetchNothing(t *testing.T) {
	s := startOIDCSetup(t, oidcCaddyfile, nil)
	now := time.Now()
	claims := s.iss.AccessClaims("user-123", "connector-api", nil)
	for _, tok := range []string{
		"not-a-jwt",
		devidp.Unsigned(claims),
		devidp.SignHMAC(nil, claims, []byte("secret")),
		s.token(t, devidp.Claims{"exp": now.Add(-time.Hour).Unix()}),
		s.token(t, devidp.Claims{"nbf": now.Add(time.Hour).Unix()}),
		s.token(t, devidp.Claims{"exp": nil}),
		s.token(t, devidp.Claims{"aud": "someone-else"}),
		s.token(t, devidp.Claims{"iss": "https://unknown.example"}),
	} {
		resp, body := s.sidecar.Get(t, "/contacts", tok)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401: %s", resp.StatusCode, body)
		}
	}
	if n := s.iss.JWKSFetches() + s.iss.DiscoveryFetches(); n != 0 {
		t.Fatalf("the issuer was contacted %d time(s) for tokens that fail cheap checks; want 0", n)
	}
	s.upstream.AssertNotCalled(t)
}

// TestOIDCAuthRandomKidsCauseFewFetches: 1,000 otherwise valid tokens with
// random kids cost at most a handful of JWKS requests.
func TestOIDCAuthRandomKidsCauseFewFetches(t *testing.T) {
	s := startOIDCSetup(t, oidcCaddyfile, map[string]string{"MIN_REFRESH_INTERVAL": "1h"})
	resp, body := s.sidecar.Get(t, "/contacts", s.token(t, nil)) // load the keys
	s.assertAdmitted(t, resp, body)
	s.upstream.Reset()
	before := s.iss.JWKSFetches()

	claims := s.iss.AccessClaims("user-123", "connector-api", nil)
	key := s.iss.KeyFor("RS256")
	for i := 0; i < 1000; i++ {
		kid := make([]byte, 8)
		_, _ = rand.Read(kid)
		tok := mintBy(t, s.iss, key, devidp.Header{"typ": "at+jwt", "kid": hex.EncodeToString(kid)}, claims)
		resp, body := s.sidecar.Get(t, "/contacts", tok)
		if i%100 == 0 { // the full check, on a sample: it scans the whole log
			s.assertRefused(t, resp, body, http.StatusUnauthorized, "token_invalid", tok)
		} else if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("token %d with a random kid: status %d: %s", i, resp.StatusCode, body)
		}
	}
	n := s.iss.JWKSFetches() - before
	t.Logf("1,000 random-kid tokens caused %d JWKS fetch(es)", n)
	if n > 3 {
		t.Fatalf("1,000 random-kid tokens caused %d JWKS fetches; want at most 3", n)
	}
	s.upstream.AssertNotCalled(t)
}

// TestOIDCAuthIdPDownAtStartThenUp: the sidecar starts while the IdP is
// down, answers 503 keys_unavailable with Retry-After, and admits the same
// token once the IdP is back, without restart.
func TestOIDCAuthIdPDownAtStartThenUp(t *testing.T) {
	iss := StartIssuer(t)
	iss.SetMode(devidp.Down, 0)
	s := startOIDCSetupWith(t, iss, oidcCaddyfile, nil)
	tok := s.token(t, nil)

	resp, body := s.sidecar.Get(t, "/contacts", tok)
	s.assertRefused(t, resp, body, http.StatusServiceUnavailable, "keys_unavailable", tok)
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q, want a positive number of seconds", resp.Header.Get("Retry-After"))
	}

	iss.SetMode(devidp.Up, 0)
	eventually(t, 15*time.Second, "the sidecar admits the token once the IdP is up", func() bool {
		resp, _ := s.sidecar.Get(t, "/contacts", tok)
		return resp.StatusCode == http.StatusOK
	})
	assertNoSecret(t, "sidecar logs", s.sidecar.Output(), tok)
}

// TestOIDCAuthBadKeySetBodies: a JWKS that is garbage or huge is refused
// (503, never a crash or an unbounded read); once keys were loaded, a later
// bad answer keeps the last good keys in use.
func TestOIDCAuthBadKeySetBodies(t *testing.T) {
	for _, mode := range []devidp.Mode{devidp.Garbage, devidp.Huge} {
		name := map[devidp.Mode]string{devidp.Garbage: "garbage", devidp.Huge: "huge"}[mode]
		t.Run(name+" before any keys", func(t *testing.T) {
			iss := StartIssuer(t)
			iss.SetMode(mode, 0)
			s := startOIDCSetupWith(t, iss, oidcCaddyfile, nil)
			tok := s.token(t, nil)
			resp, body := s.sidecar.Get(t, "/contacts", tok)
			s.assertRefused(t, resp, body, http.StatusServiceUnavailable, "keys_unavailable", tok)
			if len(body) > 1024 {
				t.Fatalf("the refusal body is %d bytes; the JWKS body must not leak into it", len(body))
			}
		})
		t.Run(name+" after keys were loaded", func(t *testing.T) {
			s := startOIDCSetup(t, oidcCaddyfile, map[string]string{"REFRESH_INTERVAL": "1s"})
			tok := s.token(t, nil)
			resp, body := s.sidecar.Get(t, "/contacts", tok)
			s.assertAdmitted(t, resp, body)
			fetches := s.iss.JWKSFetches()
			s.iss.SetMode(mode, 0)
			eventually(t, 15*time.Second, "a background refresh meets the bad key set", func() bool {
				return s.iss.JWKSFetches() > fetches+1
			})
			// A token not yet cached needs the keys: the last good ones.
			fresh := s.token(t, devidp.Claims{"jti": "fresh"})
			resp, body = s.sidecar.Get(t, "/contacts", fresh)
			s.assertAdmitted(t, resp, body)
		})
	}
}

// TestOIDCAuthSlowIdP: an IdP slower than fetch_timeout is a 503, not a
// request that hangs.
func TestOIDCAuthSlowIdP(t *testing.T) {
	iss := StartIssuer(t)
	iss.SetMode(devidp.Slow, 30*time.Second)
	s := startOIDCSetupWith(t, iss, oidcCaddyfile, nil)
	tok := s.token(t, nil)
	resp, body := s.sidecar.Get(t, "/contacts", tok)
	s.assertRefused(t, resp, body, http.StatusServiceUnavailable, "keys_unavailable", tok)
}

// TestOIDCAuthKeyRotation: a new signing key is picked up without restart,
// and a key the IdP stops publishing is refused after the refresh interval,
// even for a token that was verified (and cached) before.
func TestOIDCAuthKeyRotation(t *testing.T) {
	s := startOIDCSetup(t, oidcCaddyfile, map[string]string{"REFRESH_INTERVAL": "1s"})
	oldKey := s.iss.KeyFor("RS256")
	oldTok := s.token(t, nil)
	resp, body := s.sidecar.Get(t, "/contacts", oldTok)
	s.assertAdmitted(t, resp, body)

	newKey, err := s.iss.Rotate("RS256")
	if err != nil {
		t.Fatal(err)
	}
	newTok := s.token(t, nil)
	if newKey.ID == oldKey.ID {
		t.Fatal("rotation kept the key id")
	}
	eventually(t, 15*time.Second, "a token signed with the new key is admitted", func() bool {
		resp, _ := s.sidecar.Get(t, "/contacts", newTok)
		return resp.StatusCode == http.StatusOK
	})

	s.iss.RemoveKey(oldKey.ID)
	eventually(t, 15*time.Second, "a token signed with the removed key is refused", func() bool {
		resp, _ := s.sidecar.Get(t, "/contacts", oldTok)
		return resp.StatusCode == http.StatusUnauthorized
	})
	s.upstream.Reset()
	resp, body = s.sidecar.Get(t, "/contacts", oldTok)
	s.assertRefused(t, resp, body, http.StatusUnauthorized, "token_invalid", oldTok)
	resp, body = s.sidecar.Get(t, "/contacts", newTok)
	s.assertAdmitted(t, resp, body)
}
