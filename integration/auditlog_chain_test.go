package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// auditLines runs n requests through a fresh sidecar, stops it and returns
// the audit file's lines.
func auditLines(t *testing.T, n int) []string {
	t.Helper()
	s, _, file := startAuditSidecar(t, auditCaddyfile, nil)
	for i := 0; i < n; i++ {
		s.Get(t, fmt.Sprintf("/r/%d", i), "")
	}
	waitAudit(t, file, n)
	s.Stop()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
}

func writeLines(t *testing.T, name string, lines []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	text := strings.Join(lines, "")
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuditLogVerifyDetectsTampering(t *testing.T) {
	lines := auditLines(t, 6)
	fix := func(s string) string { // every line but the last ends in \n
		if !strings.HasSuffix(s, "\n") {
			return s + "\n"
		}
		return s
	}
	for i := range lines {
		lines[i] = fix(lines[i])
	}
	intact := writeLines(t, "audit.jsonl", lines)
	if code, out := auditCmd(t, "verify", intact); code != 0 || !strings.Contains(out, "OK: 6 records, seq 1 to 6") {
		t.Fatalf("intact chain: exit %d: %s", code, out)
	}

	with := func(f func([]string) []string) []string { return f(append([]string(nil), lines...)) }
	cases := []struct {
		name  string
		lines []string
		want  string // names the first bad record
	}{
		{"changed status", with(func(l []string) []string {
			l[2] = strings.Replace(l[2], `"status":200`, `"status":201`, 1)
			return l
		}), "audit.jsonl:3: record seq 3: hash does not match"},
		{"changed path", with(func(l []string) []string {
			l[3] = strings.Replace(l[3], `"path":"/r/3"`, `"path":"/r/9"`, 1)
			return l
		}), "audit.jsonl:4: record seq 4: hash does not match"},
		{"added field", with(func(l []string) []string {
			l[1] = strings.Replace(l[1], `{"ts"`, `{"note":"x","ts"`, 1)
			return l
		}), `audit.jsonl:2: not an audit record: unknown member "note"`},
		{"removed record", with(func(l []string) []string {
			return append(l[:2], l[3:]...)
		}), "audit.jsonl:3: record seq 4: expected seq 3"},
		{"removed first record", with(func(l []string) []string {
			return l[1:]
		}), "audit.jsonl:1: record seq 2: the chain starts at seq 2"},
		{"inserted copy", with(func(l []string) []string {
			return append(l[:3], append([]string{l[1]}, l[3:]...)...)
		}), "audit.jsonl:4: record seq 2: expected seq 4 after seq 3"},
		{"inserted garbage", with(func(l []string) []string {
			return append(l[:3], append([]string{"{\"ts\":\"x\"}\n"}, l[3:]...)...)
		}), `audit.jsonl:4: member "request_id" is missing`},
		{"reordered", with(func(l []string) []string {
			l[2], l[3] = l[3], l[2]
			return l
		}), "audit.jsonl:3: record seq 4: expected seq 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeLines(t, "audit.jsonl", c.lines)
			code, out := auditCmd(t, "verify", path)
			if code == 0 {
				t.Fatalf("verify accepted a tampered log: %s", out)
			}
			if !strings.Contains(out, c.want) {
				t.Fatalf("verify output does not name %q:\n%s", c.want, out)
			}
		})
	}

	// Split into two files: in order they verify, out of order they do not;
	// the second alone needs --partial.
	first := writeLines(t, "audit-1.jsonl", lines[:3])
	second := writeLines(t, "audit.jsonl", lines[3:])
	if code, out := auditCmd(t, "verify", first, second); code != 0 {
		t.Fatalf("two files in order: exit %d: %s", code, out)
	}
	if code, out := auditCmd(t, "verify", second, first); code == 0 {
		t.Fatalf("two files out of order verified: %s", out)
	}
	if code, _ := auditCmd(t, "verify", second); code == 0 {
		t.Fatal("a chain missing its beginning verified without --partial")
	}
	if code, out := auditCmd(t, "verify", "--partial", second); code != 0 || !strings.Contains(out, "seq 4 to 6") {
		t.Fatalf("--partial: exit %d: %s", code, out)
	}
}

