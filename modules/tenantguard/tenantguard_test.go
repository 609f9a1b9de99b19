package tenantguard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

const (
	issuerAcme   = "https://login.acme.example"
	issuerGlobex = "https://globex.okta.example"
)

// testRegistry is the registry most tests provision against.
const testRegistry = `{
	"tenants": [
		{"id": "acme", "status": "active", "issuers": ["https://login.acme.example"],
		 "connectors": [{"id": "crm", "state": "connected"}, {"id": "erp", "state": "disconnected"}]},
		{"id": "globex", "status": "active", "issuers": ["https://globex.okta.example"],
		 "connectors": [{"id": "crm", "state": "connected"}]},
		{"id": "initech", "status": "suspended", "issuers": ["https://login.acme.example"],
		 "connectors": [{"id": "crm", "state": "connected"}]}
	]
}`

func writeFile(t testing.TB, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// provision provisions and validates m as Caddy would.
func provision(t testing.TB, m *TenantGuard) *TenantGuard {
	t.Helper()
	ctx, cancel := newContext()
	t.Cleanup(cancel)
	if err := m.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return m
}

func newContext() (caddy.Context, context.CancelFunc) {
	return caddy.NewContext(caddy.Context{Context: context.Background()})
}

func identity(issuer string, claims map[string]any) *sidecar.Identity {
	return &sidecar.Identity{Subject: "alice", Issuer: issuer, Claims: claims}
}

func acmeIdentity() *sidecar.Identity {
	return identity(issuerAcme, map[string]any{"tenant_id": "acme"})
}

// request builds a request as it reaches tenant_guard: a replacer, a
// decision record, the identity (none if nil) and raw headers kept exactly
// as given ("Name: value").
func request(t testing.TB, target string, id *sidecar.Identity, headers ...string) (*http.Request, *sidecar.Decision) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	caddyhttp.NewTestReplacer(r)
	r, d := sidecar.WithDecision(r)
	if id != nil {
		r = sidecar.WithIdentity(r, id)
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			t.Fatalf("header %q has no colon", h)
		}
		r.Header[name] = append(r.Header[name], strings.TrimSpace(value))
	}
	return r, d
}

// recorder is the next handler: it records what the upstream would receive.
type recorder struct {
	calls  int
	header http.Header
	repl   *caddy.Replacer
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	rec.calls++
	rec.header = r.Header.Clone()
	rec.repl, _ = r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	w.WriteHeader(http.StatusOK)
	return nil
}

// serve runs the guard and returns the response, the refusal body (if any)
// and what the next handler saw.
func serve(t testing.TB, m *TenantGuard, r *http.Request) (*httptest.ResponseRecorder, *sidecar.Problem, *recorder) {
	t.Helper()
	w := httptest.NewRecorder()
	rec := new(recorder)
	if err := m.ServeHTTP(w, r, rec); err != nil {
		t.Fatalf("ServeHTTP returned %v; without handle_errors a refusal is written, not returned", err)
	}
	var p *sidecar.Problem
	if w.Code != http.StatusOK {
		p = new(sidecar.Problem)
		if ct := w.Header().Get("Content-Type"); ct != sidecar.ContentTypeProblem {
			t.Fatalf("refusal Content-Type %q, want %q", ct, sidecar.ContentTypeProblem)
		}
		if err := json.Unmarshal(w.Body.Bytes(), p); err != nil {
			t.Fatalf("refusal body %q: %v", w.Body.String(), err)
		}
	}
	return w, p, rec
}

// tenantHeaders returns every header name in h that folds to X-Tenant-ID,
// with its values.
func tenantHeaders(h http.Header, name string) map[string][]string {
	out := map[string][]string{}
	for k, v := range h {
		if sidecar.SameHeaderName(k, name) {
			out[k] = v
		}
	}
	return out
}

// assertForwardedTenant fails unless the next handler got exactly one
// tenant header, spelled canonically, with exactly the tenant.
func assertForwardedTenant(t testing.TB, rec *recorder, tenant string) {
	t.Helper()
	if rec.calls != 1 {
		t.Fatalf("next handler called %d times, want 1", rec.calls)
	}
	got := tenantHeaders(rec.header, DefaultHeader)
	if len(got) != 1 || len(got["X-Tenant-Id"]) != 1 || got["X-Tenant-Id"][0] != tenant {
		t.Fatalf("the upstream would receive tenant headers %v; want exactly X-Tenant-Id: %s", got, tenant)
	}
}

