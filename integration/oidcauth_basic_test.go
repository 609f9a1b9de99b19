package integration

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/devidp"
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

// TestOIDCAuthMetrics: decisions, key fetches and cache hits are in Caddy's
// metrics registry, served on the admin API's /metrics.
func TestOIDCAuthMetrics(t *testing.T) {
	s := startOIDCSetup(t, oidcCaddyfile, nil)
	tok := s.token(t, nil)
	for i := 0; i < 2; i++ {
		resp, body := s.sidecar.Get(t, "/contacts", tok)
		s.assertAdmitted(t, resp, body)
	}
	resp, body := s.sidecar.Get(t, "/contacts", "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	mresp, err := http.Get("http://" + s.sidecar.AdminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer mresp.Body.Close()
	raw, _ := io.ReadAll(mresp.Body)
	text := string(raw)
	for _, want := range []string{
		`sidecar_oidc_auth_decisions_total{reason="ok",result="allow"} 2`,
		`sidecar_oidc_auth_decisions_total{reason="token_missing",result="deny"} 1`,
		`sidecar_oidc_auth_token_cache_total{result="hit"} 1`,
		`sidecar_oidc_auth_key_fetches_total{issuer="` + s.iss.URL + `",kind="jwks",result="ok"} 1`,
		`sidecar_oidc_auth_key_fetches_total{issuer="` + s.iss.URL + `",kind="discovery",result="ok"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	assertNoSecret(t, "/metrics", text, tok)
}

// TestOIDCAuthReloadKeepsKeys: a config reload with the same issuer settings
// reuses the key set (no new fetch) and keeps admitting tokens.
func TestOIDCAuthReloadKeepsKeys(t *testing.T) {
	s := startOIDCSetup(t, oidcCaddyfile, map[string]string{"MIN_REFRESH_INTERVAL": "1h"})
	tok := s.token(t, nil)
	resp, body := s.sidecar.Get(t, "/contacts", tok)
	s.assertAdmitted(t, resp, body)
	fetches := s.iss.JWKSFetches() + s.iss.DiscoveryFetches()

	// Another realm, so Caddy really provisions a new config.
	if out, err := s.sidecar.Reload("caddyfiles/test/oidc_auth_reload.Caddyfile"); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	resp, _ = s.sidecar.Get(t, "/contacts", "")
	if ch := resp.Header.Get("WWW-Authenticate"); ch != `Bearer realm="reloaded"` {
		t.Fatalf("after the reload WWW-Authenticate is %q; the new config is not active", ch)
	}
	fresh := s.token(t, devidp.Claims{"jti": "after-reload"}) // not in any cache
	resp, body = s.sidecar.Get(t, "/contacts", fresh)
	s.assertAdmitted(t, resp, body)
	if n := s.iss.JWKSFetches() + s.iss.DiscoveryFetches(); n != fetches {
		t.Fatalf("the reload caused %d new key fetches; the key set should be reused", n-fetches)
	}
}

// TestOIDCAuthHandleErrors: with handle_errors routes the refusal is an
// error those routes render, with the status, the reason placeholder and
// the Bearer challenge kept.
func TestOIDCAuthHandleErrors(t *testing.T) {
	s := startOIDCSetup(t, "caddyfiles/test/oidc_auth_errors.Caddyfile", nil)
	expired := s.token(t, devidp.Claims{"exp": 1000})
	for _, c := range []struct {
		token, want, challenge string
		status                 int
	}{
		{"", "refused: 401 token_missing", `Bearer realm="privacy-sidecar"`, 401},
		{expired, "refused: 401 token_expired", `Bearer realm="privacy-sidecar", error="invalid_token"`, 401},
	} {
		resp, body := s.sidecar.Get(t, "/contacts", c.token)
		if resp.StatusCode != c.status || string(body) != c.want {
			t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, c.status, c.want)
		}
		if got := resp.Header.Get("WWW-Authenticate"); got != c.challenge {
			t.Fatalf("WWW-Authenticate %q, want %q", got, c.challenge)
		}
	}
	s.upstream.AssertNotCalled(t)
	assertNoSecret(t, "sidecar logs", s.sidecar.Output(), expired)
}
