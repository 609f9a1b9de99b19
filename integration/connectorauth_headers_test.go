package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// connectorHeadersCaddyfile is caddyfiles/test/connector_auth.Caddyfile with
// a route that proxies without scope_trim, and scope_trim's route under a
// request_headers allowlist that names nothing (only the default set and
// the headers the sidecar set reach the connector).
const connectorHeadersCaddyfile = `{
	admin {$SIDECAR_ADMIN}
	storage file_system {$STORAGE_DIR}
}

http://{$SIDECAR_ADDR} {
	audit_log {
		output file {$AUDIT_FILE}
		pseudonym_key {env.AUDIT_KEY}
	}
	oidc_auth {
		issuer {$ISSUER} {
			audience connector-api
		}
	}
	tenant_guard {
		tenants {$TENANTS}
		connector crm
	}
	connector_auth {
		connector crm
		token_url {$TOKEN_URL}
		revocation_url {$REVOCATION_URL}
		client_id {$CRM_CLIENT_ID}
		client_secret {env.CRM_CLIENT_SECRET}
		grant refresh_token
		key {env.SIDECAR_CONNECTIONS_KEY}
	}

	handle_path /passthrough/* {
		reverse_proxy {$UPSTREAM}
	}
	handle {
		scope_trim {
			policies policies/crm.json
			hash_key {env.HASH_KEY}
			request_headers
		}
		reverse_proxy {$UPSTREAM}
	}
}
`

func startConnectorHeaders(t *testing.T) (*connectorWorld, *Sidecar) {
	t.Helper()
	w := newConnectorWorld(t, time.Hour)
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(connectorHeadersCaddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	sc := w.startConfig(t, path)
	w.connect(t, sc, w.op.authorize(t))
	return w, sc
}

// TestConnectorAuthConnectionHeaderCannotStripTheToken: a client that names
// the token header in its Connection header would have reverse_proxy strip
// the tenant's token that connector_auth set (RFC 9110 7.6.1, reverseproxy.go
// removeConnectionHeaders), on a route without scope_trim as well: the
// connector would get no token, and its 401 would make connector_auth drop
// the cached one, so that every such request forced a refresh. The token
// still arrives, and the Connection token is recorded as spoofed.
func TestConnectorAuthConnectionHeaderCannotStripTheToken(t *testing.T) {
	w, sc := startConnectorHeaders(t)
	for _, conn := range []string{"Authorization", "keep-alive, authorization", "AUTHORIZATION"} {
		refreshes := w.op.tokenRequests.Load()
		before := len(w.crm.received())
		resp, body := sc.Get(t, "/passthrough/v1/contacts", w.callerTok, "X-Tenant-ID: acme", "Connection: "+conn)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Maria Lindqvist") {
			t.Fatalf("Connection: %s: %d %s", conn, resp.StatusCode, body)
		}
		got := w.crm.received()[before:]
		if len(got) != 1 || !w.op.accessTokenValid(got[0]) {
			t.Fatalf("Connection: %s: the connector got tokens %q, want the tenant's", conn, got)
		}
		if before > 0 && w.op.tokenRequests.Load() != refreshes {
			t.Fatalf("Connection: %s: the access token was refreshed again", conn)
		}
	}
	var spoofed bool
	for deadline := time.Now().Add(5 * time.Second); !spoofed && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, requests := connectorAuditRecords(t, w.audits[0])
		for _, r := range requests {
			list, _ := r["spoofed_headers"].([]any)
			for _, n := range list {
				spoofed = spoofed || n == "Connection: Authorization"
			}
		}
	}
	if !spoofed {
		t.Fatal("no audit record lists the Connection token as a spoofed header")
	}
}

// TestConnectorAuthTokenPassesRequestAllowlist: scope_trim's request_headers
// allowlist always forwards the headers the sidecar set from verified data;
// the tenant's access token that connector_auth injects is one of them, so
// an allowlist that does not name Authorization still lets it through (and
// the caller's own never).
func TestConnectorAuthTokenPassesRequestAllowlist(t *testing.T) {
	w, sc := startConnectorHeaders(t)
	resp, body := w.get(t, sc, "/v1/contacts")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Maria Lindqvist") {
		t.Fatalf("under request_headers: %d %s", resp.StatusCode, body)
	}
	got := w.crm.received()
	if len(got) != 1 || !w.op.accessTokenValid(got[0]) {
		t.Fatalf("the connector got tokens %q, want the tenant's", got)
	}
}
