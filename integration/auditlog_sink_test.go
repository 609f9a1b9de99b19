package integration

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// sinkFailureCaddyfile writes the audit log to /dev/full, where every write
// fails with ENOSPC, like a full disk.
func sinkFailureCaddyfile(keyring, extra string) string {
	return `{
	admin {$SIDECAR_ADMIN}
}

http://{$SIDECAR_ADDR} {
	audit_log {
		output file /dev/full {
			roll_disabled
		}
		pseudonym_key {env.AUDIT_KEY}
		keyring ` + keyring + `
		` + extra + `
	}
	reverse_proxy {$UPSTREAM}
}
`
}

func TestAuditLogSinkFailureRefusesRequests(t *testing.T) {
	up := StartUpstream(t, nil)
	keyring := filepath.Join(t.TempDir(), "keyring.json")
	s := StartSidecarConfig(t, sinkFailureCaddyfile(keyring, ""), map[string]string{"AUDIT_KEY": auditKey, "UPSTREAM": up.Addr})

	// The first request is served before its record fails to be written;
	// from then on nothing is served unaudited.
	s.Get(t, "/first", "")
	for i := 0; i < 3; i++ {
		resp, body := s.Get(t, "/next", "")
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("request %d after a failed audit write: status %d, want 503; body %s", i, resp.StatusCode, body)
		}
		var p struct {
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(body, &p); err != nil || p.Reason != "audit_unavailable" {
			t.Fatalf("refusal body %s (%v), want reason audit_unavailable", body, err)
		}
	}
	if up.Calls() != 1 {
		t.Fatalf("the upstream served %d requests while the audit log was failing, want only the first", up.Calls())
	}
	if !strings.Contains(s.Output(), "audit record not written") {
		t.Errorf("no error was logged for the failed audit writes:\n%s", s.Output())
	}
	m := scrapeMetrics(t, "http://"+s.AdminAddr+"/metrics")
	for _, want := range []string{
		"sidecar_audit_write_failures_total 4",
		`sidecar_requests_total{connector="",decision="deny",reason="audit_unavailable"} 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(m, "sidecar_"))
		}
	}
}

func TestAuditLogSinkFailureAllowedExplicitly(t *testing.T) {
	up := StartUpstream(t, nil)
	keyring := filepath.Join(t.TempDir(), "keyring.json")
	s := StartSidecarConfig(t, sinkFailureCaddyfile(keyring, "on_write_failure allow"), map[string]string{"AUDIT_KEY": auditKey, "UPSTREAM": up.Addr})
	for i := 0; i < 3; i++ {
		if resp, body := s.Get(t, "/x", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d body %s: on_write_failure allow must serve", resp.StatusCode, body)
		}
	}
	if up.Calls() != 3 {
		t.Fatalf("upstream calls %d, want 3", up.Calls())
	}
	if m := scrapeMetrics(t, "http://"+s.AdminAddr+"/metrics"); !strings.Contains(m, "sidecar_audit_write_failures_total 3") {
		t.Errorf("failures not counted:\n%s", grepLines(m, "sidecar_"))
	}
}
