package integration

import (
	"net/http"
	"strings"
	"testing"
)

// TestOIDCAuthIdentityTrailersNeverReachUpstream: reverse_proxy forwards
// request trailers, so a client could send X-Auth-Subject after the body.
// Declared or not, identity trailers are dropped; an unrelated declared
// trailer still arrives, which shows the check could see one.
func TestOIDCAuthIdentityTrailersNeverReachUpstream(t *testing.T) {
	s := startOIDCSetup(t, "caddyfiles/test/oidc_auth.Caddyfile", nil)
	token := s.token(t, nil)
	for _, tc := range []struct{ name, declared, trailers string }{
		{"declared", "X-Auth-Subject", "X-Auth-Subject: mallory\r\n"},
		{"declared lower case", "x-auth-subject", "x-auth-subject: mallory\r\n"},
		{"undeclared beside a declared one", "X-Checksum", "X-Checksum: abc\r\nX-Auth-Subject: mallory\r\nX-Remote-User: mallory\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.upstream.Reset()
			raw := "POST /v1/notes HTTP/1.1\r\nHost: " + s.sidecar.Addr + "\r\nAuthorization: Bearer " + token +
				"\r\nTransfer-Encoding: chunked\r\nTrailer: " + tc.declared + "\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n" + tc.trailers + "\r\n"
			resp, body := tgRaw(t, s.sidecar.Addr, raw)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			got := s.upstream.Last(t)
			if v := got.Header.Get("X-Auth-Subject"); v != "user-123" {
				t.Errorf("X-Auth-Subject header upstream = %q, want the verified subject", v)
			}
			for name, v := range got.Trailer {
				if n := strings.ToLower(name); strings.HasPrefix(n, "x-auth-") || n == "x-remote-user" {
					t.Errorf("the upstream received identity trailer %s: %v", name, v)
				}
			}
		})
	}
	t.Run("control: an unrelated trailer arrives", func(t *testing.T) {
		raw := "POST /v1/notes HTTP/1.1\r\nHost: " + s.sidecar.Addr + "\r\nAuthorization: Bearer " + token +
			"\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n"
		if resp, body := tgRaw(t, s.sidecar.Addr, raw); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if got := s.upstream.Last(t).Trailer.Get("X-Checksum"); got != "abc" {
			t.Fatalf("a declared trailer did not reach the upstream (%q): the checks above prove nothing", got)
		}
	})
}
