package integration

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// spoofedNames are identity headers a client might send, in the cases and
// "_" spellings that some upstream frameworks fold into the same name.
var spoofedNames = []string{
	"X-Auth-Subject", "x-auth-subject", "X-AUTH-SUBJECT", "X_Auth_Subject", "x_auth_subject", "X-Auth_Subject",
	"X-Auth-Client", "x_auth_client",
	"X-User", "x-user-id", "X_User_Id", "X-USER-EMAIL",
	"X-Forwarded-User", "x_forwarded_user", "X_FORWARDED_USER",
	"X-Remote-User", "x_remote_user", "Remote-User", "remote_user",
	"X-Authenticated-Userid", "X-Auth-Roles", "x_auth_scopes",
}

// TestOIDCAuthSpoofedIdentityHeadersNeverReachUpstream sends every spelling
// with a valid token: the upstream sees only the verified X-Auth-Subject.
// Without a valid token the request never reaches the upstream at all.
func TestOIDCAuthSpoofedIdentityHeadersNeverReachUpstream(t *testing.T) {
	s := startOIDCSetup(t, oidcCaddyfile, nil)
	var headers []string
	for _, name := range spoofedNames {
		headers = append(headers, name+": admin")
	}
	tok := s.token(t, nil)
	resp, body := s.sidecar.Get(t, "/contacts", tok, headers...)
	got := s.assertAdmitted(t, resp, body)
	for name, values := range got.Header {
		n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		for _, v := range values {
			if v == "admin" {
				t.Errorf("the upstream received spoofed header %s", name)
			}
		}
		if n == "x-auth-subject" && (name != "X-Auth-Subject" || len(values) != 1 || values[0] != "user-123") {
			t.Errorf("the upstream received %s: %q; want only X-Auth-Subject: user-123", name, values)
		}
	}
	if v := got.Header.Get("X-Auth-Subject"); v != "user-123" {
		t.Fatalf("X-Auth-Subject %q, want the verified subject user-123", v)
	}
	assertNoSecret(t, "sidecar logs", s.sidecar.Output(), tok)

	s.upstream.Reset()
	resp, body = s.sidecar.Get(t, "/contacts", "", headers...)
	s.assertRefused(t, resp, body, http.StatusUnauthorized, "token_missing")
}

// TestOIDCAuthAuthorizationShapes covers how the token may and may not be
// presented (RFC 6750 2.1; never the query string).
func TestOIDCAuthAuthorizationShapes(t *testing.T) {
	s := startOIDCSetup(t, oidcCaddyfile, nil)
	tok := s.token(t, nil)

	t.Run("two Authorization headers", func(t *testing.T) {
		resp, body := s.sidecar.Get(t, "/contacts", tok, "Authorization: Bearer "+tok)
		s.assertRefused(t, resp, body, http.StatusBadRequest, "token_malformed", tok)
		if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_request"`) {
			t.Fatalf("WWW-Authenticate %q, want error=\"invalid_request\"", ch)
		}
	})
	t.Run("token over the size cap", func(t *testing.T) {
		big := s.token(t, map[string]any{"padding": strings.Repeat("a", 17<<10)})
		resp, body := s.sidecar.Get(t, "/contacts", big)
		s.assertRefused(t, resp, body, http.StatusUnauthorized, "token_malformed", big)
	})
	t.Run("token in a form body is ignored", func(t *testing.T) {
		req := NewRequest(t, http.MethodPost, "/contacts", "", "Content-Type: application/x-www-form-urlencoded")
		form := "access_token=" + url.QueryEscape(tok)
		req.Body = io.NopCloser(strings.NewReader(form))
		req.ContentLength = int64(len(form))
		resp, body := s.sidecar.Do(t, req)
		s.assertRefused(t, resp, body, http.StatusUnauthorized, "token_missing", tok)
	})
	t.Run("Basic scheme", func(t *testing.T) {
		resp, body := s.sidecar.Get(t, "/contacts", "", "Authorization: Basic dXNlcjpwYXNz")
		s.assertRefused(t, resp, body, http.StatusUnauthorized, "token_missing")
	})
	t.Run("Bearer without token", func(t *testing.T) {
		resp, body := s.sidecar.Get(t, "/contacts", "", "Authorization: Bearer ")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401: %s", resp.StatusCode, body)
		}
		s.upstream.AssertNotCalled(t)
	})
	t.Run("lower-case scheme is accepted", func(t *testing.T) {
		resp, body := s.sidecar.Get(t, "/contacts", "", "Authorization: bearer "+tok)
		s.assertAdmitted(t, resp, body)
		s.upstream.Reset()
	})
	t.Run("the same token twice is served from the cache", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			resp, body := s.sidecar.Get(t, "/contacts", tok)
			s.assertAdmitted(t, resp, body)
		}
		s.upstream.Reset()
	})
}

// TestOIDCAuthIgnoresTokenInQueryString runs its own sidecar: the access log
// records the URI, so this test must not share logs with the leak checks of
// the others.
func TestOIDCAuthIgnoresTokenInQueryString(t *testing.T) {
	s := startOIDCSetup(t, oidcCaddyfile, nil)
	tok := s.token(t, nil)
	for _, name := range []string{"access_token", "token", "id_token"} {
		path := "/contacts?" + name + "=" + url.QueryEscape(tok)
		resp, body := s.sidecar.Do(t, NewRequest(t, http.MethodGet, path, ""))
		s.assertRefused(t, resp, body, http.StatusUnauthorized, "token_missing")
		assertNoSecret(t, "response body", string(body), tok)
	}
}

// TestOIDCAuthConnectionCannotStripIdentityHeaders: a client that nominates
// the identity header as hop-by-hop (Connection: X-Auth-Subject) must not
// make the proxy delete the verified value.
func TestOIDCAuthConnectionCannotStripIdentityHeaders(t *testing.T) {
	s := startOIDCSetup(t, oidcCaddyfile, nil)
	tok := s.token(t, nil)
	for _, conn := range []string{"X-Auth-Subject", "keep-alive, x-auth-subject", "x_auth_subject, X-Auth-Client"} {
		resp, body := s.sidecar.Get(t, "/contacts", tok, "Connection: "+conn)
		got := s.assertAdmitted(t, resp, body)
		if v := got.Header.Get("X-Auth-Subject"); v != "user-123" {
			t.Fatalf("Connection: %s: the upstream got X-Auth-Subject %q, want user-123", conn, v)
		}
		if v := got.Header.Get("X-Auth-Client"); v != "demo-client" {
			t.Fatalf("Connection: %s: the upstream got X-Auth-Client %q, want demo-client", conn, v)
		}
	}
}
