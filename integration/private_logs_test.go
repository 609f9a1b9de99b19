package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// globalLogBlock returns the `log { ... }` block of a Caddyfile's global
// options, as written.
func globalLogBlock(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "\n\tlog {\n")
	if start < 0 {
		t.Fatalf("%s has no log block in its global options", path)
	}
	end := strings.Index(text[start:], "\n\t}\n")
	if end < 0 {
		t.Fatalf("%s: the global log block is not closed", path)
	}
	return text[start+1 : start+end+4] // through the closing brace and its newline
}

// TestExampleCaddyfilesKeepCaddysLogsPrivate: audit_log never writes query
// values or client addresses, but Caddy's own error log writes the failed
// request. The deployable examples filter it; this runs their log block in
// front of an upstream that is down and reads what Caddy logged.
func TestExampleCaddyfilesKeepCaddysLogsPrivate(t *testing.T) {
	block := globalLogBlock(t, "caddyfiles/production.Caddyfile")
	if other := globalLogBlock(t, "caddyfiles/kubernetes.Caddyfile"); other != block {
		t.Fatalf("the log blocks of production.Caddyfile and kubernetes.Caddyfile differ:\n%s\n%s", block, other)
	}
	down := freeAddr(t) // nothing listens there
	s := StartSidecarConfig(t, "{\n\tadmin {$SIDECAR_ADMIN}\n"+block+"}\n\nhttp://{$SIDECAR_ADDR} {\n\treverse_proxy "+down+"\n}\n", nil)

	const email, forwarded = "ada.lovelace@example.com", "203.0.113.77"
	resp, _ := s.Get(t, "/v1/contacts?email="+email+"&limit=5", "", "X-Forwarded-For: "+forwarded, "Forwarded: for="+forwarded)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502 from the upstream that is down", resp.StatusCode)
	}
	var entry struct {
		Logger  string `json:"logger"`
		Request struct {
			RemoteIP string              `json:"remote_ip"`
			ClientIP string              `json:"client_ip"`
			URI      string              `json:"uri"`
			Headers  map[string][]string `json:"headers"`
		} `json:"request"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for entry.Logger == "" && time.Now().Before(deadline) {
		for line := range strings.SplitSeq(s.Output(), "\n") {
			if strings.Contains(line, `"logger":"http.log.error"`) {
				if err := json.Unmarshal([]byte(line), &entry); err != nil {
					t.Fatalf("the error log line is not JSON: %v\n%s", err, line)
				}
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if entry.Logger == "" {
		t.Fatalf("Caddy logged no error for the 502; output:\n%s", s.Output())
	}
	if entry.Request.URI != "/v1/contacts?REDACTED" {
		t.Errorf("uri %q, want the path with the query cut", entry.Request.URI)
	}
	if entry.Request.RemoteIP != "127.0.0.0" || entry.Request.ClientIP != "127.0.0.0" {
		t.Errorf("remote_ip %q, client_ip %q: want the masked 127.0.0.0", entry.Request.RemoteIP, entry.Request.ClientIP)
	}
	for _, h := range []string{"X-Forwarded-For", "Forwarded"} {
		if _, ok := entry.Request.Headers[h]; ok {
			t.Errorf("the error log kept %s", h)
		}
	}
	for _, secret := range []string{email, "ada.lovelace", forwarded} {
		if strings.Contains(s.Output(), secret) {
			t.Errorf("the process output contains %q", secret)
		}
	}
}
