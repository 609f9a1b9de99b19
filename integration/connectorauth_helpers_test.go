package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// The connected system's OAuth client, as the platform registered it with
// the provider (zitadel's example OP), and the secrets the tests grep for.
const (
	crmClientID       = "sidecar-crm"
	crmClientSecret   = "crm-client-secret-never-logged-7f3a"
	crmRedirectURI    = "http://127.0.0.1/callback"
	connectionsKey    = "integration-connections-key-0123456789abcdef"
	connectorAuthUser = "test-user@127.0.0.1"
)

var registerCRMClient sync.Once

// shortTokenStorage is the example OP's storage, issuing access tokens that
// expire after lifetime (the OP keeps them valid at userinfo for minutes,
// so the sidecar's refresh is what the test observes), and recording
// revocations.
type shortTokenStorage struct {
	*storage.Storage
	lifetime time.Duration
	revoked  atomic.Int64
}

func (s *shortTokenStorage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	id, rt, _, err := s.Storage.CreateAccessAndRefreshTokens(ctx, req, current)
	return id, rt, time.Now().Add(s.lifetime), err
}

func (s *shortTokenStorage) RevokeToken(ctx context.Context, token, userID, clientID string) *oidc.Error {
	s.revoked.Add(1)
	return s.Storage.RevokeToken(ctx, token, userID, clientID)
}

// connectorOP is the connected system's authorization server: zitadel's
// example OP behind a switch that can take its token endpoint down.
type connectorOP struct {
	Issuer        string
	TokenURL      string // through the switch
	RevocationURL string
	store         *shortTokenStorage
	endpoints     struct {
		Authorization string `json:"authorization_endpoint"`
		Token         string `json:"token_endpoint"`
		Revocation    string `json:"revocation_endpoint"`
		Userinfo      string `json:"userinfo_endpoint"`
	}

	mode          atomic.Value // "", "down" (503), "slow" (beyond token_timeout)
	tokenRequests atomic.Int64
}

