package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// TestScopeTrimInTheWholeChain runs audit_log, oidc_auth, tenant_guard and
// scope_trim together: the audit record names the policy, the endpoint and
// the withheld patterns (never values), the hash is keyed per tenant, and an
// upstream refusal is recorded as a security event.
func TestScopeTrimInTheWholeChain(t *testing.T) {
	iss := StartIssuer(t)
	crm := StartUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/deals/dup" {
			crmAnswer(`{"data":[{"id":"d1","contact_email":"x","contact_email":"ada@example.com"}]}`)(w, r)
			return
		}
		crmAnswer(crmContacts)(w, r)
	})
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	s := StartSidecar(t, "caddyfiles/test/scope_trim_chain.Caddyfile", map[string]string{
		"ISSUER": iss.URL, "SCOPE_TRIM_HASH_KEY": scopeTrimHashKey, "AUDIT_FILE": file, "AUDIT_KEY": auditKey, "UPSTREAM": crm.Addr,
	})
	token := func(tenant, scope string, roles ...string) string {
		c := devidp.Claims{"tenant_id": tenant, "scope": scope, "crm_user_id": crmUser["crm_user_id"], "crm_team": crmUser["crm_team"]}
		if len(roles) > 0 {
			c["roles"] = roles
		}
		return iss.MustMint(iss.AccessClaims("alice", "connector-api", c))
	}

	resp, body := s.Get(t, "/v1/contacts", token("acme", "openid", "sales_rep"), "X-Tenant-ID: acme")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"name":"Ada Lovelace"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	assertWithheld(t, resp, body, crmSecrets...)

	emails := map[string]string{}
	for _, tenant := range []string{"acme", "globex"} {
		resp, body := s.Get(t, "/v1/contacts", token(tenant, "contacts:analytics"), "X-Tenant-ID: "+tenant)
		var got struct {
			Data []map[string]any `json:"data"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil || len(got.Data) == 0 {
			t.Fatalf("%s: %d %s", tenant, resp.StatusCode, body)
		}
		emails[tenant], _ = got.Data[0]["email"].(string)
		assertWithheld(t, resp, body, "ada@example.com")
	}
	if len(emails["acme"]) != 64 || emails["acme"] == emails["globex"] {
		t.Fatalf("the hash must be keyed per tenant: %v", emails)
	}

	resp, body = s.Get(t, "/v1/deals/dup", token("acme", "deals:read"), "X-Tenant-ID: acme")
	assertScopeTrimRefused(t, resp, body, 502, "upstream_duplicate_key")
	resp, body = s.Get(t, "/v1/admin", token("acme", "deals:read"), "X-Tenant-ID: acme")
	assertScopeTrimRefused(t, resp, body, 403, "no_policy")

	recs := waitAudit(t, file, 5)
	first := recs[0]
	if first.Decision != "allow" || first.Tenant != "acme" || first.Policy != "crm@2026-11-01" || first.Endpoint != "/v1/contacts*" {
		t.Fatalf("record %+v", first)
	}
	for _, p := range []string{"data.#.email", "data.#.ssn", "data.#.lead_score", "debug"} {
		if !slices.Contains(first.Withheld, p) {
			t.Errorf("withheld %v lacks %s", first.Withheld, p)
		}
	}
	if first.FieldsRemoved < 10 {
		t.Errorf("fields_removed %d", first.FieldsRemoved)
	}
	dup, last := recs[3], recs[4]
	if dup.Decision != "deny" || dup.Reason != "upstream_duplicate_key" || dup.Status != 502 || dup.SecurityEvent == "" || dup.Policy != "crm@2026-11-01" {
		t.Errorf("upstream refusal record %+v", dup)
	}
	if last.Decision != "deny" || last.Reason != "no_policy" || last.Status != 403 {
		t.Errorf("refused record %+v", last)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range append(slices.Clone(crmSecrets), "+44 20 7946 0958") {
		if secret == "lead_score" {
			continue // a key: it is in the audit log as the pattern data.#.lead_score
		}
		if shortHex.MatchString(secret) {
			continue // "0958" occurs by chance in hashes and request ids; the whole phone number is checked
		}
		if strings.Contains(string(data), secret) || strings.Contains(s.Output(), secret) {
			t.Fatalf("withheld value %q is in the audit log or the process output", secret)
		}
	}
}
