package tenantguard

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

func TestLoadExampleRegistry(t *testing.T) {
	reg, err := LoadRegistry(filepath.Join("..", "..", "registry", "tenants.json"))
	if err != nil {
		t.Fatal(err)
	}
	acme, globex, initech := reg.Tenant("acme"), reg.Tenant("globex"), reg.Tenant("initech")
	if acme == nil || globex == nil || initech == nil || reg.Len() != 3 {
		t.Fatalf("tenants: %d", reg.Len())
	}
	if acme.Suspended || !initech.Suspended {
		t.Fatal("statuses wrong")
	}
	if !acme.Connected["crm"] || acme.Connected["erp"] || !globex.Connected["crm"] || globex.Connected["ticketing"] {
		t.Fatalf("connectors: acme %v globex %v", acme.Connected, globex.Connected)
	}
	if !acme.allowsIssuer("https://login.acme.example") || acme.allowsIssuer("https://globex.okta.example") {
		t.Fatal("issuers wrong")
	}
}

// TestLoadExampleDirectory loads the repository's registry directory, the
// example registry beside its schema: *.schema.json is skipped.
func TestLoadExampleDirectory(t *testing.T) {
	reg, err := LoadRegistry(filepath.Join("..", "..", "registry"))
	if err != nil {
		t.Fatal(err)
	}
	if reg.Tenant("acme") == nil || reg.Len() != 3 {
		t.Fatal("example tenants missing")
	}
}