func TestServeHTTPRules(t *testing.T) {
	dir := t.TempDir()
	regPath := writeFile(t, dir, "tenants.json", testRegistry)
	withRegistry := func() *TenantGuard {
		return provision(t, &TenantGuard{Tenants: regPath, Connector: "crm"})
	}
	plain := func() *TenantGuard { return provision(t, &TenantGuard{}) }

	tests := []struct {
		name    string
		guard   func() *TenantGuard
		id      *sidecar.Identity
		target  string
		headers []string
		status  int
		reason  string
		tenant  string // forwarded tenant when allowed
	}{
		{name: "matching header passes", guard: plain, id: acmeIdentity(), headers: []string{"X-Tenant-ID: acme"}, tenant: "acme"},
		{name: "lower-case name is the same header", guard: plain, id: acmeIdentity(), headers: []string{"x-tenant-id: acme"}, tenant: "acme"},
		{name: "no identity", guard: plain, headers: []string{"X-Tenant-ID: acme"}, status: 500, reason: sidecar.ReasonIdentityMissing},
		{name: "no tenant claim", guard: plain, id: identity(issuerAcme, map[string]any{"sub": "alice"}), headers: []string{"X-Tenant-ID: acme"}, status: 403, reason: sidecar.ReasonTenantClaimMissing},
		{name: "tenant claim not a string", guard: plain, id: identity(issuerAcme, map[string]any{"tenant_id": []any{"acme"}}), headers: []string{"X-Tenant-ID: acme"}, status: 403, reason: sidecar.ReasonTenantClaimMissing},
		{name: "tenant claim outside the safe set", guard: plain, id: identity(issuerAcme, map[string]any{"tenant_id": "acme,globex"}), headers: []string{"X-Tenant-ID: acme,globex"}, status: 403, reason: sidecar.ReasonTenantClaimMissing},
		{name: "header missing", guard: plain, id: acmeIdentity(), status: 400, reason: sidecar.ReasonTenantMissing},
		{name: "header twice, same value", guard: plain, id: acmeIdentity(), headers: []string{"X-Tenant-ID: acme", "X-Tenant-ID: acme"}, status: 400, reason: sidecar.ReasonTenantMalformed},
		{name: "header twice, different case", guard: plain, id: acmeIdentity(), headers: []string{"X-Tenant-Id: acme", "X-Tenant-ID: globex"}, status: 400, reason: sidecar.ReasonTenantMalformed},
		{name: "comma-joined", guard: plain, id: acmeIdentity(), headers: []string{"X-Tenant-ID: acme,globex"}, status: 400, reason: sidecar.ReasonTenantMalformed},
		{name: "comma-joined same", guard: plain, id: acmeIdentity(), headers: []string{"X-Tenant-ID: acme, acme"}, status: 400, reason: sidecar.ReasonTenantMalformed},
		{name: "empty", guard: plain, id: acmeIdentity(), headers: []string{"X-Tenant-ID: "}, status: 400, reason: sidecar.ReasonTenantMalformed},
		{name: "inner whitespace", guard: plain, id: acmeIdentity(), headers: []string{"X-Tenant-ID: ac me"}, status: 400, reason: sidecar.ReasonTenantMalformed},
		{name: "tab", guard: plain, id: acmeIdentity(), headers: []string{"X-Tenant-ID: ac\tme"}, status: 400, reason: sidecar.ReasonTenantMalformed},
		{name: "non-ASCII look-alike", guard: plain, id: acmeIdentity(), headers: []string{"X-Tenant-ID: acmé"}, status: 400, reason: sidecar.ReasonTenantMalformed},
		{name: "quoted", guard: plain, id: acmeIdentity(), headers: []string{`X-Tenant-ID: "acme"`}, status: 400, reason: sidecar.ReasonTenantMalformed},
		{name: "different tenant", guard: plain, id: acmeIdentity(), headers: []string{"X-Tenant-ID: globex"}, status: 403, reason: sidecar.ReasonTenantMismatch},
		{name: "different case of the tenant", guard: plain, id: acmeIdentity(), headers: []string{"X-Tenant-ID: ACME"}, status: 403, reason: sidecar.ReasonTenantMismatch},
		{name: "prefix of the tenant", guard: plain, id: acmeIdentity(), headers: []string{"X-Tenant-ID: acm"}, status: 403, reason: sidecar.ReasonTenantMismatch},
		{name: "disguised copy removed, real header passes", guard: plain, id: acmeIdentity(), headers: []string{"X-Tenant-ID: acme", "X_Tenant_ID: globex", "x-tenant_id: globex"}, tenant: "acme"},
		{name: "disguised copy alone is not the header", guard: plain, id: acmeIdentity(), headers: []string{"X_Tenant_ID: acme"}, status: 400, reason: sidecar.ReasonTenantMissing},
		{name: "inject sets a missing header", guard: func() *TenantGuard { return provision(t, &TenantGuard{Inject: true}) }, id: acmeIdentity(), tenant: "acme"},
		{name: "inject still checks a present header", guard: func() *TenantGuard { return provision(t, &TenantGuard{Inject: true}) }, id: acmeIdentity(), headers: []string{"X-Tenant-ID: globex"}, status: 403, reason: sidecar.ReasonTenantMismatch},
		{name: "inject ignores disguised copies", guard: func() *TenantGuard { return provision(t, &TenantGuard{Inject: true}) }, id: acmeIdentity(), headers: []string{"X_TENANT_ID: globex"}, tenant: "acme"},
		{name: "route tenant from host matches", guard: func() *TenantGuard { return provision(t, &TenantGuard{RouteTenant: "{http.request.host.labels.2}"}) }, id: acmeIdentity(), target: "http://acme.api.example/x", headers: []string{"X-Tenant-ID: acme"}, tenant: "acme"},
		{name: "route tenant from host differs", guard: func() *TenantGuard { return provision(t, &TenantGuard{RouteTenant: "{http.request.host.labels.2}"}) }, id: acmeIdentity(), target: "http://globex.api.example/x", headers: []string{"X-Tenant-ID: acme"}, status: 403, reason: sidecar.ReasonTenantMismatch},
		{name: "route tenant that expands to nothing", guard: func() *TenantGuard { return provision(t, &TenantGuard{RouteTenant: "{http.request.host.labels.7}"}) }, id: acmeIdentity(), headers: []string{"X-Tenant-ID: acme"}, status: 403, reason: sidecar.ReasonTenantMismatch},
		{name: "route tenant from path", guard: func() *TenantGuard { return provision(t, &TenantGuard{RouteTenant: "{http.request.uri.path.1}"}) }, id: acmeIdentity(), target: "http://h/tenants/acme/contacts", headers: []string{"X-Tenant-ID: acme"}, tenant: "acme"},
		{name: "registry: connected connector", guard: withRegistry, id: acmeIdentity(), headers: []string{"X-Tenant-ID: acme"}, tenant: "acme"},
		{name: "registry: unknown tenant", guard: withRegistry, id: identity(issuerAcme, map[string]any{"tenant_id": "umbrella"}), headers: []string{"X-Tenant-ID: umbrella"}, status: 403, reason: sidecar.ReasonTenantUnknown},
		{name: "registry: suspended tenant", guard: withRegistry, id: identity(issuerAcme, map[string]any{"tenant_id": "initech"}), headers: []string{"X-Tenant-ID: initech"}, status: 403, reason: sidecar.ReasonTenantSuspended},
		{name: "registry: another tenant's issuer", guard: withRegistry, id: identity(issuerAcme, map[string]any{"tenant_id": "globex"}), headers: []string{"X-Tenant-ID: globex"}, status: 403, reason: sidecar.ReasonIssuerNotAllowedForTenant},
		{name: "registry: issuer checked before suspension", guard: withRegistry, id: identity(issuerGlobex, map[string]any{"tenant_id": "initech"}), headers: []string{"X-Tenant-ID: initech"}, status: 403, reason: sidecar.ReasonIssuerNotAllowedForTenant},
		{name: "registry: disconnected connector", guard: func() *TenantGuard { return provision(t, &TenantGuard{Tenants: regPath, Connector: "erp"}) }, id: acmeIdentity(), headers: []string{"X-Tenant-ID: acme"}, status: 403, reason: sidecar.ReasonConnectorDisconnected},
		{name: "registry: connector not listed", guard: func() *TenantGuard { return provision(t, &TenantGuard{Tenants: regPath, Connector: "billing"}) }, id: acmeIdentity(), headers: []string{"X-Tenant-ID: acme"}, status: 403, reason: sidecar.ReasonConnectorDisconnected},
		{name: "registry: connector placeholder", guard: func() *TenantGuard {
			return provision(t, &TenantGuard{Tenants: regPath, Connector: "{http.request.uri.path.0}"})
		}, id: acmeIdentity(), target: "http://h/erp/x", headers: []string{"X-Tenant-ID: acme"}, status: 403, reason: sidecar.ReasonConnectorDisconnected},
		{name: "registry: connector placeholder that expands to nothing", guard: func() *TenantGuard {
			return provision(t, &TenantGuard{Tenants: regPath, Connector: "{http.request.uri.path.9}"})
		}, id: acmeIdentity(), headers: []string{"X-Tenant-ID: acme"}, status: 403, reason: sidecar.ReasonConnectorDisconnected},
		{name: "registry without connector checks the tenant only", guard: func() *TenantGuard { return provision(t, &TenantGuard{Tenants: regPath}) }, id: acmeIdentity(), headers: []string{"X-Tenant-ID: acme"}, tenant: "acme"},
		{name: "nested claim path", guard: func() *TenantGuard { return provision(t, &TenantGuard{Claim: "org.id"}) }, id: identity(issuerAcme, map[string]any{"org": map[string]any{"id": "acme"}, "tenant_id": "globex"}), headers: []string{"X-Tenant-ID: acme"}, tenant: "acme"},
		{name: "URL-named claim", guard: func() *TenantGuard { return provision(t, &TenantGuard{Claim: "https://example.com/tenant"}) }, id: identity(issuerAcme, map[string]any{"https://example.com/tenant": "acme"}), headers: []string{"X-Tenant-ID: acme"}, tenant: "acme"},
		{name: "integer claim", guard: plain, id: identity(issuerAcme, map[string]any{"tenant_id": float64(4711)}), headers: []string{"X-Tenant-ID: 4711"}, tenant: "4711"},
		{name: "fractional claim", guard: plain, id: identity(issuerAcme, map[string]any{"tenant_id": 47.5}), headers: []string{"X-Tenant-ID: 47.5"}, status: 403, reason: sidecar.ReasonTenantClaimMissing},
		{name: "custom header", guard: func() *TenantGuard { return provision(t, &TenantGuard{Header: "X-Org"}) }, id: acmeIdentity(), headers: []string{"X-Org: acme", "X-Tenant-ID: globex"}, tenant: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.target
			if target == "" {
				target = "http://sidecar.example/contacts"
			}
			m := tc.guard()
			r, d := request(t, target, tc.id, tc.headers...)
			w, p, rec := serve(t, m, r)
			if tc.status != 0 {
				if w.Code != tc.status || p.Reason != tc.reason || p.Status != tc.status {
					t.Fatalf("got %d %+v, want %d %s", w.Code, p, tc.status, tc.reason)
				}
				if rec.calls != 0 {
					t.Fatalf("a refused request reached the next handler")
				}
				if d.Reason != tc.reason || d.Status != tc.status {
					t.Fatalf("decision record %q/%d, want %q/%d", d.Reason, d.Status, tc.reason, tc.status)
				}
				return
			}
			if w.Code != http.StatusOK {
				t.Fatalf("refused %d %+v; want it allowed", w.Code, p)
			}
			if m.Header == "X-Org" {
				if v := rec.header.Values("X-Org"); len(v) != 1 || v[0] != "acme" {
					t.Fatalf("X-Org forwarded as %v", v)
				}
				return
			}
			assertForwardedTenant(t, rec, tc.tenant)
			if d.Tenant != tc.tenant || d.Denied() {
				t.Fatalf("decision record tenant %q denied %v", d.Tenant, d.Denied())
			}
		})
	}
}

