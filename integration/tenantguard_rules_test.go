package integration

import (
	"net/http"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// TestTenantGuardRules runs every header, claim, route and registry rule of
// tenant_guard through the built binary behind oidc_auth, and checks what the
// upstream received: the verified tenant exactly once, or nothing.
func TestTenantGuardRules(t *testing.T) {
	s := startTenantGuard(t)
	acme := s.acme()
	globexFromGlobex := tgToken(s.globexIdP, devidp.Claims{"tenant_id": "globex"})
	globexFromAcme := tgToken(s.acmeIdP, devidp.Claims{"tenant_id": "globex"})
	initech := tgToken(s.acmeIdP, devidp.Claims{"tenant_id": "initech"})
	umbrella := tgToken(s.acmeIdP, devidp.Claims{"tenant_id": "umbrella"})
	noTenant := tgToken(s.acmeIdP, nil)
	nested := tgToken(s.acmeIdP, devidp.Claims{"org": map[string]any{"id": "acme"}, "tenant_id": "globex"})
	urlClaim := tgToken(s.acmeIdP, devidp.Claims{"https://example.com/tenant": "acme"})

	tests := []struct {
		name    string
		path    string
		token   string
		headers []string
		status  int    // 0: must be forwarded
		reason  string // when refused
		tenant  string // when forwarded
	}{
		{name: "no identity (oidc_auth missing)", path: "/misordered/a", token: acme, headers: []string{"X-Tenant-ID: acme"}, status: 500, reason: "identity_missing"},
		{name: "no identity, no token", path: "/misordered/b", headers: []string{"X-Tenant-ID: acme"}, status: 500, reason: "identity_missing"},
		{name: "matching header", path: "/plain/ok", token: acme, headers: []string{"X-Tenant-ID: acme"}, tenant: "acme"},
		{name: "header name in lower case", path: "/plain/lower", token: acme, headers: []string{"x-tenant-id: acme"}, tenant: "acme"},
		{name: "header missing", path: "/plain/missing", token: acme, status: 400, reason: "tenant_missing"},
		{name: "header twice", path: "/plain/twice", token: acme, headers: []string{"X-Tenant-ID: acme", "X-Tenant-ID: acme"}, status: 400, reason: "tenant_malformed"},
		{name: "header twice, names in different case", path: "/plain/twice-case", token: acme, headers: []string{"X-Tenant-ID: acme", "x-tenant-id: globex"}, status: 400, reason: "tenant_malformed"},
		{name: "comma-joined", path: "/plain/comma", token: acme, headers: []string{"X-Tenant-ID: acme,globex"}, status: 400, reason: "tenant_malformed"},
		{name: "comma-joined, same tenant", path: "/plain/comma-same", token: acme, headers: []string{"X-Tenant-ID: acme, acme"}, status: 400, reason: "tenant_malformed"},
		{name: "empty", path: "/plain/empty", token: acme, headers: []string{"X-Tenant-ID: "}, status: 400, reason: "tenant_malformed"},
		{name: "inner whitespace", path: "/plain/space", token: acme, headers: []string{"X-Tenant-ID: ac me"}, status: 400, reason: "tenant_malformed"},
		{name: "outside the safe set", path: "/plain/slash", token: acme, headers: []string{"X-Tenant-ID: acme/../globex"}, status: 400, reason: "tenant_malformed"},
		{name: "non-ASCII", path: "/plain/accent", token: acme, headers: []string{"X-Tenant-ID: acmé"}, status: 400, reason: "tenant_malformed"},
		{name: "another tenant", path: "/plain/mismatch", token: acme, headers: []string{"X-Tenant-ID: globex"}, status: 403, reason: "tenant_mismatch"},
		{name: "tenant in another case", path: "/plain/mismatch-case", token: acme, headers: []string{"X-Tenant-ID: ACME"}, status: 403, reason: "tenant_mismatch"},
		{name: "token without tenant claim", path: "/plain/no-claim", token: noTenant, headers: []string{"X-Tenant-ID: acme"}, status: 403, reason: "tenant_claim_missing"},
		{name: "inject sets a missing header", path: "/inject/missing", token: acme, tenant: "acme"},
		{name: "inject still checks a present header", path: "/inject/mismatch", token: acme, headers: []string{"X-Tenant-ID: globex"}, status: 403, reason: "tenant_mismatch"},
		{name: "inject still refuses duplicates", path: "/inject/twice", token: acme, headers: []string{"X-Tenant-ID: acme", "X-Tenant-ID: acme"}, status: 400, reason: "tenant_malformed"},
		{name: "nested claim path org.id", path: "/nested/ok", token: nested, headers: []string{"X-Tenant-ID: acme"}, tenant: "acme"},
		{name: "nested claim path, top-level claim ignored", path: "/nested/mismatch", token: nested, headers: []string{"X-Tenant-ID: globex"}, status: 403, reason: "tenant_mismatch"},
		{name: "URL-named claim", path: "/url-claim/ok", token: urlClaim, headers: []string{"X-Tenant-ID: acme"}, tenant: "acme"},
		{name: "URL-named claim missing", path: "/url-claim/missing", token: acme, headers: []string{"X-Tenant-ID: acme"}, status: 403, reason: "tenant_claim_missing"},
		{name: "route tenant matches", path: "/t/acme/contacts", token: acme, headers: []string{"X-Tenant-ID: acme"}, tenant: "acme"},
		{name: "route tenant differs", path: "/t/globex/contacts", token: acme, headers: []string{"X-Tenant-ID: acme"}, status: 403, reason: "tenant_mismatch"},
		{name: "route tenant absent", path: "/t/", token: acme, headers: []string{"X-Tenant-ID: acme"}, status: 403, reason: "tenant_mismatch"},
		{name: "registry: connected", path: "/crm/acme", token: acme, headers: []string{"X-Tenant-ID: acme"}, tenant: "acme"},
		{name: "registry: other tenant, its own IdP", path: "/crm/globex", token: globexFromGlobex, headers: []string{"X-Tenant-ID: globex"}, tenant: "globex"},
		{name: "registry: unknown tenant", path: "/crm/umbrella", token: umbrella, headers: []string{"X-Tenant-ID: umbrella"}, status: 403, reason: "tenant_unknown"},
		{name: "registry: suspended tenant", path: "/crm/initech", token: initech, headers: []string{"X-Tenant-ID: initech"}, status: 403, reason: "tenant_suspended"},
		{name: "registry: tenant A's IdP mints for tenant B", path: "/crm/globex-from-acme", token: globexFromAcme, headers: []string{"X-Tenant-ID: globex"}, status: 403, reason: "issuer_not_allowed_for_tenant"},
		{name: "registry: disconnected connector", path: "/connector/erp/x", token: acme, headers: []string{"X-Tenant-ID: acme"}, status: 403, reason: "connector_disconnected"},
		{name: "registry: connector not listed", path: "/connector/billing/x", token: acme, headers: []string{"X-Tenant-ID: acme"}, status: 403, reason: "connector_disconnected"},
		{name: "registry: connector from placeholder, connected", path: "/connector/crm/x", token: acme, headers: []string{"X-Tenant-ID: acme"}, tenant: "acme"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.sidecar.Get(t, tc.path, tc.token, tc.headers...)
			if tc.status != 0 {
				s.assertRefused(t, tc.path, resp, body, tc.status, tc.reason)
				return
			}
			s.assertForwarded(t, tc.path, resp, body, tc.tenant)
		})
	}

	// The placeholders carry the verified tenant and connector to later
	// handlers: here reverse_proxy's header_up.
	got := s.assertForwarded(t, "/connector/crm/x", &http.Response{StatusCode: 200}, nil, "acme")
	if got.Header.Get("X-Served-Tenant") != "acme" || got.Header.Get("X-Served-Connector") != "crm" {
		t.Fatalf("placeholders reached the upstream as tenant %q connector %q", got.Header.Get("X-Served-Tenant"), got.Header.Get("X-Served-Connector"))
	}

	// Refusal bodies never echo the client's header value.
	resp, body := s.sidecar.Get(t, "/plain/echo", acme, "X-Tenant-ID: globex-secret-value")
	s.assertRefused(t, "/plain/echo", resp, body, 403, "tenant_mismatch")
	if strings.Contains(string(body)+s.sidecar.Output(), "globex-secret-value") {
		t.Fatalf("the refusal or the logs echo the client's tenant header: %s", body)
	}
}
