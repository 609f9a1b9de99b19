package oidcauth

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// TestReservedHeadersFold: the built-in list under the shared folding rule,
// dot spellings included (issue 11: oidc_auth folded '_' but not '.').
func TestReservedHeadersFold(t *testing.T) {
	m := sidecar.NewHeaderNames(append(defaultReservedHeaders, "X-Auth-Subject", "X-Legacy_Login")...)
	for _, name := range []string{
		"X-Auth-Subject", "x-auth-subject", "X_AUTH_SUBJECT", "x_Auth-subject", "X-Auth-Anything",
		"X.Auth.Subject", "x.auth_subject", "X.User", "x.user.email", "X.Forwarded.User", "Remote.User",
		"X-User", "X-User-Id", "x_user_email", "X-Forwarded-User", "x_forwarded_user", "X-Remote-User",
		"Remote_User", "X-Legacy-Login", "x_legacy_login", "X.Legacy.Login", "X-Oidc-Claims",
	} {
		if !m.Matches(name) {
			t.Errorf("%s is not reserved", name)
		}
	}
	for _, name := range []string{"Authorization", "User-Agent", "X-Tenant-ID", "X_Tenant_Id", "Accept", "X-Request-ID", "X-Forwarded-For"} {
		if m.Matches(name) {
			t.Errorf("%s is reserved; it must pass", name)
		}
	}
}

func TestHeaderValue(t *testing.T) {
	cases := []struct {
		in   any
		want string
		ok   bool
	}{
		{"alice", "alice", true},
		{json.Number("12345678901234567890"), "12345678901234567890", true},
		{true, "true", true},
		{[]any{"a", json.Number("2")}, "a,2", true},
		{map[string]any{"k": "v"}, `{"k":"v"}`, true},
		{"evil\r\nX-Admin: 1", "", false},
		{"nul\x00", "", false},
		{[]any{"ok", "bad\n"}, "", false},
		{nil, "", false},
		{"tab\tok", "tab\tok", true},
	}
	for _, c := range cases {
		got, ok := headerValue(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("headerValue(%#v) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestServeHTTPRecordsConnectionSpoof(t *testing.T) {
	iss := startIssuer(t)
	m := newHandler(t, iss, func(m *OIDCAuth) { m.ForwardHeaders = map[string]string{"X-Subject-Id": "sub"} })
	tok := iss.MustMint(iss.AccessClaims("user-1", "connector-api", nil))
	s := serve(t, m, tok, "Connection: keep-alive, x-subject-id")
	if s.next.called != 1 {
		t.Fatalf("refused: %s", s.resp.Body)
	}
	if got := s.next.req.Header.Get("Connection"); got != "keep-alive" {
		t.Fatalf("Connection %q, want keep-alive", got)
	}
	// the rule is recorded, not the client's token
	if got := strings.Join(s.decision.SpoofedHeaders, ","); got != "Connection: X-Subject-Id" {
		t.Fatalf("spoofed headers %q", got)
	}
}