func TestDecisionAndPlaceholders(t *testing.T) {
	dir := t.TempDir()
	m := provision(t, &TenantGuard{Tenants: writeFile(t, dir, "t.json", testRegistry), Connector: "{http.request.uri.path.0}"})
	r, d := request(t, "http://h/crm/contacts", acmeIdentity(), "X-Tenant-ID: acme", "X_Tenant_Id: globex", "Connection: keep-alive, x-tenant-id")
	w, _, rec := serve(t, m, r)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	assertForwardedTenant(t, rec, "acme")
	if d.Tenant != "acme" || d.Connector != "crm" {
		t.Fatalf("decision tenant %q connector %q", d.Tenant, d.Connector)
	}
	want := []string{"X_Tenant_Id", "Connection: X-Tenant-Id"}
	if strings.Join(d.SpoofedHeaders, "|") != strings.Join(want, "|") {
		t.Fatalf("spoofed headers %q, want %q", d.SpoofedHeaders, want)
	}
	if got := rec.header.Values("Connection"); len(got) != 1 || got[0] != "keep-alive" {
		t.Fatalf("Connection forwarded as %q; want the tenant header's name removed and keep-alive kept", got)
	}
	for ph, want := range map[string]string{"tenant.id": "acme", "http.tenant_guard.tenant": "acme", "http.tenant_guard.connector": "crm"} {
		if v, _ := rec.repl.GetString(ph); v != want {
			t.Errorf("{%s} = %q, want %q", ph, v, want)
		}
	}
}

