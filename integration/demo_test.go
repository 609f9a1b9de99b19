package integration

import (
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
		"hash chain intact over 6 records",
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
