package integration

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// collector is a TCP log sink that keeps every line it receives.
type collector struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
	conns []net.Conn
}

func startCollector(t *testing.T) *collector {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conns = append(c.conns, conn)
			c.mu.Unlock()
			go func() {
				sc := bufio.NewScanner(conn)
				sc.Buffer(make([]byte, 1<<20), 1<<20)
				for sc.Scan() {
					c.mu.Lock()
					c.lines = append(c.lines, sc.Text())
					c.mu.Unlock()
				}
			}()
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *collector) stop() {
	c.ln.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
}

func (c *collector) waitLines(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := append([]string(nil), c.lines...)
		c.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				t.Fatalf("the collector has %d lines, want %d", len(got), n)
			}
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAuditLogNetOutput sends records to a network sink; when the sink goes
// away, requests are refused instead of served unaudited.
func TestAuditLogNetOutput(t *testing.T) {
	col := startCollector(t)
	up := StartUpstream(t, nil)
	s := StartSidecarConfig(t, `{
	admin {$SIDECAR_ADMIN}
}

http://{$SIDECAR_ADDR} {
	audit_log {
		output net {$COLLECTOR}
		pseudonym_key {env.AUDIT_KEY}
		keyring {$KEYRING}
		instance net-test
	}
	reverse_proxy {$UPSTREAM}
}
`, map[string]string{"COLLECTOR": col.ln.Addr().String(), "AUDIT_KEY": auditKey, "UPSTREAM": up.Addr,
		"KEYRING": filepath.Join(t.TempDir(), "audit.keyring.json")})

	for i := 0; i < 3; i++ {
		if resp, _ := s.Get(t, "/net", ""); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	lines := col.waitLines(t, 3)
	for _, l := range lines {
		var rec auditRecord
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Path != "/net" || !strings.HasPrefix(rec.Instance, "net-test:") {
			t.Fatalf("collected line %s (%v)", l, err)
		}
	}
	file := filepath.Join(t.TempDir(), "collected.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := auditCmd(t, "verify", file); code != 0 {
		t.Fatalf("verify collected records: %s", out)
	}

	// The sink goes away: within a few requests (TCP may accept a write or
	// two into its buffers before reporting the broken connection) the
	// sidecar starts refusing.
	col.stop()
	refused, served := false, 0
	for i := 0; i < 20 && !refused; i++ {
		resp, body := s.Get(t, "/after", "")
		if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "audit_unavailable") {
			refused = true
		} else {
			served++
		}
	}
	t.Logf("%d requests were served after the sink went away, before the failure showed", served)
	if !refused {
		t.Fatalf("the sidecar kept serving with its network audit sink gone:\n%s", s.Output())
	}
	if m := scrapeMetrics(t, "http://"+s.AdminAddr+"/metrics"); strings.Contains(m, "sidecar_audit_write_failures_total 0") {
		t.Errorf("no write failure counted:\n%s", grepLines(m, "sidecar_"))
	}
}
