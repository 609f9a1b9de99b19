package integration

import (
	"net/http"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// TestTenantGuardAllowedAliases runs a server that allowlists underscore
// and dot spellings of the tenant header (Caddy's expected_underscore_headers
// and expected_dot_headers), so that they reach the handlers: tenant_guard
// must remove them itself, and never count them as the header.
func TestTenantGuardAllowedAliases(t *testing.T) {
	iss := StartIssuer(t)
	s := &tgSetup{acmeIdP: iss}
	s.upstream = StartUpstream(t, nil)
	s.sidecar = StartSidecar(t, "caddyfiles/test/tenant_guard_aliases.Caddyfile", map[string]string{
		"ISSUER": iss.URL, "UPSTREAM": s.upstream.Addr,
	})
	acme := tgToken(iss, devidp.Claims{"tenant_id": "acme"})

	tests := []struct {
		name    string
		path    string
		headers []string
		status  int
		reason  string
	}{
		{name: "underscore copy with inject", path: "/inject/underscore", headers: []string{"X_Tenant_ID: globex"}},
		{name: "mixed copy with inject", path: "/inject/mixed", headers: []string{"x-tenant_id: globex"}},
		{name: "dot copy with inject", path: "/inject/dot", headers: []string{"X.Tenant.ID: globex"}},
		{name: "underscore copy alone is not the header", path: "/plain/underscore", headers: []string{"X_Tenant_ID: acme"}, status: 400, reason: "tenant_missing"},
		{name: "dot copy alone is not the header", path: "/plain/dot", headers: []string{"x.tenant.id: acme"}, status: 400, reason: "tenant_missing"},
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

	// With an alias allowlisted, Caddy drops the hyphenated spelling: the
	// real header never reaches tenant_guard, which then refuses (or, with
	// inject, sets it from the token). Either way the client's values stay out.
	resp, body := s.sidecar.Get(t, "/plain/both", acme, "X-Tenant-ID: acme", "X_Tenant_ID: globex")
	s.assertRefused(t, "/plain/both", resp, body, http.StatusBadRequest, "tenant_missing")
	resp, body = s.sidecar.Get(t, "/inject/both", acme, "X-Tenant-ID: globex", "X_Tenant_ID: globex")
	s.assertForwarded(t, "/inject/both", resp, body, "acme")
}
