package connectorauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

const testKey = "test-only-connections-key-0123456789abcdef"

// tokenServer issues at-1, at-2, ... for any refresh token it issued, and
// rotates them.
type tokenServer struct {
	*httptest.Server
	mu    sync.Mutex
	n     int
	valid map[string]bool
}

func newTokenServer(t testing.TB) *tokenServer {
	s := &tokenServer{valid: map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		rt := r.PostFormValue("refresh_token")
		if !s.valid[rt] {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant"}`)
			return
		}
		delete(s.valid, rt)
		s.n++
		next := fmt.Sprintf("rt-%d", s.n)
		s.valid[next] = true
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("at-%d", s.n), "token_type": "Bearer", "expires_in": 3600, "refresh_token": next})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *tokenServer) issue() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	rt := fmt.Sprintf("rt-%d", s.n)
	s.valid[rt] = true
	return rt
}

// handler builds a provisioned-equivalent handler on its own manager.
func handler(t testing.TB, srv *tokenServer, header string) *ConnectorAuth {
	t.Helper()
	mgr := NewManager(&certmagic.FileStorage{Path: t.TempDir()}, zap.NewNop())
	t.Cleanup(func() { mgr.Destruct() })
	conn, err := NewConnector(Settings{
		Name: "crm", TokenURL: srv.URL, ClientID: "platform", ClientSecret: "s", Grant: GrantRefreshToken, Key: testKey,
	}, mgr, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	m := &ConnectorAuth{Connector: "crm", Header: header, conn: conn, mgr: mgr, logger: zap.NewNop()}
	if m.Header == "" {
		m.Header = DefaultHeader
	}
	m.headerKey = http.CanonicalHeaderKey(m.Header)
	m.credentials = sidecar.NewHeaderNames("Authorization", m.headerKey)
	return m
}

// request is a request as tenant_guard leaves it: tenant placeholders set,
// a decision record attached.
func request(tenant, connector string, headers ...string) (*http.Request, *sidecar.Decision) {
	r := httptest.NewRequest(http.MethodGet, "http://sidecar/v1/contacts", nil)
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		r.Header[name] = append(r.Header[name], strings.TrimSpace(value))
	}
	repl := caddy.NewReplacer()
	repl.Set(placeholderTenant, tenant)
	if connector != "" {
		repl.Set(placeholderConnector, connector)
	}
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.ServerCtxKey, &caddyhttp.Server{})
	r, d := sidecar.WithDecision(r.WithContext(ctx))
	return r, d
}

type recordingNext struct {
	got    http.Header
	status int
	body   string
	calls  int
}

func (n *recordingNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	n.calls++
	n.got = r.Header.Clone()
	if n.status != 0 {
		w.WriteHeader(n.status)
	}
	_, _ = w.Write([]byte(n.body))
	return nil
}

func problemReason(t *testing.T, body []byte) string {
	t.Helper()
	var p sidecar.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("not a problem body: %s", body)
	}
	return p.Reason
}

// TestInjectsTheTenantsTokenNotTheCallers: the connector receives the
// tenant's access token in the configured header, and no copy of the
// caller's token in any spelling, header or trailer.
func TestInjectsTheTenantsTokenNotTheCallers(t *testing.T) {
	srv := newTokenServer(t)
	m := handler(t, srv, "X-Crm-Token")
	if _, err := m.conn.Connect(context.Background(), "acme", Credential{RefreshToken: srv.issue()}); err != nil {
		t.Fatal(err)
	}
	caller := "caller-token-must-not-reach-the-connector"
	r, d := request("acme", "crm", "Authorization: Bearer "+caller, "X_Crm_Token: "+caller, "X-Crm-Token: "+caller, "x.crm.token: "+caller,
		"Connection: keep-alive, x_crm_token", "Connection: Authorization")
	r.Trailer = http.Header{"Authorization": {caller}}
	next := &recordingNext{body: `{}`}
	w := httptest.NewRecorder()
	if err := m.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	if next.calls != 1 {
		t.Fatalf("next called %d times; status %d %s", next.calls, w.Code, w.Body)
	}
	if got := next.got.Get("X-Crm-Token"); !strings.HasPrefix(got, "Bearer at-") {
		t.Errorf("X-Crm-Token = %q, want the tenant's access token", got)
	}
	for name, values := range next.got {
		for _, v := range values {
			if strings.Contains(v, caller) {
				t.Errorf("the connector received the caller's token in %s", name)
			}
		}
	}
	if len(next.got["X-Crm-Token"]) != 1 {
		t.Errorf("X-Crm-Token appears %d times", len(next.got["X-Crm-Token"]))
	}
	// reverse_proxy deletes the headers Connection names (RFC 9110 7.6.1)
	if got := next.got["Connection"]; len(got) != 1 || got[0] != "keep-alive" {
		t.Errorf("Connection = %q: it still names the token header, which reverse_proxy would strip", got)
	}
	if _, ok := r.Trailer["Authorization"]; ok {
		t.Error("the Authorization trailer was not removed")
	}
	if len(d.SpoofedHeaders) == 0 {
		t.Error("disguised copies of the token header were not recorded")
	}
	if !slices.Contains(d.VerifiedHeaders, "X-Crm-Token") {
		t.Errorf("verified headers %q lack the token header: scope_trim's request_headers would drop it", d.VerifiedHeaders)
	}
}

