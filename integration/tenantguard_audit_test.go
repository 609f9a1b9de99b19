package integration

import (
	"slices"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// TestTenantGuardDecisionReachesAudit: what tenant_guard decides lands in
// the audit record: the tenant, the connector, the reason of a refusal, and
// the disguised headers it removed, which make the request a security event.
func TestTenantGuardDecisionReachesAudit(t *testing.T) {
	iss := StartIssuer(t)
	s, up, file := startAuditSidecar(t, "caddyfiles/test/audit_log_oidc.Caddyfile", map[string]string{"ISSUER": iss.URL})
	acme := tgToken(iss, devidp.Claims{"tenant_id": "acme"})

	resp, body := s.Get(t, "/contacts", acme, "X-Tenant-ID: acme", "X_Tenant_ID: globex", "Connection: X-Tenant-ID")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if problem := tgCheckTenantHeaders(up.Last(t).Header, "acme"); problem != "" {
		t.Fatal(problem)
	}
	resp, body = s.Get(t, "/contacts", acme, "X-Tenant-ID: globex")
	if resp.StatusCode != 403 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if up.Calls() != 1 {
		t.Fatalf("the upstream was called %d times, want 1", up.Calls())
	}

	recs := waitAudit(t, file, 2)
	allowed, refused := recs[0], recs[1]
	if allowed.Decision != "allow" || allowed.Tenant != "acme" || allowed.Connector != "crm" {
		t.Errorf("allowed record: decision %q tenant %q connector %q", allowed.Decision, allowed.Tenant, allowed.Connector)
	}
	// The underscore copy never reaches a handler: Caddy drops underscore
	// names by default (see TestTenantGuardAllowedAliases for a server that
	// lets them through). The Connection token is tenant_guard's to record.
	if !slices.Equal(allowed.SpoofedHeaders, []string{"Connection: X-Tenant-Id"}) {
		t.Errorf("allowed record: spoofed headers %q, want the Connection token", allowed.SpoofedHeaders)
	}
	if allowed.SecurityEvent == "" {
		t.Errorf("a request carrying a disguised tenant header is a security event")
	}
	if refused.Decision != "deny" || refused.Reason != "tenant_mismatch" || refused.Status != 403 || refused.Tenant != "acme" || refused.Connector != "crm" {
		t.Errorf("refused record: decision %q reason %q status %d tenant %q connector %q",
			refused.Decision, refused.Reason, refused.Status, refused.Tenant, refused.Connector)
	}
	if refused.SecurityEvent == "" {
		t.Errorf("a tenant mismatch is a security event")
	}
	if data := s.Output(); strings.Contains(data, "globex") {
		t.Errorf("the logs carry the client's tenant header value")
	}
}
