package tenantguard

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`tenant_guard {
		claim https://example.com/tenant
		header X-Org-ID
		route_tenant {http.request.host.labels.2}
		tenants registry/tenants.json
		connector {http.vars.connector}
		inject
	}`)
	var m TenantGuard
	if err := m.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := TenantGuard{
		Claim: "https://example.com/tenant", Header: "X-Org-ID", RouteTenant: "{http.request.host.labels.2}",
		Tenants: "registry/tenants.json", Connector: "{http.vars.connector}", Inject: true,
	}
	if m.Claim != want.Claim || m.Header != want.Header || m.RouteTenant != want.RouteTenant ||
		m.Tenants != want.Tenants || m.Connector != want.Connector || m.Inject != want.Inject {
		t.Fatalf("got %+v", m)
	}
}

func TestUnmarshalCaddyfileDefaults(t *testing.T) {
	var m TenantGuard
	if err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`tenant_guard`)); err != nil {
		t.Fatal(err)
	}
	provision(t, &m)
	if m.Claim != DefaultClaim || m.Header != DefaultHeader || m.Inject {
		t.Fatalf("defaults: %+v", m)
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	tests := []struct{ input, want string }{
		{"tenant_guard extra", "wrong argument count"},
		{"tenant_guard {\n claim\n}", "wrong argument count"},
		{"tenant_guard {\n claim a b\n}", "wrong argument count"},
		{"tenant_guard {\n inject yes\n}", "wrong argument count"},
		{"tenant_guard {\n claim a\n claim b\n}", "subdirective 'claim' is given twice; give it once"},
		{"tenant_guard {\n tenant acme\n}", "unrecognized subdirective 'tenant'"},
	}
	for _, tc := range tests {
		var m TenantGuard
		err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.input, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		m    TenantGuard
		want string
	}{
		{TenantGuard{Header: "Connection"}, "reserved by HTTP"},
		{TenantGuard{Header: "transfer_encoding"}, "reserved by HTTP"},
		{TenantGuard{Header: "Authorization"}, "reserved by HTTP"},
		{TenantGuard{Header: "X Tenant"}, "not a valid header name"},
		{TenantGuard{Claim: ".tenant"}, "not a claim name"},
		{TenantGuard{Connector: "crm one"}, "connector"},
	}
	for _, tc := range tests {
		m := tc.m
		ctx, cancel := newContext()
		if err := m.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := m.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.m, err, tc.want)
		}
	}
}

// TestCaddyfileRecordsRegistryDigest: editing the registry changes the
// adapted config, so a plain `caddy reload` applies the edit.
func TestCaddyfileRecordsRegistryDigest(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "tenants.json", testRegistry)
	adapt := func(tenants string) string {
		var m TenantGuard
		if err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser("tenant_guard {\n tenants " + tenants + "\n}")); err != nil {
			t.Fatal(err)
		}
		return m.TenantsDigest
	}
	first := adapt(path)
	if len(first) != 64 || adapt(path) != first {
		t.Fatalf("digest %q is not a stable SHA-256", first)
	}
	writeFile(t, dir, "tenants.json", strings.Replace(testRegistry, `"suspended"`, `"active"`, 1))
	if adapt(path) == first {
		t.Fatal("an edited registry kept its digest")
	}
	if adapt(dir) == "" {
		t.Fatal("a registry directory has no digest")
	}
	if d := adapt(filepath.Join(dir, "missing.json")); d != "" {
		t.Fatalf("a missing registry got digest %q; Provision reports it instead", d)
	}
}