func TestRefusals(t *testing.T) {
	srv := newTokenServer(t)
	m := handler(t, srv, "")
	for _, c := range []struct {
		name      string
		tenant    string
		connector string
		headers   []string
		status    int
		reason    string
	}{
		{"never connected", "acme", "crm", nil, 403, sidecar.ReasonConnectorDisconnected},
		{"no tenant_guard", "", "", nil, 500, sidecar.ReasonIdentityMissing},
		{"another connector on the route", "acme", "erp", nil, 500, sidecar.ReasonHandlerError},
		{"upgrade", "acme", "crm", []string{"Upgrade: websocket", "Connection: Upgrade"}, 400, sidecar.ReasonUpgradeRefused},
		{"tenant not a storage name", "..", "crm", nil, 403, sidecar.ReasonConnectorDisconnected},
	} {
		r, d := request(c.tenant, c.connector, c.headers...)
		next := &recordingNext{}
		w := httptest.NewRecorder()
		if err := m.ServeHTTP(w, r, next); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if w.Code != c.status || problemReason(t, w.Body.Bytes()) != c.reason || d.Reason != c.reason {
			t.Errorf("%s: %d %s (decision %s), want %d %s", c.name, w.Code, w.Body, d.Reason, c.status, c.reason)
		}
		if next.calls != 0 {
			t.Errorf("%s: the connector was called", c.name)
		}
		if d.SecurityEvent != "" {
			t.Errorf("%s: security event %q", c.name, d.SecurityEvent)
		}
	}
}

// TestDisconnectedIsASecurityEvent: a request on a connection its tenant
// disconnected is refused and raised as a security event.
func TestDisconnectedIsASecurityEvent(t *testing.T) {
	srv := newTokenServer(t)
	m := handler(t, srv, "")
	ctx := context.Background()
	if _, err := m.conn.Connect(ctx, "acme", Credential{RefreshToken: srv.issue()}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.conn.Disconnect(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	r, d := request("acme", "crm")
	w := httptest.NewRecorder()
	next := &recordingNext{}
	if err := m.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	if w.Code != 403 || d.Reason != sidecar.ReasonConnectorDisconnected || d.SecurityEvent != sidecar.ReasonConnectorDisconnected || next.calls != 0 {
		t.Fatalf("%d %s, security event %q, next called %d", w.Code, w.Body, d.SecurityEvent, next.calls)
	}
}

// TestUpstream401DropsTheToken: after the connector answers 401, the next
// request gets a new access token.
func TestUpstream401DropsTheToken(t *testing.T) {
	srv := newTokenServer(t)
	m := handler(t, srv, "")
	if _, err := m.conn.Connect(context.Background(), "acme", Credential{RefreshToken: srv.issue()}); err != nil {
		t.Fatal(err)
	}
	serve := func(status int) string {
		r, _ := request("acme", "crm")
		next := &recordingNext{status: status}
		if err := m.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
			t.Fatal(err)
		}
		return next.got.Get("Authorization")
	}
	first := serve(http.StatusOK)
	if serve(http.StatusUnauthorized) != first {
		t.Fatal("the cached token was not reused")
	}
	if serve(http.StatusOK) == first {
		t.Fatal("after a 401 the same token was sent again")
	}
}

// blockingNext answers headers and one record, then waits for its request
// to end, as a long export does.
type blockingNext struct {
	writeFirst bool
	started    chan struct{}
}

func (n *blockingNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	if n.writeFirst {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("{\"id\":1}\n"))
	}
	close(n.started)
	<-r.Context().Done()
	if n.writeFirst {
		if _, err := w.Write([]byte("{\"id\":2}\n")); err == nil {
			return errors.New("a write after the cut succeeded")
		}
	}
	return nil
}

