package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const auditCaddyfile = "caddyfiles/test/audit_log.Caddyfile"

var hexHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestAuditLogAllowedRequestRecord(t *testing.T) {
	s, up, file := startAuditSidecar(t, auditCaddyfile, nil)
	resp, body := s.Get(t, "/items?limit=5&email=alice%40example.com&x=query-value-77", "opaque-bearer-secret-1",
		"Cookie: session=cookie-secret-42")
	if resp.StatusCode != http.StatusOK || string(body) != `{"ok":true}` {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	if up.Calls() != 1 {
		t.Fatalf("upstream calls %d", up.Calls())
	}
	rec := waitAudit(t, file, 1)[0]
	if rec.Decision != "allow" || rec.Reason != "ok" || rec.Status != 200 {
		t.Errorf("decision %q reason %q status %d, want allow ok 200", rec.Decision, rec.Reason, rec.Status)
	}
	if rec.Method != "GET" || rec.Path != "/items" || rec.Host != s.Addr {
		t.Errorf("method %q path %q host %q", rec.Method, rec.Path, rec.Host)
	}
	if !slices.Equal(rec.QueryParams, []string{"limit", "email", "x"}) {
		t.Errorf("query_params %q, want the names limit, email, x", rec.QueryParams)
	}
	if rec.BytesOut != int64(len(body)) {
		t.Errorf("bytes_out %d, want %d", rec.BytesOut, len(body))
	}
	if rec.Seq != 1 || rec.PrevHash != strings.Repeat("0", 64) || !hexHash.MatchString(rec.Hash) {
		t.Errorf("seq %d prev_hash %q hash %q: want the first link of a chain", rec.Seq, rec.PrevHash, rec.Hash)
	}
	ts, err := time.Parse(time.RFC3339Nano, rec.TS)
	if err != nil || !strings.HasSuffix(rec.TS, "Z") || time.Since(ts) > time.Hour || time.Since(ts) < -time.Hour {
		t.Errorf("ts %q is not a current RFC 3339 UTC time (%v)", rec.TS, err)
	}
	if rec.RequestID == "" || rec.Instance == "" || rec.DurationMS < 0 {
		t.Errorf("request_id %q instance %q duration_ms %v", rec.RequestID, rec.Instance, rec.DurationMS)
	}
	if rec.SecurityEvent != "" {
		t.Errorf("an allowed request is not a security event: %q", rec.SecurityEvent)
	}
	audit, _ := os.ReadFile(file)
	assertNoSecrets(t, map[string]string{"audit log": string(audit), "process output": s.Output()},
		"opaque-bearer-secret-1", "cookie-secret-42", "alice@example.com", "alice%40example.com", "query-value-77")
}

func TestAuditLogUpstreamFailureIsRecorded(t *testing.T) {
	s, _, file := startAuditSidecar(t, auditCaddyfile, map[string]string{"DEAD_PORT": strings.Split(freeAddr(t), ":")[1]})
	resp, _ := s.Get(t, "/down/orders", "")
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502 from the dead upstream", resp.StatusCode)
	}
	rec := waitAudit(t, file, 1)[0]
	if rec.Decision != "deny" || rec.Reason != "upstream_unavailable" || rec.Status != 502 {
		t.Errorf("decision %q reason %q status %d, want deny upstream_unavailable 502", rec.Decision, rec.Reason, rec.Status)
	}
	if rec.SecurityEvent != "" {
		t.Errorf("an upstream outage is not a security event: %q", rec.SecurityEvent)
	}
	if strings.Contains(s.Output(), `"security_event"`) {
		t.Errorf("an upstream outage was logged as a security event:\n%s", s.Output())
	}
}

func TestAuditLogOneRecordPerRequestAndMetrics(t *testing.T) {
	s, _, file := startAuditSidecar(t, auditCaddyfile, map[string]string{"DEAD_PORT": strings.Split(freeAddr(t), ":")[1]})
	for i := 0; i < 5; i++ {
		if resp, _ := s.Get(t, "/ok", ""); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	for i := 0; i < 2; i++ {
		s.Get(t, "/down/x", "")
	}
	recs := waitAudit(t, file, 7)
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
		if i > 0 && r.PrevHash != recs[i-1].Hash {
			t.Fatalf("record %d does not link to record %d", i, i-1)
		}
	}
	if code, out := auditCmd(t, "verify", file); code != 0 || !strings.Contains(out, "OK: 7 records") {
		t.Fatalf("verify exit %d: %s", code, out)
	}
	// Exposed by Caddy's own metrics handler (the scrape is itself audited afterwards).
	m := scrapeMetrics(t, s.URL+"/metrics")
	for _, want := range []string{
		`sidecar_requests_total{connector="",decision="allow",reason="ok"} 5`,
		`sidecar_requests_total{connector="",decision="deny",reason="upstream_unavailable"} 2`,
		`sidecar_audit_write_failures_total 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(m, "sidecar_"))
		}
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAuditLogWithHandleErrors: refusals returned as errors still reach
// handle_errors unchanged, and the record has the refusal's reason and status.
func TestAuditLogWithHandleErrors(t *testing.T) {
	iss := StartIssuer(t)
	up := StartUpstream(t, nil)
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	s := StartSidecarConfig(t, `{
	admin {$SIDECAR_ADMIN}
}

http://{$SIDECAR_ADDR} {
	audit_log {
		output file {$AUDIT_FILE}
		pseudonym_key {env.AUDIT_KEY}
	}
	oidc_auth {
		issuer {$ISSUER} {
			audience connector-api
		}
	}
	reverse_proxy {$UPSTREAM}
	handle_errors {
		respond "custom page: {sidecar.reason}" {http.error.status_code}
	}
}
`, map[string]string{"AUDIT_FILE": file, "AUDIT_KEY": auditKey, "UPSTREAM": up.Addr, "ISSUER": iss.URL})
	resp, body := s.Get(t, "/x", "")
	if resp.StatusCode != http.StatusUnauthorized || string(body) != "custom page: token_missing" {
		t.Fatalf("status %d body %q: handle_errors did not get the refusal", resp.StatusCode, body)
	}
	rec := waitAudit(t, file, 1)[0]
	if rec.Decision != "deny" || rec.Reason != "token_missing" || rec.Status != 401 {
		t.Fatalf("record %+v", rec)
	}
	tok := iss.MustMint(iss.AccessClaims("erin-2718", "connector-api", nil))
	if resp, _ := s.Get(t, "/x", tok); resp.StatusCode != 200 {
		t.Fatalf("valid token: %d", resp.StatusCode)
	}
	if rec := waitAudit(t, file, 2)[1]; rec.Decision != "allow" || rec.Subject == "" || rec.Subject == "erin-2718" {
		t.Fatalf("record %+v", rec)
	}
}
