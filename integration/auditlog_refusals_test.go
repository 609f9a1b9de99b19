package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// TestAuditLogRecordsEveryModulesRefusals runs the whole chain and sends one
// request per refusal path of oidc_auth, tenant_guard and scope_trim, plus
// allowed and trimmed requests: each writes exactly one record carrying the
// refusing module's reason and the status the client saw; attack-like
// refusals are security events; nothing secret reaches the log.
func TestAuditLogRecordsEveryModulesRefusals(t *testing.T) {
	iss, other := StartIssuer(t), StartIssuer(t)
	answerMu := make(chan http.HandlerFunc, 1)
	answerMu <- crmAnswer(crmContacts)
	up := StartUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := <-answerMu
		answerMu <- h
		h(w, r)
	})
	setAnswer := func(h http.HandlerFunc) { <-answerMu; answerMu <- h }

	registry := filepath.Join(t.TempDir(), "tenants.json")
	if err := os.WriteFile(registry, []byte(fmt.Sprintf(`{"tenants":[
		{"id":"acme","status":"active","issuers":[%q],"connectors":[{"id":"crm","state":"connected"}]},
		{"id":"globex","status":"active","issuers":["https://globex.okta.example"],"connectors":[{"id":"crm","state":"connected"}]},
		{"id":"umbrella","status":"suspended","issuers":[%q],"connectors":[{"id":"crm","state":"connected"}]},
		{"id":"hooli","status":"active","issuers":[%q],"connectors":[{"id":"crm","state":"disconnected"}]}
	]}`, iss.URL, iss.URL, iss.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	s := StartSidecar(t, "caddyfiles/test/audit_log_chain.Caddyfile", map[string]string{
		"AUDIT_FILE": file, "AUDIT_KEY": auditKey, "UPSTREAM": up.Addr, "ISSUER": iss.URL,
		"TENANTS": registry, "SCOPE_TRIM_HASH_KEY": scopeTrimHashKey,
	})

	const subject = "dana-subject-3141"
	mint := func(tenant, scope string, extra devidp.Claims) string {
		c := devidp.Claims{"tenant_id": tenant, "scope": scope, "email": "dana@example.com", "crm_user_id": crmUser["crm_user_id"], "crm_team": crmUser["crm_team"]}
		for k, v := range extra {
			c[k] = v
		}
		return iss.MustMint(iss.AccessClaims(subject, "connector-api", c))
	}
	good := mint("acme", "contacts:read", nil)
	parts := strings.Split(good, ".")
	badSig := []byte(parts[2])
	if badSig[10] == 'A' { // well-formed base64url, wrong signature
		badSig[10] = 'B'
	} else {
		badSig[10] = 'A'
	}
	past := time.Now().Add(-time.Hour)
	tokens := map[string]string{
		"good":        good,
		"forged":      parts[0] + "." + parts[1] + "." + string(badSig),
		"expired":     mint("acme", "contacts:read", devidp.Claims{"iat": past.Add(-time.Hour).Unix(), "nbf": past.Add(-time.Hour).Unix(), "exp": past.Unix()}),
		"future":      mint("acme", "contacts:read", devidp.Claims{"nbf": time.Now().Add(time.Hour).Unix()}),
		"other iss":   other.MustMint(other.AccessClaims(subject, "connector-api", devidp.Claims{"tenant_id": "acme", "scope": "contacts:read"})),
		"other aud":   iss.MustMint(iss.AccessClaims(subject, "other-api", devidp.Claims{"tenant_id": "acme", "scope": "contacts:read"})),
		"hs256":       devidp.SignHMAC(nil, iss.AccessClaims(subject, "connector-api", devidp.Claims{"tenant_id": "acme"}), []byte("guessed-secret-0123456789abcdef0")),
		"no tenant":   mint("", "contacts:read", devidp.Claims{"tenant_id": nil}),
		"globex":      mint("globex", "contacts:read", nil),
		"umbrella":    mint("umbrella", "contacts:read", nil),
		"hooli":       mint("hooli", "contacts:read", nil),
		"initech":     mint("initech", "contacts:read", nil),
		"deals only":  mint("acme", "deals:read", nil),
		"pii allowed": mint("acme", "contacts:read contacts:pii", nil),
	}

	type tc struct {
		name, path, token string
		headers           []string
		respond           http.HandlerFunc
		status            int
		reason, event     string
	}
	acme := "X-Tenant-ID: acme"
	cases := []tc{
		{"allowed and trimmed", "/v1/contacts", "good", []string{acme}, nil, 200, "ok", ""},
		{"allowed with pii", "/v1/contacts?limit=2", "pii allowed", []string{acme}, nil, 200, "ok", ""},
		{"no token", "/v1/contacts", "", []string{acme}, nil, 401, "token_missing", ""},
		{"malformed token", "/v1/contacts", "not-a-jwt", []string{acme}, nil, 401, "token_malformed", ""},
		{"forged signature", "/v1/contacts", "forged", []string{acme}, nil, 401, "token_invalid", "token_invalid"},
		{"expired", "/v1/contacts", "expired", []string{acme}, nil, 401, "token_expired", ""},
		{"not yet valid", "/v1/contacts", "future", []string{acme}, nil, 401, "token_not_yet_valid", ""},
		{"unknown issuer", "/v1/contacts", "other iss", []string{acme}, nil, 401, "issuer_unknown", ""},
		{"wrong audience", "/v1/contacts", "other aud", []string{acme}, nil, 401, "audience_mismatch", ""},
		{"HS256", "/v1/contacts", "hs256", []string{acme}, nil, 401, "algorithm_not_allowed", "algorithm_not_allowed"},
		{"no tenant header", "/v1/contacts", "good", nil, nil, 400, "tenant_missing", ""},
		{"other tenant", "/v1/contacts", "good", []string{"X-Tenant-ID: globex"}, nil, 403, "tenant_mismatch", "tenant_mismatch"},
		{"two tenant values", "/v1/contacts", "good", []string{acme, "X-Tenant-ID: globex"}, nil, 400, "tenant_malformed", "tenant_malformed"},
		{"no tenant claim", "/v1/contacts", "no tenant", []string{acme}, nil, 403, "tenant_claim_missing", ""},
		{"issuer not allowed", "/v1/contacts", "globex", []string{"X-Tenant-ID: globex"}, nil, 403, "issuer_not_allowed_for_tenant", "issuer_not_allowed_for_tenant"},
		{"suspended tenant", "/v1/contacts", "umbrella", []string{"X-Tenant-ID: umbrella"}, nil, 403, "tenant_suspended", ""},
		{"disconnected connector", "/v1/contacts", "hooli", []string{"X-Tenant-ID: hooli"}, nil, 403, "connector_disconnected", ""},
		{"unknown tenant", "/v1/contacts", "initech", []string{"X-Tenant-ID: initech"}, nil, 403, "tenant_unknown", ""},
		{"no policy", "/v1/admin/users", "good", []string{acme}, nil, 403, "no_policy", ""},
		{"insufficient scope", "/v1/contacts", "deals only", []string{acme}, nil, 403, "insufficient_scope", ""},
		{"upgrade", "/v1/contacts", "good", []string{acme, "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}, nil, 400, "upgrade_refused", ""},
		{"upstream invalid JSON", "/v1/contacts", "good", []string{acme}, crmAnswer(`{"data":[{"email":"ada@example.com"}`), 502, "upstream_invalid_json", "upstream_invalid_json"},
		{"upstream duplicate key", "/v1/contacts", "good", []string{acme}, crmAnswer(`{"data":[{"id":"c1","ssn":"x","ssn":"123-45-6789"}]}`), 502, "upstream_duplicate_key", "upstream_duplicate_key"},
		{"upstream not JSON", "/v1/contacts", "good", []string{acme}, answer(200, "text/html", crmContacts), 502, "upstream_not_json", "upstream_not_json"},
		{"spoofed identity header", "/v1/contacts", "good", []string{acme, "X-Auth-Subject: admin"}, nil, 200, "ok", "spoofed_identity_header"},
	}
	for i, c := range cases {
		if c.respond != nil {
			setAnswer(c.respond)
		} else {
			setAnswer(crmAnswer(crmContacts))
		}
		tok := tokens[c.token]
		if tok == "" {
			tok = c.token
		}
		resp, body := s.Do(t, NewRequest(t, http.MethodGet, c.path, tok, c.headers...))
		if resp.StatusCode != c.status {
			t.Fatalf("%s: status %d, want %d: %s", c.name, resp.StatusCode, c.status, body)
		}
		rec := waitAudit(t, file, i+1)[i]
		wantDecision := "deny"
		if c.reason == "ok" {
			wantDecision = "allow"
		}
		if rec.Decision != wantDecision || rec.Reason != c.reason || rec.Status != c.status || rec.SecurityEvent != c.event {
			t.Errorf("%s: record decision %q reason %q status %d security_event %q; want %s %s %d %q",
				c.name, rec.Decision, rec.Reason, rec.Status, rec.SecurityEvent, wantDecision, c.reason, c.status, c.event)
		}
		if rec.Path != c.path && !strings.HasPrefix(c.path, rec.Path+"?") {
			t.Errorf("%s: path %q", c.name, rec.Path)
		}
	}
	recs := readAudit(t, file)
	if len(recs) != len(cases) {
		t.Fatalf("%d records for %d requests", len(recs), len(cases))
	}

	trimmed := recs[0]
	if trimmed.Tenant != "acme" || trimmed.Connector != "crm" || trimmed.Policy == "" || trimmed.FieldsRemoved == 0 ||
		!containsString(trimmed.Withheld, "data.#.email") || trimmed.Issuer != iss.URL || len(trimmed.Subject) != 32 ||
		trimmed.BytesOut == 0 || !containsString(trimmed.Scopes, "contacts:read") {
		t.Errorf("the trimmed request's record: %+v", trimmed)
	}
	if recs[1].FieldsRemoved >= trimmed.FieldsRemoved || !containsString(recs[1].QueryParams, "limit") {
		t.Errorf("with contacts:pii fewer fields are withheld: %d vs %d; query_params %q", recs[1].FieldsRemoved, trimmed.FieldsRemoved, recs[1].QueryParams)
	}
	var tm auditRecord
	for _, r := range recs {
		if r.Reason == "tenant_mismatch" {
			tm = r
		}
	}
	if tm.Tenant != "acme" || tm.Subject != trimmed.Subject {
		t.Errorf("the tenant_mismatch record names tenant %q subject %q; want the token's tenant and the same pseudonym", tm.Tenant, tm.Subject)
	}
	if code, out := auditCmd(t, "verify", file); code != 0 {
		t.Fatalf("verify: %s", out)
	}

	audit, _ := os.ReadFile(file)
	secrets := []string{subject, "dana@example.com", auditKey, scopeTrimHashKey}
	for _, v := range crmSecrets {
		// withheld lists path patterns such as data.#.lead_score by design:
		// a field's name is recorded, never its value. Short digit strings
		// ("7946") occur by chance in hashes and request ids: the whole
		// values are checked below instead.
		if v != "lead_score" && !shortHex.MatchString(v) {
			secrets = append(secrets, v)
		}
	}
	secrets = append(secrets, "+44 20 7946 0958", "555-0100-2233", "Ada Lovelace", "12 Byron St")
	for _, tok := range tokens {
		secrets = append(secrets, tok)
		for _, part := range strings.Split(tok, ".") {
			if len(part) > 8 {
				secrets = append(secrets, part)
			}
		}
	}
	assertNoSecrets(t, map[string]string{"audit log": string(audit), "process output": s.Output()}, secrets...)
}

var shortHex = regexp.MustCompile(`^[0-9a-f]{1,12}$`)

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
