package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// TestTenantGuardRegistryReload: an edited registry takes effect on a plain
// `reload` with no restart; a broken one refuses the reload, naming file,
// line and problem, and the running config keeps serving.
func TestTenantGuardRegistryReload(t *testing.T) {
	s := startTenantGuard(t)
	acme := s.acme()
	get := func(path string) (*http.Response, []byte) {
		return s.sidecar.Get(t, path, acme, "X-Tenant-ID: acme")
	}

	resp, body := get("/crm/before")
	s.assertForwarded(t, "/crm/before", resp, body, "acme")

	// Disconnect acme's crm.
	s.writeRegistry(t, tgRegistryDoc(s.acmeIdP.URL, s.globexIdP.URL, "disconnected", "suspended"))
	if out, err := s.sidecar.Reload(tgCaddyfile); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	resp, body = get("/crm/after-disconnect")
	s.assertRefused(t, "/crm/after-disconnect", resp, body, 403, "connector_disconnected")

	// A registry with an invalid status on line 5 must refuse the reload.
	broken := strings.Replace(tgRegistryDoc(s.acmeIdP.URL, s.globexIdP.URL, "connected", "suspended"), `"status": "active"`, `"status": "paused"`, 1)
	if !strings.Contains(strings.Split(broken, "\n")[4], `"paused"`) {
		t.Fatalf("test registry changed shape; line 5 is %q", strings.Split(broken, "\n")[4])
	}
	s.writeRegistry(t, broken)
	out, err := s.sidecar.Reload(tgCaddyfile)
	if err == nil {
		t.Fatalf("a reload with a broken registry succeeded:\n%s", out)
	}
	want := s.registry + `:5: status "paused" is not one of active, suspended`
	// The error arrives JSON-escaped inside the CLI's JSON log line.
	if !strings.Contains(strings.ReplaceAll(out, `\`, ""), want) {
		t.Fatalf("the reload error does not name file, line and problem (%q):\n%s", want, out)
	}
	// The previous config still runs: crm is still disconnected, not open.
	resp, body = get("/crm/after-broken")
	s.assertRefused(t, "/crm/after-broken", resp, body, 403, "connector_disconnected")

	// Reconnect: the next good reload applies.
	s.writeRegistry(t, tgRegistryDoc(s.acmeIdP.URL, s.globexIdP.URL, "connected", "suspended"))
	if out, err := s.sidecar.Reload(tgCaddyfile); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	resp, body = get("/crm/reconnected")
	s.assertForwarded(t, "/crm/reconnected", resp, body, "acme")
}

// TestTenantGuardReloadIsGraceful: a request in flight when the registry
// changes finishes under the config it started with, while new requests
// already see the new registry.
func TestTenantGuardReloadIsGraceful(t *testing.T) {
	s := startTenantGuard(t)
	acme := s.acme()
	arrived := make(chan struct{})
	release := make(chan struct{})
	s.mu.Lock()
	s.hold = func(r *http.Request) {
		if r.URL.Path == "/crm/in-flight" {
			close(arrived)
			<-release
		}
	}
	s.mu.Unlock()

	type result struct {
		resp *http.Response
		body []byte
	}
	inFlight := make(chan result, 1)
	go func() {
		resp, body := s.sidecar.Get(t, "/crm/in-flight", acme, "X-Tenant-ID: acme")
		inFlight <- result{resp, body}
	}()
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the in-flight request never reached the upstream")
	}

	// Make initech active; the reload waits for the old config's requests,
	// so it runs beside the held request.
	s.writeRegistry(t, tgRegistryDoc(s.acmeIdP.URL, s.globexIdP.URL, "connected", "active"))
	reloaded := make(chan error, 1)
	go func() {
		out, err := s.sidecar.Reload(tgCaddyfile)
		if err != nil {
			t.Logf("reload output:\n%s", out)
		}
		reloaded <- err
	}()

	// Wait until the new config answers: initech passes only under it.
	initech := tgToken(s.acmeIdP, devidp.Claims{"tenant_id": "initech"})
	var resp *http.Response
	var body []byte
	for i := 0; i < 200; i++ {
		resp, body = s.sidecar.Get(t, "/crm/initech", initech, "X-Tenant-ID: initech")
		if resp.StatusCode == http.StatusOK {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.assertForwarded(t, "/crm/initech", resp, body, "initech")

	close(release)
	r := <-inFlight
	s.assertForwarded(t, "/crm/in-flight", r.resp, r.body, "acme")
	if err := <-reloaded; err != nil {
		t.Fatalf("reload: %v", err)
	}
}

// TestTenantGuardBrokenRegistryRefusesStart: the sidecar does not start on
// a registry it cannot read, and says which file, line and problem.
func TestTenantGuardBrokenRegistryRefusesStart(t *testing.T) {
	dir := t.TempDir()
	registry := filepath.Join(dir, "tenants.json")
	doc := "{\n\t\"tenants\": [\n\t\t{\"id\": \"acme\", \"status\": \"active\", \"issuers\": [\"https://i.example\"],\n\t\t \"connectors\": [{\"id\": \"crm\", \"state\": \"on\"}]}\n\t]\n}\n"
	if err := os.WriteFile(registry, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	out := runSidecarExpectFailure(t, tgCaddyfile, map[string]string{
		"ISSUER": "http://127.0.0.1:9", "ISSUER2": "http://127.0.0.2:9", "UPSTREAM": "127.0.0.1:9", "TENANTS": registry,
	})
	want := registry + `:4: connector state "on" is not one of connected, disconnected`
	if !strings.Contains(strings.ReplaceAll(out, `\`, ""), want) {
		t.Fatalf("the start error does not name file, line and problem (%q):\n%s", want, out)
	}
}

// TestTenantGuardHandleErrors: with handle_errors routes, a refusal is a
// caddyhttp.Error that those routes render, with {sidecar.reason} set, and
// the upstream is not called.
func TestTenantGuardHandleErrors(t *testing.T) {
	iss := StartIssuer(t)
	up := StartUpstream(t, nil)
	s := StartSidecarConfig(t, `{
	admin {$SIDECAR_ADMIN}
}

http://{$SIDECAR_ADDR} {
	oidc_auth {
		issuer {$ISSUER} {
			audience connector-api
		}
	}
	tenant_guard
	reverse_proxy {$UPSTREAM}
	handle_errors {
		respond "refused: {sidecar.reason} {http.error.status_code}" {http.error.status_code}
	}
}
`, map[string]string{"ISSUER": iss.URL, "UPSTREAM": up.Addr})
	acme := tgToken(iss, devidp.Claims{"tenant_id": "acme"})
	resp, body := s.Get(t, "/x", acme, "X-Tenant-ID: globex")
	if resp.StatusCode != 403 || string(body) != "refused: tenant_mismatch 403" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	resp, body = s.Get(t, "/x", acme)
	if resp.StatusCode != 400 || string(body) != "refused: tenant_missing 400" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	up.AssertNotCalled(t)
	resp, body = s.Get(t, "/x", acme, "X-Tenant-ID: acme")
	if resp.StatusCode != 200 || up.Calls() != 1 {
		t.Fatalf("got %d %q, upstream calls %d", resp.StatusCode, body, up.Calls())
	}
}
