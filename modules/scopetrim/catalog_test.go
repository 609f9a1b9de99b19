package scopetrim

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCatalogJoinsScopeMetadata(t *testing.T) {
	dir := t.TempDir()
	good := `{"connector":"crm","version":"7","endpoints":[
		{"match":{"methods":["GET"],"path":"/v1/contacts*"},"fields":{"contacts:read":["data.#.id","data.#.name"],"contacts:pii":["data.#.email"]}},
		{"match":{"methods":["GET"],"path":"/v1/deals*"},"fields":{"deals:read":["data.#.amount"]}}],
		"scopes":{"contacts:pii":{"description":"contact details","categories":["contact details"],"purpose":"customer support"}}}`
	if err := os.WriteFile(filepath.Join(dir, "crm.json"), []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCatalog(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Policies["crm@7"]
	if p == nil || p.Scopes["contacts:pii"].Purpose != "customer support" ||
		!reflect.DeepEqual(p.Fields["/v1/contacts*"]["contacts:read"], []string{"data.#.id", "data.#.name"}) {
		t.Fatalf("catalog %+v", p)
	}

	for name, doc := range map[string]string{
		"unknown scope":  strings.Replace(good, `"scopes":{"contacts:pii"`, `"scopes":{"contacts:pi"`, 1),
		"unknown member": strings.Replace(good, `"purpose":"customer support"`, `"purpose":"x","retention":"1y"`, 1),
	} {
		path := filepath.Join(t.TempDir(), "p.json")
		_ = os.WriteFile(path, []byte(doc), 0o600)
		if _, _, err := loadPolicies(path, 64); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
