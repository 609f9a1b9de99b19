package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScopeTrimPolicyEditAppliesOnReload: editing a policy file and running
// `privacy-sidecar reload` with the unchanged Caddyfile applies the edit
// (the adapter records the policies' digest, so the config changes too).
func TestScopeTrimPolicyEditAppliesOnReload(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot, "policies", "crm.json"))
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(t.TempDir(), "crm.json")
	if err := os.WriteFile(policy, src, 0o600); err != nil {
		t.Fatal(err)
	}
	const caddyfile = "caddyfiles/test/scope_trim.Caddyfile"
	s := startScopeTrim(t, caddyfile, map[string]string{"POLICIES": policy})
	token := s.token(t, "contacts:read")

	resp, body := s.sidecar.Get(t, "/v1/contacts", token)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), "ada@example.com") {
		t.Fatalf("before the edit: %d %s", resp.StatusCode, body)
	}

	edited := strings.Replace(string(src), `"data.#.name",`, `"data.#.name", "data.#.email",`, 1)
	if edited == string(src) {
		t.Fatal("the edit did not apply to crm.json; update this test")
	}
	if err := os.WriteFile(policy, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := s.sidecar.Reload(caddyfile); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	resp, body = s.sidecar.Get(t, "/v1/contacts", token)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"email":"ada@example.com"`) {
		t.Fatalf("after the edit and reload, contacts:read should see email: %d %s", resp.StatusCode, body)
	}
}