func TestParseRegistryErrors(t *testing.T) {
	tenant := func(body string) string {
		return "{\n\"tenants\": [\n{\n" + body + "\n}\n]\n}"
	}
	const ok = `"id": "acme", "status": "active", "issuers": ["https://i.example"]`
	tests := []struct {
		name, doc, want string
	}{
		{"syntax error", "{\n\"tenants\": [\n{\"id\": \"acme\",,}\n]}", `t.json:3: invalid JSON`},
		{"truncated", "{\n\"tenants\": [\n", `t.json:3: invalid JSON`},
		{"not an object", `[]`, `t.json:1: the document must be a JSON object, found an array`},
		{"no tenants", "{\n}", `the document has no "tenants" list`},
		{"unknown top-level key", "{\n\"tenants\": [],\n\"tenant\": []}", `t.json:3: unknown key "tenant" at the top level`},
		{"trailing data", "{\"tenants\": []}\n{}", `t.json:2: unexpected data after the document`},
		{"tenants not an array", "{\"tenants\": {}}", `tenants must be a JSON array, found an object`},
		{"unknown tenant key", tenant(ok + ",\n\"state\": \"active\""), `t.json:5: unknown key "state" in a tenant`},
		{"repeated key", tenant(ok + ",\n\"status\": \"suspended\""), `t.json:5: key "status" is repeated in a tenant`},
		{"bad status", tenant(`"id": "acme",` + "\n" + `"status": "paused", "issuers": ["https://i.example"]`), `t.json:5: status "paused" is not one of active, suspended`},
		{"status not a string", tenant(`"id": "acme", "status": true`), `status must be a string, found a boolean`},
		{"missing status", tenant(`"id": "acme", "issuers": ["https://i.example"]`), `t.json:4: tenant "acme" has no "status"`},
		{"missing id", tenant(`"status": "active", "issuers": ["https://i.example"]`), `a tenant has no "id"`},
		{"bad id", tenant(`"id": "ac me", "status": "active", "issuers": ["https://i.example"]`), `t.json:4: tenant id "ac me" must be`},
		{"no issuers", tenant(`"id": "acme", "status": "active", "issuers": []`), `tenant "acme" lists no issuers`},
		{"relative issuer", tenant(`"id": "acme", "status": "active", "issuers": ["acme"]`), `issuer "acme" is not an absolute URL`},
		{"repeated issuer", tenant(`"id": "acme", "status": "active", "issuers": ["https://i.example", "https://i.example"]`), `issuer "https://i.example" is listed twice`},
		{"bad connector state", tenant(ok + ",\n\"connectors\": [\n{\"id\": \"crm\", \"state\": \"on\"}]"), `t.json:6: connector state "on" is not one of connected, disconnected`},
		{"connector without state", tenant(ok + ",\n\"connectors\": [\n{\"id\": \"crm\"}]"), `t.json:6: connector "crm" has no "state"`},
		{"repeated connector", tenant(ok + ",\n\"connectors\": [{\"id\": \"crm\", \"state\": \"connected\"},\n{\"id\": \"crm\", \"state\": \"disconnected\"}]"), `t.json:6: connector "crm" is listed twice`},
		{"unknown connector key", tenant(ok + ",\n\"connectors\": [{\"id\": \"crm\", \"status\": \"connected\"}]"), `unknown key "status" in a connector`},
		{"tenant twice", "{\"tenants\": [\n{" + ok + "},\n{" + ok + "}]}", `t.json:3: tenant "acme" is declared twice (also at t.json:2)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRegistry("t.json", []byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.doc)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "tenant registry t.json") {
				t.Fatalf("error %q does not name the file first", err)
			}
		})
	}
}

func TestLoadRegistryDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.json", `{"tenants": [{"id": "acme", "status": "active", "issuers": ["https://i.example"]}]}`)
	writeFile(t, dir, "b.json", `{"tenants": [{"id": "globex", "status": "active", "issuers": ["https://g.example"]}]}`)
	writeFile(t, dir, "tenants.schema.json", `not even JSON`)
	writeFile(t, dir, "notes.txt", `ignored`)
	reg, err := LoadRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	if reg.Len() != 2 {
		t.Fatalf("%d tenants", reg.Len())
	}
	writeFile(t, dir, "c.json", "{\"tenants\": [\n{\"id\": \"acme\", \"status\": \"suspended\", \"issuers\": [\"https://i.example\"]}]}")
	_, err = LoadRegistry(dir)
	if err == nil || !strings.Contains(err.Error(), `c.json:2: tenant "acme" is declared twice (also at `+filepath.Join(dir, "a.json")+`:1)`) {
		t.Fatalf("got %v", err)
	}
}

func TestLoadRegistryMissingOrEmpty(t *testing.T) {
	if _, err := LoadRegistry(filepath.Join(t.TempDir(), "nope.json")); err == nil || !strings.Contains(err.Error(), "nope.json") {
		t.Fatalf("got %v", err)
	}
	if _, err := LoadRegistry(t.TempDir()); err == nil || !strings.Contains(err.Error(), "holds no *.json file") {
		t.Fatalf("got %v", err)
	}
}

// TestProvisionRefusesBadRegistry is what makes a reload with a broken
// registry fail: Provision returns the error naming file and line.
func TestProvisionRefusesBadRegistry(t *testing.T) {
	path := writeFile(t, t.TempDir(), "tenants.json", "{\"tenants\": [\n{\"id\": \"acme\", \"status\": \"paused\", \"issuers\": [\"https://i.example\"]}]}")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := (&TenantGuard{Tenants: path}).Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), path+`:2: status "paused" is not one of active, suspended`) {
		t.Fatalf("got %v", err)
	}
}

func TestProvisionExpandsEnv(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "tenants.json", testRegistry)
	t.Setenv("TG_TEST_REGISTRY_DIR", dir)
	m := provision(t, &TenantGuard{Tenants: "{env.TG_TEST_REGISTRY_DIR}/tenants.json"})
	if m.registry == nil || m.registry.Len() != 3 {
		t.Fatal("registry not loaded through {env.*}")
	}
}

// TestSchemaMatchesParser keeps registry/tenants.schema.json in step with
// the parser: the same keys, required keys, enums and id pattern.
func TestSchemaMatchesParser(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "registry", "tenants.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Required   []string                   `json:"required"`
		Properties map[string]json.RawMessage `json:"properties"`
		Defs       map[string]struct {
			Pattern    string   `json:"pattern"`
			Required   []string `json:"required"`
			Properties map[string]struct {
				Enum []string `json:"enum"`
			} `json:"properties"`
			AdditionalProperties *bool `json:"additionalProperties"`
		} `json:"$defs"`
		AdditionalProperties *bool `json:"additionalProperties"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	var topKeys []string
	for k := range schema.Properties {
		topKeys = append(topKeys, k)
	}
	sort.Strings(topKeys)
	if got := topKeys; !slices.Equal(got, []string{"$schema", "description", "tenants"}) {
		t.Errorf("top-level keys %v", got)
	}
	if !slices.Equal(schema.Required, []string{"tenants"}) || schema.AdditionalProperties == nil || *schema.AdditionalProperties {
		t.Errorf("top level: required %v, additionalProperties must be false", schema.Required)
	}
	if schema.Defs["id"].Pattern != safeSetOracle.String() {
		t.Errorf("id pattern %q, parser uses %q", schema.Defs["id"].Pattern, safeSetOracle)
	}
	tenant, connector := schema.Defs["tenant"], schema.Defs["connector"]
	var tenantKeys, connectorKeys []string
	for k := range tenant.Properties {
		tenantKeys = append(tenantKeys, k)
	}
	for k := range connector.Properties {
		connectorKeys = append(connectorKeys, k)
	}
	sort.Strings(tenantKeys)
	sort.Strings(connectorKeys)
	if !slices.Equal(tenantKeys, []string{"connectors", "description", "id", "issuers", "status"}) || !slices.Equal(tenant.Required, []string{"id", "status", "issuers"}) {
		t.Errorf("tenant keys %v required %v", tenantKeys, tenant.Required)
	}
	if !slices.Equal(connectorKeys, []string{"description", "id", "state"}) || !slices.Equal(connector.Required, []string{"id", "state"}) {
		t.Errorf("connector keys %v required %v", connectorKeys, connector.Required)
	}
	if got := tenant.Properties["status"].Enum; !slices.Equal(got, []string{StatusActive, StatusSuspended}) {
		t.Errorf("status enum %v", got)
	}
	if got := connector.Properties["state"].Enum; !slices.Equal(got, []string{ConnectorConnected, ConnectorDisconnected}) {
		t.Errorf("state enum %v", got)
	}
	for _, d := range []string{"tenant", "connector"} {
		if ap := schema.Defs[d].AdditionalProperties; ap == nil || *ap {
			t.Errorf("%s: additionalProperties must be false, as the parser refuses unknown keys", d)
		}
	}
}