// TestDisconnectCutsRequestsInFlight: a disconnect aborts an answer under
// way (panic http.ErrAbortHandler, so the client sees no clean end) and
// refuses one not yet begun; the decision says it was cut by a disconnect.
func TestDisconnectCutsRequestsInFlight(t *testing.T) {
	for _, begun := range []bool{true, false} {
		srv := newTokenServer(t)
		m := handler(t, srv, "")
		ctx := context.Background()
		if _, err := m.conn.Connect(ctx, "acme", Credential{RefreshToken: srv.issue()}); err != nil {
			t.Fatal(err)
		}
		r, d := request("acme", "crm")
		next := &blockingNext{writeFirst: begun, started: make(chan struct{})}
		w := httptest.NewRecorder()
		done := make(chan any, 1)
		go func() {
			defer func() { done <- recover() }()
			if err := m.ServeHTTP(w, r, next); err != nil {
				done <- err
			}
		}()
		select {
		case <-next.started:
		case got := <-done:
			t.Fatalf("the request ended before reaching the connector: %v, %d %s", got, w.Code, w.Body)
		case <-time.After(10 * time.Second):
			t.Fatal("the request did not reach the connector")
		}
		if _, err := m.conn.Disconnect(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		var got any
		select {
		case got = <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the request was not cut")
		}
		if begun {
			if got != http.ErrAbortHandler {
				t.Fatalf("an answer under way ended with %v, want a panic with http.ErrAbortHandler", got)
			}
			if strings.Contains(w.Body.String(), `"id":2`) {
				t.Fatal("a record after the cut reached the client")
			}
		} else if got != nil || w.Code != 403 || problemReason(t, w.Body.Bytes()) != sidecar.ReasonConnectorDisconnected {
			t.Fatalf("an answer not begun: %v, %d %s", got, w.Code, w.Body)
		}
		if d.InterruptedBy != sidecar.InterruptedByDisconnect || d.Reason != sidecar.ReasonConnectorDisconnected {
			t.Fatalf("begun=%v: decision %+v", begun, d)
		}
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`connector_auth {
		connector crm
		token_url {env.TOKEN_URL}
		revocation_url https://crm.example/revoke
		client_id platform
		client_secret {env.SECRET}
		grant refresh_token
		scopes a b
		header X-Token
		key {env.KEY}
		client_auth post
		token_timeout 3s
		revocation_timeout 4s
		retry_after 7s
		reusable_refresh_tokens
	}`)
	var m ConnectorAuth
	if err := m.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := ConnectorAuth{Connector: "crm", TokenURL: "{env.TOKEN_URL}", RevocationURL: "https://crm.example/revoke", ClientID: "platform",
		ClientSecret: "{env.SECRET}", Grant: "refresh_token", Scopes: []string{"a", "b"}, Header: "X-Token", Key: "{env.KEY}", ClientAuth: "post",
		TokenTimeout: caddy.Duration(3 * time.Second), RevocationTimeout: caddy.Duration(4 * time.Second), RetryAfter: caddy.Duration(7 * time.Second),
		ReusableRefreshTokens: true}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}
	for input, wantErr := range map[string]string{
		"connector_auth crm":                              "wrong argument count",
		"connector_auth {\n connector a\n connector b\n}": "is given twice; give it once",
		"connector_auth {\n token_timeout soon\n}":        "token_timeout",
		"connector_auth {\n scopes\n}":                    "wrong argument count",
		"connector_auth {\n refresh_token x\n}":           "unrecognized subdirective",
	} {
		var m ConnectorAuth
		err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: %v, want an error containing %q", input, err, wantErr)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := ConnectorAuth{Connector: "crm", TokenURL: "https://x/token", Grant: "refresh_token", Key: "{env.K}"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*ConnectorAuth){
		"no connector":  func(m *ConnectorAuth) { m.Connector = "" },
		"bad connector": func(m *ConnectorAuth) { m.Connector = "../x" },
		"no key":        func(m *ConnectorAuth) { m.Key = "" },
		"no token_url":  func(m *ConnectorAuth) { m.TokenURL = "" },
		"bad grant":     func(m *ConnectorAuth) { m.Grant = "password" },
		"bad header":    func(m *ConnectorAuth) { m.Header = "X Token" },
		"negative":      func(m *ConnectorAuth) { m.RetryAfter = -1 },
	} {
		m := ok
		mutate(&m)
		if m.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