func startConnectorOP(t *testing.T, lifetime time.Duration) *connectorOP {
	t.Helper()
	registerCRMClient.Do(func() {
		storage.RegisterClients(storage.WebClient(crmClientID, crmClientSecret, crmRedirectURI))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &connectorOP{Issuer: "http://" + ln.Addr().String()}
	o.mode.Store("")
	o.store = &shortTokenStorage{Storage: storage.NewStorage(storage.NewUserStore(o.Issuer)), lifetime: lifetime}
	srv := &http.Server{Handler: exampleop.SetupServer(o.Issuer, o.store, nil, false)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	resp, err := http.Get(o.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&o.endpoints)
	resp.Body.Close()
	if err != nil || o.endpoints.Token == "" || o.endpoints.Revocation == "" || o.endpoints.Authorization == "" || o.endpoints.Userinfo == "" {
		t.Fatalf("the OP's discovery document: %v %+v", err, o.endpoints)
	}
	o.RevocationURL = o.endpoints.Revocation

	target, _ := url.Parse(o.Issuer)
	proxy := httputil.NewSingleHostReverseProxy(target)
	sw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.tokenRequests.Add(1)
		switch o.mode.Load() {
		case "down":
			http.Error(w, "token endpoint unavailable", http.StatusServiceUnavailable)
			return
		case "slow":
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(sw.Close)
	o.TokenURL = sw.URL + strings.TrimPrefix(o.endpoints.Token, o.Issuer)
	return o
}

// authorize runs the authorization code flow a tenant's administrator goes
// through when connecting the integration (login form included) and returns
// the refresh token the OP issued.
func (o *connectorOP) authorize(t *testing.T) string {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next := func(resp *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || loc == "" {
			t.Fatalf("authorization flow: %s, no redirect", resp.Status)
		}
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		if u.Host == "" {
			u, _ = url.Parse(o.Issuer + loc)
		}
		return u.String()
	}
	q := url.Values{"client_id": {crmClientID}, "redirect_uri": {crmRedirectURI}, "response_type": {"code"},
		"scope": {"openid offline_access"}, "state": {"s1"}}
	login := next(client.Get(o.endpoints.Authorization + "?" + q.Encode()))
	lu, _ := url.Parse(login)
	id := lu.Query().Get("authRequestID")
	callback := next(client.PostForm(o.Issuer+"/login/username", url.Values{"id": {id}, "username": {connectorAuthUser}, "password": {"verysecure"}}))
	redirect := next(client.Get(callback))
	ru, _ := url.Parse(redirect)
	code := ru.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in %s", redirect)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {crmRedirectURI}}
	req, _ := http.NewRequest(http.MethodPost, o.endpoints.Token, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(crmClientID, crmClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.RefreshToken == "" {
		t.Fatalf("code exchange: %s (%v)", resp.Status, err)
	}
	return tok.RefreshToken
}

// refreshWorks reports whether the OP still accepts the refresh token. Only
// call it on a token expected to be dead: a live one would be rotated away.
func (o *connectorOP) refreshWorks(t *testing.T, rt string) bool {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	req, _ := http.NewRequest(http.MethodPost, o.endpoints.Token, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(crmClientID, crmClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// accessTokenValid asks the OP's userinfo endpoint, as a resource server
// would, whether an access token is (still) good.
func (o *connectorOP) accessTokenValid(token string) bool {
	req, _ := http.NewRequest(http.MethodGet, o.endpoints.Userinfo, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// crmConnector is the connected system's API: it accepts only access tokens
// its OP issued (checked at the OP's userinfo endpoint) and records every
// token it was sent. The export streams a record every 50 ms until the
// client goes away.
type crmConnector struct {
	URL, Addr string
	op        *connectorOP

	mu       sync.Mutex
	tokens   []string // every bearer token received, valid or not
	rejected int
	exports  atomic.Int64
}

func startCRMConnector(t *testing.T, o *connectorOP) *crmConnector {
	t.Helper()
	c := &crmConnector{op: o}
	srv := httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(srv.Close)
	c.URL, c.Addr = srv.URL, strings.TrimPrefix(srv.URL, "http://")
	return c
}

func (c *crmConnector) serve(w http.ResponseWriter, r *http.Request) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	c.mu.Lock()
	c.tokens = append(c.tokens, token)
	c.mu.Unlock()
	if token == "" || !c.op.accessTokenValid(token) {
		c.mu.Lock()
		c.rejected++
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"invalid_token"}`)
		return
	}
	if r.URL.Path == "/v1/contacts/export" {
		c.exports.Add(1)
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		for i := 0; ; i++ {
			_, err := fmt.Fprintf(w, `{"id":"c_%d","name":"Contact %d","company":"Acme","owner_id":"u_1","created_at":"2026-01-01T00:00:00Z","email":"c%d@example.com"}`+"\n", i, i, i)
			if err == nil {
				err = rc.Flush()
			}
			if err != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"data":[{"id":"c_1","name":"Maria Lindqvist","company":"Nordlicht AB","owner_id":"u_17","created_at":"2026-03-02T09:14:00Z","email":"maria@example.com"}],"next_cursor":null}`)
}

func (c *crmConnector) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.tokens...)
}

// connectorWorld is one OP, connector, issuer and registry that sidecars
// (replicas) share, with one storage directory.
type connectorWorld struct {
	op        *connectorOP
	crm       *crmConnector
	iss       *devidp.Issuer
	dir       string
	storage   string
	tenants   string
	sidecars  []*Sidecar
	audits    []string
	callerTok string
}

func newConnectorWorld(t *testing.T, lifetime time.Duration) *connectorWorld {
	t.Helper()
	w := &connectorWorld{op: startConnectorOP(t, lifetime), iss: StartIssuer(t), dir: t.TempDir()}
	w.crm = startCRMConnector(t, w.op)
	w.storage = filepath.Join(w.dir, "storage")
	w.tenants = filepath.Join(w.dir, "tenants.json")
	registry := `{"tenants":[{"id":"acme","status":"active","issuers":["` + w.iss.URL + `"],"connectors":[{"id":"crm","state":"connected"}]}]}`
	if err := os.WriteFile(w.tenants, []byte(registry), 0o600); err != nil {
		t.Fatal(err)
	}
	w.callerTok = w.iss.MustMint(w.iss.AccessClaims("rep-12", "connector-api", devidp.Claims{"tenant_id": "acme", "scope": "contacts:read", "crm_user_id": "u_17"}))
	return w
}

// start runs one more sidecar replica on the shared storage.
func (w *connectorWorld) start(t *testing.T) *Sidecar {
	t.Helper()
	return w.startConfig(t, "caddyfiles/test/connector_auth.Caddyfile")
}

// startConfig is start with another Caddyfile, which reads the same
// environment as caddyfiles/test/connector_auth.Caddyfile.
func (w *connectorWorld) startConfig(t *testing.T, caddyfile string) *Sidecar {
	t.Helper()
	audit := filepath.Join(w.dir, fmt.Sprintf("audit-%d.jsonl", len(w.sidecars)))
	sc := StartSidecar(t, caddyfile, map[string]string{
		"STORAGE_DIR":             w.storage,
		"AUDIT_FILE":              audit,
		"AUDIT_KEY":               auditKey,
		"ISSUER":                  w.iss.URL,
		"TENANTS":                 w.tenants,
		"TOKEN_URL":               w.op.TokenURL,
		"REVOCATION_URL":          w.op.RevocationURL,
		"CRM_CLIENT_ID":           crmClientID,
		"CRM_CLIENT_SECRET":       crmClientSecret,
		"SIDECAR_CONNECTIONS_KEY": connectionsKey,
		"UPSTREAM":                w.crm.Addr,
		"HASH_KEY":                "integration-hash-key-0123456789abcdef",
	})
	w.sidecars = append(w.sidecars, sc)
	w.audits = append(w.audits, audit)
	return sc
}

func (w *connectorWorld) get(t *testing.T, sc *Sidecar, path string) (*http.Response, []byte) {
	t.Helper()
	return sc.Get(t, path, w.callerTok, "X-Tenant-ID: acme")
}

// admin calls the sidecar's admin API and returns the status and body.
func admin(t *testing.T, sc *Sidecar, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+sc.AdminAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// connect stores a refresh token for acme's crm connection through sc's
// admin API.
func (w *connectorWorld) connect(t *testing.T, sc *Sidecar, rt string) string {
	t.Helper()
	status, body := admin(t, sc, http.MethodPut, "/sidecar/connections/acme/crm", `{"refresh_token":"`+rt+`"}`)
	if status != http.StatusOK {
		t.Fatalf("connect: %d %s", status, body)
	}
	return body
}

// events returns the audit records with an event field, and the request
// records, of one audit file.
func connectorAuditRecords(t *testing.T, file string) (events, requests []map[string]any) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if _, ok := rec["event"]; ok {
			events = append(events, rec)
		} else {
			requests = append(requests, rec)
		}
	}
	return events, requests
}
