package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// auditKey is the pseudonym secret the audit tests configure.
const auditKey = "integration-audit-key-0123456789abcdef"

// auditRecord is one audit line as a log consumer reads it.
type auditRecord struct {
	TS             string   `json:"ts"`
	RequestID      string   `json:"request_id"`
	Decision       string   `json:"decision"`
	Reason         string   `json:"reason"`
	Status         int      `json:"status"`
	Method         string   `json:"method"`
	Host           string   `json:"host"`
	Path           string   `json:"path"`
	QueryParams    []string `json:"query_params"`
	Tenant         string   `json:"tenant"`
	Subject        string   `json:"subject"`
	ClientID       string   `json:"client_id"`
	Issuer         string   `json:"issuer"`
	Scopes         []string `json:"scopes"`
	Connector      string   `json:"connector"`
	Policy         string   `json:"policy"`
	Endpoint       string   `json:"endpoint"`
	FieldsRemoved  int      `json:"fields_removed"`
	Withheld       []string `json:"withheld"`
	HeadersRemoved []string `json:"headers_removed"`
	// HeadersRemovedOmitted and SpoofedHeadersOmitted count the names
	// beyond the 16 listed.
	HeadersRemovedOmitted int      `json:"headers_removed_omitted"`
	SpoofedHeaders        []string `json:"spoofed_headers"`
	SpoofedHeadersOmitted int      `json:"spoofed_headers_omitted"`
	SecurityEvent         string   `json:"security_event"`
	BytesOut              int64    `json:"bytes_out"`
	DurationMS            float64  `json:"duration_ms"`
	Instance              string   `json:"instance"`
	Seq                   uint64   `json:"seq"`
	PrevHash              string   `json:"prev_hash"`
	Hash                  string   `json:"hash"`
}

// auditFields are the record fields the issue fixes; every line has them.
var auditFields = []string{"ts", "request_id", "decision", "reason", "status", "method", "host", "path",
	"tenant", "subject", "client_id", "issuer", "scopes", "connector", "policy", "fields_removed",
	"withheld", "bytes_out", "duration_ms", "seq", "prev_hash", "hash", "instance"}

// readAudit parses every line of the audit files, checking each carries
// every contract field.
func readAudit(t testing.TB, files ...string) []auditRecord {
	t.Helper()
	var out []auditRecord
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("reading the audit log: %v", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(sc.Bytes(), &fields); err != nil {
				t.Fatalf("audit line is not JSON: %v: %s", err, sc.Bytes())
			}
			for _, name := range auditFields {
				if _, ok := fields[name]; !ok {
					t.Fatalf("audit line lacks %q: %s", name, sc.Bytes())
				}
			}
			var rec auditRecord
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatal(err)
			}
			out = append(out, rec)
		}
	}
	return out
}

// waitAudit waits until the audit file holds n records (records are written
// right after the response, so a client may see the response first).
func waitAudit(t testing.TB, file string, n int) []auditRecord {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(file)
		if bytes.Count(data, []byte("\n")) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	recs := readAudit(t, file)
	if len(recs) != n {
		t.Fatalf("the audit log has %d records, want %d", len(recs), n)
	}
	return recs
}

// auditCmd runs `privacy-sidecar audit args...` and returns its exit code
// and combined output.
func auditCmd(t testing.TB, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(sidecarBin, append([]string{"audit"}, args...)...)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("running audit %v: %v", args, err)
	}
	return 0, string(out)
}

// startAuditSidecar runs caddyfile with a fresh audit file in a temp dir,
// a recording upstream and the audit key; extra env entries are added.
func startAuditSidecar(t *testing.T, caddyfile string, extra map[string]string) (*Sidecar, *Upstream, string) {
	t.Helper()
	up := StartUpstream(t, nil)
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	env := map[string]string{"AUDIT_FILE": file, "AUDIT_KEY": auditKey, "UPSTREAM": up.Addr}
	for k, v := range extra {
		env[k] = v
	}
	return StartSidecar(t, caddyfile, env), up, file
}

// scrapeMetrics returns the Prometheus text exposition from url.
func scrapeMetrics(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping metrics: status %d: %s", resp.StatusCode, body)
	}
	return string(body)
}

// assertNoSecrets fails when any secret appears in any of the texts.
func assertNoSecrets(t testing.TB, texts map[string]string, secrets ...string) {
	t.Helper()
	for name, text := range texts {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("%s contains the secret %q", name, s)
			}
		}
	}
}

// waitLinesIn waits until the files matching the globs hold n lines in all.
func waitLinesIn(t testing.TB, n int, globs ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		lines := 0
		for _, g := range globs {
			files, _ := filepath.Glob(g)
			for _, f := range files {
				data, _ := os.ReadFile(f)
				lines += bytes.Count(data, []byte("\n"))
			}
		}
		if lines >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d audit lines after 20 s, want %d", lines, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runSidecarExpectFailure runs the binary on caddyfile and expects it to
// exit with an error within 20 s; it returns the output.
func runSidecarExpectFailure(t testing.TB, caddyfile string, env map[string]string) string {
	t.Helper()
	if !filepath.IsAbs(caddyfile) {
		caddyfile = filepath.Join(repoRoot, caddyfile)
	}
	cmd := exec.Command(sidecarBin, "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "SIDECAR_ADDR="+freeAddr(t), "SIDECAR_ADMIN="+freeAddr(t))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("the sidecar exited successfully; expected a failure:\n%s", out.String())
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the sidecar kept running; expected it to refuse the config:\n%s", out.String())
	}
	return out.String()
}
