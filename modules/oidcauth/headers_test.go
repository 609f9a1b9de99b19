package oidcauth

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestHeaderMatcherNormalises(t *testing.T) {
	m := newHeaderMatcher(append(defaultReservedHeaders, "X-Auth-Subject", "X-Legacy_Login"))
	for _, name := range []string{
		"X-Auth-Subject", "x-auth-subject", "X_AUTH_SUBJECT", "x_Auth-subject", "X-Auth-Anything",
		"X-User", "X-User-Id", "x_user_email", "X-Forwarded-User", "x_forwarded_user", "X-Remote-User",
		"Remote_User", "X-Legacy-Login", "x_legacy_login", "X-Oidc-Claims",
	} {
		if !m.matches(name) {
			t.Errorf("%s is not reserved", name)
		}
	}
	for _, name := range []string{"Authorization", "User-Agent", "X-Tenant-ID", "X_Tenant_Id", "Accept", "X-Request-ID", "X-Forwarded-For"} {
		if m.matches(name) {
			t.Errorf("%s is reserved; it must pass", name)
		}
	}
}

func TestStripReservedRecordsNamesOnly(t *testing.T) {
	m := newHeaderMatcher([]string{"X-Auth-*"})
	h := http.Header{"X-Auth-Subject": {"a"}, "x_auth_subject": {"b"}, "Accept": {"*/*"}}
	removed := m.stripReserved(h)
	if strings.Join(removed, ",") != "X-Auth-Subject,x_auth_subject" {
		t.Fatalf("removed %q", removed)
	}
	if len(h) != 1 || h.Get("Accept") != "*/*" {
		t.Fatalf("left %v", h)
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

func TestScrubConnection(t *testing.T) {
	m := newHeaderMatcher([]string{"X-Auth-*"})
	h := http.Header{"Connection": {"keep-alive, x-auth-subject", "X_Auth_Client"}}
	if got := strings.Join(m.scrubConnection(h), ","); got != "x-auth-subject,X_Auth_Client" {
		t.Fatalf("scrubbed %q", got)
	}
	if got := strings.Join(h["Connection"], "|"); got != "keep-alive" {
		t.Fatalf("Connection %q, want keep-alive", got)
	}
	h = http.Header{"Connection": {"X-Auth-Subject"}}
	m.scrubConnection(h)
	if _, ok := h["Connection"]; ok {
		t.Fatal("an emptied Connection header was kept")
	}
	h = http.Header{"Connection": {"close"}}
	if m.scrubConnection(h) != nil || h.Get("Connection") != "close" {
		t.Fatal("an innocent Connection header was changed")
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
	if got := strings.Join(s.decision.SpoofedHeaders, ","); got != "Connection: x-subject-id" {
		t.Fatalf("spoofed headers %q", got)
	}
}
