package integration

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestTenantGuardDisguisedHeaders: copies of the tenant header under other
// spellings never reach the upstream, and do not count as the header.
func TestTenantGuardDisguisedHeaders(t *testing.T) {
	s := startTenantGuard(t)
	acme := s.acme()

	tests := []struct {
		name    string
		path    string
		headers []string
		status  int
		reason  string
	}{
		{name: "underscore copies with another tenant are removed", path: "/plain/underscore",
			headers: []string{"X-Tenant-ID: acme", "X_Tenant_ID: globex", "x-tenant_id: globex", "X_TENANT-ID: globex"}},
		{name: "underscore copies on the registry route", path: "/crm/underscore",
			headers: []string{"X-Tenant-ID: acme", "x_tenant_id: globex"}},
		{name: "an underscore copy alone is not the header", path: "/plain/underscore-only",
			headers: []string{"X_Tenant_ID: acme"}, status: 400, reason: "tenant_missing"},
		{name: "inject replaces nothing but is never fooled by a copy", path: "/inject/underscore-only",
			headers: []string{"X_Tenant_ID: globex"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.sidecar.Get(t, tc.path, acme, tc.headers...)
			if tc.status != 0 {
				s.assertRefused(t, tc.path, resp, body, tc.status, tc.reason)
				return
			}
			s.assertForwarded(t, tc.path, resp, body, "acme")
		})
	}
}

// TestTenantGuardConnectionHeaderTricks: reverse_proxy deletes the headers
// a client's Connection header names, after tenant_guard ran. Naming the
// tenant header there must not strip the verified header on its way to the
// upstream, in any spelling, alone or among other tokens.
func TestTenantGuardConnectionHeaderTricks(t *testing.T) {
	s := startTenantGuard(t)
	acme := s.acme()
	tests := []struct {
		name    string
		path    string
		headers []string
	}{
		{"Connection names the header", "/plain/conn1", []string{"X-Tenant-ID: acme", "Connection: X-Tenant-ID"}},
		{"lower case among other tokens", "/plain/conn2", []string{"X-Tenant-ID: acme", "Connection: keep-alive, x-tenant-id"}},
		{"underscore spelling", "/plain/conn3", []string{"X-Tenant-ID: acme", "Connection: X_Tenant_ID"}},
		{"two Connection headers", "/plain/conn4", []string{"X-Tenant-ID: acme", "Connection: keep-alive", "Connection: X-TENANT-ID"}},
		{"inject with Connection naming the header", "/inject/conn5", []string{"Connection: X-Tenant-ID"}},
		{"registry route", "/crm/conn6", []string{"X-Tenant-ID: acme", "Connection: X-Tenant-ID"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.sidecar.Get(t, tc.path, acme, tc.headers...)
			s.assertForwarded(t, tc.path, resp, body, "acme")
		})
	}
}

// TestTenantGuardRawRequestTricks sends what a Go client will not: the
// header folded over two lines, and copies of it in request trailers
// (declared and undeclared), which reverse_proxy forwards to the upstream.
func TestTenantGuardRawRequestTricks(t *testing.T) {
	s := startTenantGuard(t)
	acme := s.acme()
	head := func(path string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: " + s.sidecar.Addr + "\r\nAuthorization: Bearer " + acme + "\r\n"
	}

	t.Run("obsolete line folding", func(t *testing.T) {
		path := "/plain/folded"
		resp, body := tgRaw(t, s.sidecar.Addr, head(path)+"X-Tenant-ID: acme\r\n globex\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400; body %s", resp.StatusCode, body)
		}
		s.assertNotReached(t, path)
	})

	trailerCases := []struct{ name, path, declared, trailer string }{
		{"declared tenant trailer", "/plain/trailer1", "X-Tenant-ID", "X-Tenant-ID: globex\r\n"},
		{"declared underscore trailer", "/plain/trailer2", "X_Tenant_ID", "X_Tenant_ID: globex\r\n"},
		{"undeclared tenant trailer beside a declared one", "/plain/trailer3", "X-Checksum", "X-Checksum: abc\r\nX-Tenant-ID: globex\r\nx_tenant_id: globex\r\n"},
	}
	for _, tc := range trailerCases {
		t.Run(tc.name, func(t *testing.T) {
			raw := head(tc.path) + "X-Tenant-ID: acme\r\nTransfer-Encoding: chunked\r\nTrailer: " + tc.declared + "\r\nConnection: close\r\n\r\n" +
				"5\r\nhello\r\n0\r\n" + tc.trailer + "\r\n"
			resp, body := tgRaw(t, s.sidecar.Addr, raw)
			s.assertForwarded(t, tc.path, resp, body, "acme")
			s.mu.Lock()
			defer s.mu.Unlock()
			last := s.trailers[len(s.trailers)-1]
			for name := range last {
				if strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name)) == "x-tenant-id" {
					t.Fatalf("the upstream received the tenant header as trailer %s: %v", name, last)
				}
			}
		})
	}
	// The control: an unrelated declared trailer still reaches the upstream,
	// so the check above would see a tenant trailer if one were forwarded.
	t.Run("unrelated trailers still forwarded", func(t *testing.T) {
		path := "/plain/trailer-control"
		raw := head(path) + "X-Tenant-ID: acme\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\nConnection: close\r\n\r\n" +
			"5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n"
		resp, body := tgRaw(t, s.sidecar.Addr, raw)
		s.assertForwarded(t, path, resp, body, "acme")
		s.mu.Lock()
		defer s.mu.Unlock()
		if got := s.trailers[len(s.trailers)-1].Get("X-Checksum"); got != "abc" {
			t.Fatalf("a declared trailer did not reach the upstream (%q): the trailer checks above prove nothing", got)
		}
	})
}

// TestTenantGuardFactsCaddyStripsConnectionNamedHeaders keeps the Caddy
// behaviour the Connection and trailer defences exist for: without
// tenant_guard, reverse_proxy drops a header the client's Connection header
// names, and forwards the client's request trailers.
func TestTenantGuardFactsCaddyStripsConnectionNamedHeaders(t *testing.T) {
	up := StartUpstream(t, nil)
	var trailers []http.Header
	var mu sync.Mutex
	up2 := StartUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		trailers = append(trailers, r.Trailer.Clone())
		mu.Unlock()
	})
	s := StartSidecarConfig(t, "{\n\tadmin {$SIDECAR_ADMIN}\n}\n\nhttp://{$SIDECAR_ADDR} {\n\thandle /t/* {\n\t\treverse_proxy {$UPSTREAM2}\n\t}\n\treverse_proxy {$UPSTREAM}\n}\n",
		map[string]string{"UPSTREAM": up.Addr, "UPSTREAM2": up2.Addr})

	resp, body := s.Get(t, "/plain", "", "X-Tenant-ID: acme", "Connection: X-Tenant-ID")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if v := up.Last(t).Header.Values("X-Tenant-Id"); len(v) != 0 {
		t.Fatalf("Caddy no longer strips a Connection-named header (upstream got %q): the fact behind neutraliseConnection changed; re-check it", v)
	}

	raw := "POST /t/x HTTP/1.1\r\nHost: " + s.Addr + "\r\nTransfer-Encoding: chunked\r\nTrailer: X-Tenant-ID\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Tenant-ID: globex\r\n\r\n"
	if resp, body := tgRaw(t, s.Addr, raw); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(trailers) != 1 || trailers[0].Get("X-Tenant-Id") != "globex" {
		t.Fatalf("Caddy no longer forwards request trailers (%v): the fact behind scrubTrailer changed; re-check it", trailers)
	}
}
