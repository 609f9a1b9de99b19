package democrm

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestTenantsSeeOnlyTheirOwnData(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for tenant, data := range Data {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/contacts", nil)
		req.Header.Set("X-Tenant-ID", tenant)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Data []Contact }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || len(body.Data) != len(data.Contacts) || body.Data[0].ID != data.Contacts[0].ID {
			t.Fatalf("%s: got %+v (%v)", tenant, body.Data, err)
		}
	}
	resp, err := http.Get(srv.URL + "/v1/contacts")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("no tenant: status %d, want 404", resp.StatusCode)
	}
}

func TestExportIsNDJSON(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/v1/contacts/export", nil)
	req.Header.Set("X-Tenant-ID", "acme")
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, req)
	lines := strings.Split(strings.TrimSpace(w.Body.String()), "\n")
	if w.Header().Get("Content-Type") != "application/x-ndjson" || len(lines) != len(Data["acme"].Contacts) {
		t.Fatalf("got %q with %d lines", w.Header().Get("Content-Type"), len(lines))
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("line %q is not JSON", l)
		}
	}
}
