package connectionsadmin

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/alysio/privacy-sidecar/modules/connectorauth"
)

func serve(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	var a Admin
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	err := a.serve(w, r)
	if err != nil {
		var ae caddy.APIError
		if !errors.As(err, &ae) {
			t.Fatalf("%s %s: %v is not an APIError", method, path, err)
		}
		return ae.HTTPStatus, ae.Message
	}
	return w.Code, w.Body.String()
}

func TestAdminAPI(t *testing.T) {
	mgr := connectorauth.NewManager(&certmagic.FileStorage{Path: t.TempDir()}, zap.NewNop())
	t.Cleanup(func() { mgr.Destruct() })
	c, err := connectorauth.NewConnector(connectorauth.Settings{Name: "crm", TokenURL: "http://127.0.0.1:9/token", ClientID: "platform",
		Grant: connectorauth.GrantRefreshToken, Key: "test-only-connections-key-0123456789abcdef"}, mgr, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(connectorauth.Register(c))
	secret := "rt-never-echoed-31337"

	status, body := serve(t, http.MethodPut, "/sidecar/connections/acme/crm", `{"refresh_token":"`+secret+`"}`)
	if status != 200 || !strings.Contains(body, `"state":"connected"`) {
		t.Fatalf("PUT: %d %s", status, body)
	}
	answers := []string{body}
	status, body = serve(t, http.MethodGet, "/sidecar/connections/acme", "")
	var list struct {
		Tenant      string                 `json:"tenant"`
		Connections []connectorauth.Status `json:"connections"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Connections) != 1 || list.Connections[0].State != "connected" || list.Connections[0].ConnectedAt.IsZero() {
		t.Fatalf("GET: %d %s", status, body)
	}
	answers = append(answers, body)
	status, body = serve(t, http.MethodDelete, "/sidecar/connections/acme/crm", "")
	var receipt map[string]any
	if status != 200 || json.Unmarshal([]byte(body), &receipt) != nil {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	for _, k := range []string{"tenant", "connector", "disconnected_at", "revoked", "revocation_errors", "deleted"} {
		if _, ok := receipt[k]; !ok {
			t.Errorf("the receipt lacks %q: %s", k, body)
		}
	}
	if receipt["deleted"] != true {
		t.Errorf("deleted = %v", receipt["deleted"])
	}
	answers = append(answers, body)
	status, body = serve(t, http.MethodGet, "/sidecar/connections/acme/crm", "")
	if status != 200 || !strings.Contains(body, `"state":"disconnected"`) {
		t.Fatalf("GET after DELETE: %d %s", status, body)
	}
	answers = append(answers, body)

	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{http.MethodPut, "/sidecar/connections/acme/erp", `{"refresh_token":"` + secret + `"}`, 404},
		{http.MethodPut, "/sidecar/connections/../crm", `{}`, 404},
		{http.MethodPut, "/sidecar/connections/acme/crm", `{"refresh_token":"` + secret + `","refresh_token":"x"}`, 400},
		{http.MethodPut, "/sidecar/connections/acme/crm", `{"refresh_token":"` + secret + `","access_token":"x"}`, 400},
		{http.MethodPut, "/sidecar/connections/acme/crm", `{"refresh_token":42}`, 400},
		{http.MethodPut, "/sidecar/connections/acme/crm", `{"refresh_token":"` + secret + `"} {}`, 400},
		{http.MethodPut, "/sidecar/connections/acme/crm", `{"client_id":"a","client_secret":"` + secret + `"}`, 400},
		{http.MethodPut, "/sidecar/connections/acme/crm", `{"refresh_token":"a\u0000` + secret + `"}`, 400},
		{http.MethodPut, "/sidecar/connections/acme/crm", `[` + secret + `]`, 400},
		{http.MethodPut, "/sidecar/connections/acme", `{"refresh_token":"` + secret + `"}`, 405},
		{http.MethodPost, "/sidecar/connections/acme/crm", `{"refresh_token":"` + secret + `"}`, 405},
	} {
		status, body := serve(t, c.method, c.path, c.body)
		if status != c.status {
			t.Errorf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, status, body, c.status)
		}
		answers = append(answers, body)
	}
	for _, a := range answers {
		if strings.Contains(a, secret) {
			t.Errorf("an answer echoes the secret: %s", a)
		}
	}
}

func TestParsePath(t *testing.T) {
	for path, want := range map[string][2]string{
		"/sidecar/connections/acme":       {"acme", ""},
		"/sidecar/connections/acme/crm":   {"acme", "crm"},
		"/sidecar/connections/":           {"!", ""},
		"/sidecar/connections/acme/a/b":   {"!", ""},
		"/sidecar/connections/%2e%2e/crm": {"!", ""},
		"/sidecar/connections/../crm":     {"!", ""},
	} {
		tenant, connector, err := parsePath(path)
		if want[0] == "!" {
			if err == nil {
				t.Errorf("%s: accepted as %q %q", path, tenant, connector)
			}
			continue
		}
		if err != nil || tenant != want[0] || connector != want[1] {
			t.Errorf("%s: %q %q %v", path, tenant, connector, err)
		}
	}
}
