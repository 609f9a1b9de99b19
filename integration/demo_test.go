package integration

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs `privacy-sidecar demo` as the README tells a newcomer to,
// and checks that every step of the tour behaved as it says.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(sidecarBin, "demo", "--listen", freeAddr(t), "--dir", dir)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the demo failed: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"Every step behaved as expected.",
		"refused with tenant_mismatch",
		"refused with connector_disconnected",
		"the CRM received globex's own access token",
		"disconnected: refresh_token and access_token revoked",
		"refused with record_not_visible",
		"refused with write_field_not_allowed; the connector was never called",
		"the connector applied the change",
		"records_released 2, records_withheld 1",
		"hash chain intact over 18 records",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if strings.Contains(text, "FAIL") {
		t.Errorf("the demo reported a failure:\n%s", text)
	}
	verify := exec.Command(sidecarBin, "audit", "verify", filepath.Join(dir, "audit.jsonl"))
	if out, err := verify.CombinedOutput(); err != nil {
		t.Fatalf("audit verify on the demo's log: %v\n%s", err, out)
	}
}

// TestDemoServe: with --serve the demo stays up and prints tokens and curl
// commands; the printed requests work, and Ctrl-C ends it cleanly.
func TestDemoServe(t *testing.T) {
	addr := freeAddr(t)
	cmd := exec.Command(sidecarBin, "demo", "--serve", "--listen", addr, "--dir", t.TempDir())
	cmd.Dir = repoRoot
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	tokens := map[string]string{}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() && len(tokens) < 2 {
		line := strings.TrimSpace(sc.Text())
		for _, name := range []string{"TOKEN", "FULL"} {
			if v, ok := strings.CutPrefix(line, name+"="); ok {
				tokens[name] = v
			}
		}
	}
	if len(tokens) != 2 {
		t.Fatalf("the demo did not print TOKEN and FULL (got %v)", tokens)
	}
	go io.Copy(io.Discard, stdout)

	s := &Sidecar{Addr: addr, URL: "http://" + addr}
	for _, c := range []struct{ token, path, shows string }{
		{tokens["TOKEN"], "/v1/contacts", "Maria Lindqvist"},
		{tokens["FULL"], "/v1/deals", "contact_email"},
	} {
		resp, body := s.Get(t, c.path, c.token, "X-Tenant-ID: acme")
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), c.shows) {
			t.Errorf("GET %s with the printed token: %d %s", c.path, resp.StatusCode, body)
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the demo did not end cleanly on Ctrl-C: %v", err)
	}
}
