package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/democrm"
	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// TestExampleNDJSONExport runs caddyfiles/ndjson-export.Caddyfile itself in
// front of the sample CRM's export: every streamed record is trimmed to the
// caller's scopes.
func TestExampleNDJSONExport(t *testing.T) {
	iss := StartIssuer(t)
	crm := httptest.NewServer(democrm.Handler())
	t.Cleanup(crm.Close)
	dir := t.TempDir()
	registry := `{"tenants":[{"id":"acme","status":"active","issuers":["` + iss.URL + `"],"connectors":[{"id":"crm","state":"connected"}]}]}`
	if err := os.WriteFile(filepath.Join(dir, "tenants.json"), []byte(registry), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	sc := StartSidecar(t, "caddyfiles/ndjson-export.Caddyfile", map[string]string{
		"SIDECAR_ADDR": addr,
		"SIDECAR_SITE": "http://" + addr,
		"ISSUER":       iss.URL,
		"UPSTREAM":     strings.TrimPrefix(crm.URL, "http://"),
		"TENANTS":      filepath.Join(dir, "tenants.json"),
		"AUDIT_FILE":   filepath.Join(dir, "audit.jsonl"),
		"AUDIT_KEY":    "test-only-pseudonym-key-0123456789",
		"HASH_KEY":     "test-only-hash-key-0123456789abcdef",
	})
	token := func(scope string) string {
		return iss.MustMint(iss.AccessClaims("exporter", "connector-api", devidp.Claims{"tenant_id": "acme", "scope": scope}))
	}
	contacts := democrm.Data["acme"].Contacts

	resp, body := sc.Get(t, "/v1/contacts/export", token("contacts:read"), "X-Tenant-ID: acme")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	records := ndjsonRecords(t, body)
	if len(records) != len(contacts) {
		t.Fatalf("%d records, want %d", len(records), len(contacts))
	}
	for i, rec := range records {
		keys := make([]string, 0, len(rec))
		for k := range rec {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"company", "created_at", "id", "name", "owner_id"}) || rec["id"] != contacts[i].ID {
			t.Errorf("record %d = %v: only contacts:read fields may pass", i, rec)
		}
	}
	for _, c := range contacts {
		for _, secret := range []string{c.Email, c.Phone, c.Notes, c.Address} {
			if bytes.Contains(body, []byte(secret)) {
				t.Errorf("the export leaked %q", secret)
			}
		}
	}

	resp, body = sc.Get(t, "/v1/contacts/export", token("contacts:read contacts:analytics"), "X-Tenant-ID: acme")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("analytics export: %d %s", resp.StatusCode, body)
	}
	for i, rec := range ndjsonRecords(t, body) {
		email, _ := rec["email"].(string)
		if len(email) != 64 || email == contacts[i].Email {
			t.Errorf("record %d email %q: want an HMAC-SHA256 hex pseudonym", i, email)
		}
	}

	resp, _ = sc.Get(t, "/v1/contacts", token("contacts:read"), "X-Tenant-ID: acme")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("a path outside the export route: %d, want 404", resp.StatusCode)
	}
}

func ndjsonRecords(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", sc.Text(), err)
		}
		out = append(out, rec)
	}
	return out
}