func TestAuditLogChainContinuesAcrossRestart(t *testing.T) {
	up := StartUpstream(t, nil)
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	env := map[string]string{"AUDIT_FILE": file, "AUDIT_KEY": auditKey, "UPSTREAM": up.Addr}
	s := StartSidecar(t, auditCaddyfile, env)
	for i := 0; i < 3; i++ {
		s.Get(t, "/before", "")
	}
	waitAudit(t, file, 3)
	s.Stop()
	s2 := StartSidecar(t, auditCaddyfile, env)
	for i := 0; i < 2; i++ {
		s2.Get(t, "/after", "")
	}
	recs := waitAudit(t, file, 5)
	if recs[3].Seq != 4 || recs[3].PrevHash != recs[2].Hash {
		t.Fatalf("after the restart the chain restarted: seq %d prev_hash %s (previous hash %s)", recs[3].Seq, recs[3].PrevHash, recs[2].Hash)
	}
	if recs[3].Instance == recs[2].Instance {
		t.Errorf("both process starts have instance %q", recs[3].Instance)
	}
	if code, out := auditCmd(t, "verify", file); code != 0 {
		t.Fatalf("verify after restart: exit %d: %s", code, out)
	}
}

func TestAuditLogRefusesToContinueATamperedTail(t *testing.T) {
	lines := auditLines(t, 2)
	lines[1] = strings.Replace(lines[1], `"status":200`, `"status":204`, 1)
	path := writeLines(t, "audit.jsonl", lines)
	cmd := runSidecarExpectFailure(t, auditCaddyfile, map[string]string{"AUDIT_FILE": path, "AUDIT_KEY": auditKey, "UPSTREAM": "127.0.0.1:9"})
	if !strings.Contains(cmd, "hash does not match") {
		t.Fatalf("the sidecar did not refuse to continue a tampered chain:\n%s", cmd)
	}
}

// TestAuditLogTenThousandConcurrentRequestsRolled sends 10,000 requests from
// 50 workers through an audit log rolled at 1 MiB: 10,000 records, each
// request once, one intact chain across every rolled file.
func TestAuditLogTenThousandConcurrentRequestsRolled(t *testing.T) {
	s, up, file := startAuditSidecar(t, "caddyfiles/test/audit_log_roll.Caddyfile", nil)
	const total, workers = 10000, 50
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				resp, err := client.Get(fmt.Sprintf("%s/req/%d", s.URL, i))
				if err == nil {
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					mu.Lock()
					failures++
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < total; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if failures != 0 {
		t.Fatalf("%d requests failed", failures)
	}
	if up.Calls() != total {
		t.Fatalf("upstream saw %d requests", up.Calls())
	}
	glob := strings.TrimSuffix(file, ".jsonl") + "-*.jsonl"
	waitLinesIn(t, total, glob, file)
	s.Stop()

	rolled, _ := filepath.Glob(glob)
	sort.Strings(rolled)
	if len(rolled) < 2 {
		t.Fatalf("expected the 1 MiB roll to produce rolled files, got %v", rolled)
	}
	files := append(rolled, file)
	recs := readAudit(t, files...)
	if len(recs) != total {
		t.Fatalf("%d records for %d requests", len(recs), total)
	}
	paths := map[string]bool{}
	for _, r := range recs {
		paths[r.Path] = true
	}
	if len(paths) != total {
		t.Fatalf("%d distinct request paths recorded, want %d", len(paths), total)
	}
	code, out := auditCmd(t, append([]string{"verify"}, files...)...)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("OK: %d records", total)) {
		t.Fatalf("verify across %d files: exit %d: %s", len(files), code, out)
	}
}

// TestAuditLogChainContinuesAcrossReload: a config reload shares the open
// output and chain head with the new config, so the chain neither forks nor
// restarts, and requests during the reload are all recorded.
func TestAuditLogChainContinuesAcrossReload(t *testing.T) {
	s, _, file := startAuditSidecar(t, auditCaddyfile, nil)
	for i := 0; i < 3; i++ {
		s.Get(t, "/before", "")
	}
	waitAudit(t, file, 3)
	// A changed config (Caddy skips reloading an identical one).
	src, err := os.ReadFile(filepath.Join(repoRoot, auditCaddyfile))
	if err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(t.TempDir(), "Caddyfile")
	text := strings.Replace(string(src), "pseudonym_key {env.AUDIT_KEY}", "pseudonym_key {env.AUDIT_KEY}\n\t\tinstance reloaded", 1)
	if text == string(src) {
		t.Fatal("could not change the Caddyfile")
	}
	if err := os.WriteFile(changed, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := s.Reload(changed); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	for i := 0; i < 3; i++ {
		s.Get(t, "/after", "")
	}
	recs := waitAudit(t, file, 6)
	if strings.Count(s.Output(), `"servers shutting down`) != 1 {
		t.Fatalf("the old config was not replaced:\n%s", s.Output())
	}
	if recs[3].Seq != 4 || recs[3].PrevHash != recs[2].Hash || recs[3].Instance != recs[2].Instance {
		t.Fatalf("after the reload: seq %d instance %q, before: seq %d instance %q", recs[3].Seq, recs[3].Instance, recs[2].Seq, recs[2].Instance)
	}
	if code, out := auditCmd(t, "verify", file); code != 0 {
		t.Fatalf("verify after reload: %s", out)
	}
}
