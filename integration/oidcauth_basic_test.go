package integration

import (
	"net/http"
	"testing"
)

const oidcCaddyfile = "caddyfiles/test/oidc_auth.Caddyfile"

func TestOIDCAuthAdmitsValidToken(t *testing.T) {
	s := startOIDCSetup(t, oidcCaddyfile, nil)
	tok := s.token(t, nil)
	resp, body := s.sidecar.Get(t, "/contacts", tok)
	got := s.assertAdmitted(t, resp, body)
	if v := got.Header.Get("X-Auth-Subject"); v != "user-123" {
		t.Fatalf("X-Auth-Subject %q, want user-123", v)
	}
	if v := got.Header.Get("X-Auth-Client"); v != "demo-client" {
		t.Fatalf("X-Auth-Client %q, want demo-client", v)
	}
	assertNoSecret(t, "sidecar logs", s.sidecar.Output(), tok)
}

func TestOIDCAuthRefusesMissingToken(t *testing.T) {
	s := startOIDCSetup(t, oidcCaddyfile, nil)
	resp, body := s.sidecar.Get(t, "/contacts", "")
	s.assertRefused(t, resp, body, http.StatusUnauthorized, "token_missing")
}