func TestRefusalRecordsConnectorAndSpoofedHeaders(t *testing.T) {
	m := provision(t, &TenantGuard{Connector: "crm"})
	r, d := request(t, "http://h/x", acmeIdentity(), "X-Tenant-ID: globex", "x-tenant_id: acme")
	w, p, _ := serve(t, m, r)
	if w.Code != 403 || p.Reason != sidecar.ReasonTenantMismatch {
		t.Fatalf("got %d %+v", w.Code, p)
	}
	if d.Connector != "crm" || d.Tenant != "acme" || len(d.SpoofedHeaders) != 1 || d.SpoofedHeaders[0] != "x-tenant_id" {
		t.Fatalf("decision %+v", d)
	}
	if strings.Contains(w.Body.String(), "globex") {
		t.Fatalf("the refusal echoes the client's header value: %s", w.Body)
	}
}

func TestConnectionHeaderOnlyTenantTokenIsDropped(t *testing.T) {
	m := provision(t, &TenantGuard{})
	r, _ := request(t, "http://h/x", acmeIdentity(), "X-Tenant-ID: acme", "Connection: X_TENANT_ID", "Connection: x-tenant-id ,")
	w, _, rec := serve(t, m, r)
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	if v, ok := rec.header["Connection"]; ok {
		t.Fatalf("Connection forwarded as %q; naming only the tenant header it must go", v)
	}
	assertForwardedTenant(t, rec, "acme")
}

