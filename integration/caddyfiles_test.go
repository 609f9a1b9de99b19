package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCaddyfilesValidateAndAreFormatted runs the binary's `validate` and
// `fmt` on every Caddyfile in caddyfiles/, as a user would before deploying.
// Addresses and paths they read from the environment get harmless values.
func TestCaddyfilesValidateAndAreFormatted(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(repoRoot, "caddyfiles", "*.Caddyfile"))
	more, _ := filepath.Glob(filepath.Join(repoRoot, "caddyfiles", "*", "*.Caddyfile"))
	files = append(files, more...)
	if len(files) == 0 {
		t.Fatal("no Caddyfiles under caddyfiles/")
	}
	for _, file := range files {
		rel, _ := filepath.Rel(repoRoot, file)
		t.Run(rel, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			formatted, err := exec.Command(sidecarBin, "fmt", file).Output()
			if err != nil {
				t.Fatalf("fmt: %v", err)
			}
			if string(formatted) != string(src) {
				t.Errorf("%s is not fmt-clean: run `privacy-sidecar fmt --overwrite %s`", rel, rel)
			}
			cmd := exec.Command(sidecarBin, "validate", "--config", file, "--adapter", "caddyfile")
			cmd.Dir = repoRoot
			cmd.Env = append(os.Environ(), validationEnv(t)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("validate: %v\n%s", err, lastLines(string(out), 15))
			}
		})
	}
}

// validationEnv gives every {$VAR} the test Caddyfiles use a value that
// validates (nothing is contacted: keys are fetched lazily).
func validationEnv(t *testing.T) []string {
	dir := t.TempDir()
	// The demo generates its tenant registry at run time; give it one.
	registry := `{"tenants":[{"id":"acme","status":"active","issuers":["http://127.0.0.1:9"],"connectors":[{"id":"crm","state":"connected"}]}]}`
	if err := os.WriteFile(filepath.Join(dir, "tenants.json"), []byte(registry), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{
		"DEMO_ADDR=127.0.0.1:0",
		"DEMO_ISSUER=http://127.0.0.1:9",
		"DEMO_UPSTREAM=127.0.0.1:9",
		"DEMO_DIR=" + dir,
		"DEMO_AUDIT_FILE=" + filepath.Join(dir, "demo-audit.jsonl"),
		"DEMO_AUDIT_KEY=validation-only-key-0123456789abcdef",
		"DEMO_HASH_KEY=validation-only-key-0123456789abcdef",
		"DEMO_ADMIN=127.0.0.1:0",
		"DEMO_TOKEN_URL=http://127.0.0.1:9/oauth/token",
		"DEMO_REVOCATION_URL=http://127.0.0.1:9/oauth/revoke",
		"DEMO_CLIENT_ID=validation-client",
		"DEMO_CLIENT_SECRET=validation-only-secret",
		"DEMO_CONNECTIONS_KEY=validation-only-connections-key-0123456789",
		"SIDECAR_ADDR=127.0.0.1:0",
		"SIDECAR_ADMIN=127.0.0.1:0",
		"UPSTREAM=127.0.0.1:9",
		"ISSUER=http://127.0.0.1:9",
		"ISSUER2=http://127.0.0.2:9",
		"AUDIT_FILE=" + filepath.Join(dir, "audit.jsonl"),
		"AUDIT_KEY=validation-only-key-0123456789abcdef",
		"SCOPE_TRIM_HASH_KEY=validation-only-key-0123456789abcdef",
		"HASH_KEY=validation-only-key-0123456789abcdef",
		"POLICY_DIR=policies",
		"REGISTRY_DIR=registry",
		"AUDIT_DIR=" + dir,
		"POD_NAME=validation-0",
		"TENANTS=" + filepath.Join(dir, "tenants.json"),
		"STORAGE_DIR=" + filepath.Join(dir, "storage"),
		"TOKEN_URL=http://127.0.0.1:9/oauth/token",
		"REVOCATION_URL=http://127.0.0.1:9/revoke",
		"CRM_CLIENT_ID=validation-client",
		"CRM_CLIENT_SECRET=validation-only-secret",
		"SIDECAR_CONNECTIONS_KEY=validation-only-connections-key-0123456789",
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestConfigErrorsNameTheModuleOnce: Caddy already says which module failed
// ("provision http.handlers.scope_trim: ..."; "parsing caddyfile tokens for
// 'scope_trim': ..."), so the modules' own messages say only what is wrong.
func TestConfigErrorsNameTheModuleOnce(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct{ config, want string }{
		"audit_log":    {`{"handler":"audit_log","pseudonym_key":"0123456789abcdef0123"}`, "no output configured"},
		"oidc_auth":    {`{"handler":"oidc_auth"}`, "no issuer configured"},
		"scope_trim":   {`{"handler":"scope_trim"}`, "policies is required"},
		"tenant_guard": {`{"handler":"tenant_guard","connector":"a/b"}`, `connector \"a/b\" may contain only`},
		"connector_auth": {`{"handler":"connector_auth","token_url":"https://crm.example/token","grant":"refresh_token","key":"{env.K}"}`,
			"connector is required"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := `{"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[` + c.config + `]}]}}}}}`
			file := filepath.Join(dir, name+".json")
			if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(sidecarBin, "validate", "--config", file).CombinedOutput()
			if err == nil {
				t.Fatalf("validate accepted %s", cfg)
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("the error does not say %q:\n%s", c.want, out)
			}
			// provision errors come as "provision http.handlers.X: ...",
			// validation errors as "http.handlers.X: invalid configuration: ..."
			if !strings.Contains(string(out), "http.handlers."+name+": "+c.want) &&
				!strings.Contains(string(out), "http.handlers."+name+": invalid configuration: "+c.want) {
				t.Errorf("the message does not follow Caddy's naming of the module directly:\n%s", out)
			}
		})
	}
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(":0 {\n\tscope_trim {\n\t\tpolicies a\n\t\tpolicies b\n\t}\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(sidecarBin, "adapt", "--config", caddyfile, "--adapter", "caddyfile").CombinedOutput()
	if !strings.Contains(string(out), "subdirective 'policies' is given twice; give it once") {
		t.Errorf("a repeated subdirective is not refused in the shared wording:\n%s", out)
	}
}