func TestHandleErrorsGetsCaddyError(t *testing.T) {
	m := provision(t, &TenantGuard{})
	r, d := request(t, "http://h/x", acmeIdentity(), "X-Tenant-ID: globex")
	srv := &caddyhttp.Server{Errors: &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{{Handlers: []caddyhttp.MiddlewareHandler{caddyhttp.StaticResponse{}}}}}}
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.ServerCtxKey, srv))
	err := m.ServeHTTP(httptest.NewRecorder(), r, new(recorder))
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != 403 {
		t.Fatalf("got %v; want a caddyhttp.HandlerError with 403", err)
	}
	if d.Reason != sidecar.ReasonTenantMismatch {
		t.Fatalf("decision reason %q", d.Reason)
	}
}

// rawRequest writes raw to addr and returns the response's status line.
func rawRequest(t testing.TB, addr, raw string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// TestTrailerCopiesAreRemoved sends a chunked body whose trailers carry the
// tenant header, declared and undeclared, and reads the body the way
// reverse_proxy does: the trailer map must hold no tenant header after EOF.
func TestTrailerCopiesAreRemoved(t *testing.T) {
	m := provision(t, &TenantGuard{})
	var gotTrailer http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, _ = sidecar.WithDecision(r)
		caddyhttp.NewTestReplacer(r)
		r = sidecar.WithIdentity(r, acmeIdentity())
		err := m.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.Copy(io.Discard, r.Body)
			gotTrailer = r.Trailer.Clone()
			return nil
		}))
		if err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	raw := "POST / HTTP/1.1\r\nHost: x\r\nX-Tenant-ID: acme\r\nTransfer-Encoding: chunked\r\nTrailer: X-Tenant-ID, X-Other\r\n\r\n" +
		"4\r\nbody\r\n0\r\nX-Tenant-ID: globex\r\nX_Tenant_ID: globex\r\nX-Other: kept\r\n\r\n"
	resp := rawRequest(t, srv.Listener.Addr().String(), raw)
	if !strings.HasPrefix(resp, "HTTP/1.1 200") {
		t.Fatalf("response %q", resp)
	}
	if got := tenantHeaders(gotTrailer, DefaultHeader); len(got) != 0 {
		t.Fatalf("trailers still carry the tenant header: %v", gotTrailer)
	}
	if gotTrailer.Get("X-Other") != "kept" {
		t.Fatalf("other trailers lost: %v", gotTrailer)
	}
}
