package scopetrim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

const testHashKey = "test-hash-key-0123456789abcdef"

// newHandler provisions a handler on the CRM example policy (or another
// policy file written to a temporary directory).
func newHandler(t testing.TB, policyJSON string, configure func(*ScopeTrim)) *ScopeTrim {
	t.Helper()
	path := filepath.Join("..", "..", "policies", "crm.json")
	if policyJSON != "" {
		path = filepath.Join(t.TempDir(), "p.json")
		if err := os.WriteFile(path, []byte(policyJSON), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m := &ScopeTrim{Policies: path, HashKey: testHashKey}
	if configure != nil {
		configure(m)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := m.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return m
}

type result struct {
	repl     *caddy.Replacer
	rec      *httptest.ResponseRecorder
	decision *sidecar.Decision
	upstream *http.Request // what the upstream received; nil if not called
}

// serve runs req through the handler with an identity holding scopes and
// roles (nil identity when both are nil and noIdentity is set), and an
// upstream stand-in.
func serve(t *testing.T, m *ScopeTrim, req *http.Request, id *sidecar.Identity, upstream func(w http.ResponseWriter, r *http.Request)) result {
	t.Helper()
	var res result
	return serveKeep(t, m, req, id, &res, upstream)
}

// serveKeep is serve filling in res as it goes, for tests that recover a panic.
func serveKeep(t *testing.T, m *ScopeTrim, req *http.Request, id *sidecar.Identity, res *result, upstream func(w http.ResponseWriter, r *http.Request)) result {
	t.Helper()
	repl := caddy.NewReplacer()
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
	req, dec := sidecar.WithDecision(req)
	dec.Tenant = "acme"
	if id != nil {
		req = sidecar.WithIdentity(req, id)
	}
	res.rec = httptest.NewRecorder()
	res.decision = dec
	res.repl = repl
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		res.upstream = r
		upstream(w, r)
		return nil
	})
	if err := m.ServeHTTP(res.rec, req, next); err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
	return *res
}

// who is a caller with these scopes and roles, plus contacts:all, which
// releases every record of the CRM policy's contact endpoints and grants
// no field: the tests that use it are about fields (records_test.go is
// about records).
func who(scopes, roles []string) *sidecar.Identity {
	return &sidecar.Identity{Subject: "u1", Scopes: append(slices.Clip(scopes), "contacts:all"), Roles: roles}
}

func jsonUpstream(status int, body string, headers ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for _, h := range headers {
			k, v, _ := strings.Cut(h, ": ")
			w.Header().Add(k, v)
		}
		w.WriteHeader(status)
		// in small pieces, as a proxy copies
		for b := []byte(body); len(b) > 0; {
			n := min(7, len(b))
			if _, err := w.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
	}
}

// assertNoSecret fails if any withheld value appears in the response.
func assertNoSecret(t *testing.T, rec *httptest.ResponseRecorder, secrets ...string) {
	t.Helper()
	var all bytes.Buffer
	all.Write(rec.Body.Bytes())
	for k, vs := range rec.Header() {
		all.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	for k, vs := range rec.Result().Trailer {
		all.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	for _, s := range secrets {
		if strings.Contains(all.String(), s) {
			t.Fatalf("withheld value %q reached the client:\n%s", s, all.String())
		}
	}
}

var secrets = []string{"ada@example.com", "123-45-6789", "7946", "likes tea"}

func TestServeTrimsAndFixesHeaders(t *testing.T) {
	m := newHandler(t, "", nil)
	req := httptest.NewRequest("GET", "/v1/contacts?limit=2", nil)
	req.Header.Set("Range", "bytes=0-10")
	req.Header.Set("If-Range", `"abc"`)
	req.Header.Set("Accept-Encoding", "gzip, br")
	req.Header.Set("Connection", "Accept-Encoding")
	res := serve(t, m, req, who(nil, []string{"sales_rep"}), jsonUpstream(200, contactsDoc,
		"Etag: \"v1\"", "Accept-Ranges: bytes", "Digest: sha-256=abc", "Content-Md5: xyz", "Content-Length: 999", "X-Upstream: kept"))
	want := `{"data":[{"id":1,"name":"Ada","company":"ACME"},{"id":2,"name":"Bob","company":"Globex"}],"next_cursor":"c2"}`
	if got := res.rec.Body.String(); got != want {
		t.Fatalf("body %s", got)
	}
	h := res.rec.Header()
	checks := map[string]string{
		"Content-Length":         strconv.Itoa(len(want)),
		"Etag":                   "",
		"Accept-Ranges":          "",
		"Digest":                 "",
		"Content-Md5":            "",
		"Cache-Control":          "private, no-store",
		"X-Content-Type-Options": "nosniff",
		"Content-Type":           "application/json",
		"X-Upstream":             "", // no policy names it (issue 11)
	}
	for k, v := range checks {
		if got := h.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	up := res.upstream.Header
	if up.Get("Accept-Encoding") != "identity" || up.Get("Range") != "" || up.Get("If-Range") != "" || up.Get("Connection") != "" {
		t.Errorf("upstream request headers: %v", up)
	}
	if req.Header.Get("Range") == "" {
		t.Error("the client's request was modified in place")
	}
	d := res.decision
	if d.Policy != "crm@2026-11-01" || d.Endpoint != "/v1/contacts*" || d.FieldsRemoved != 9 || d.Denied() {
		t.Errorf("decision %+v", d)
	}
	if strings.Join(d.Withheld, " ") != "data.#.email data.#.notes data.#.phone data.#.ssn debug" {
		t.Errorf("withheld %v", d.Withheld)
	}
	if strings.Join(d.HeadersRemoved, " ") != "X-Upstream" { // the body's own headers are not named
		t.Errorf("headers removed %v", d.HeadersRemoved)
	}
	for k, want := range map[string]any{PlaceholderPolicy: "crm@2026-11-01", PlaceholderEndpoint: "/v1/contacts*", PlaceholderFieldsRemoved: 9} {
		if got, _ := res.repl.Get(k); got != want {
			t.Errorf("placeholder %s = %v, want %v", k, got, want)
		}
	}
	assertNoSecret(t, res.rec, secrets...)
}

func TestServeRefusesBeforeProxying(t *testing.T) {
	m := newHandler(t, "", nil)
	tests := []struct {
		name    string
		method  string
		path    string
		headers []string
		id      *sidecar.Identity
		status  int
		reason  string
	}{
		{"no identity", "GET", "/v1/contacts", nil, nil, 500, sidecar.ReasonIdentityMissing},
		{"no endpoint", "GET", "/v1/admin", nil, who([]string{"contacts:read"}, nil), 403, sidecar.ReasonNoPolicy},
		{"method not in policy", "DELETE", "/v1/contacts/1", nil, who([]string{"contacts:read"}, nil), 403, sidecar.ReasonNoPolicy},
		{"dot segments", "GET", "/v1/contacts/../admin", nil, who([]string{"contacts:read"}, nil), 403, sidecar.ReasonNoPolicy},
		{"scopes allow nothing", "GET", "/v1/contacts", nil, who([]string{"deals:read"}, nil), 403, sidecar.ReasonInsufficientScope},
		{"unknown role", "GET", "/v1/contacts", nil, who(nil, []string{"root"}), 403, sidecar.ReasonInsufficientScope},
		{"websocket upgrade", "GET", "/v1/contacts", []string{"Upgrade: websocket", "Connection: Upgrade"}, who([]string{"contacts:read"}, nil), 400, sidecar.ReasonUpgradeRefused},
		{"h2c upgrade", "GET", "/v1/contacts", []string{"Upgrade: h2c"}, who([]string{"contacts:read"}, nil), 400, sidecar.ReasonUpgradeRefused},
		{"connect", "CONNECT", "/v1/contacts", nil, who([]string{"contacts:read"}, nil), 400, sidecar.ReasonUpgradeRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://x"+tt.path, nil)
			for _, h := range tt.headers {
				k, v, _ := strings.Cut(h, ": ")
				req.Header.Set(k, v)
			}
			res := serve(t, m, req, tt.id, jsonUpstream(200, contactsDoc))
			if res.upstream != nil {
				t.Fatal("the upstream was called")
			}
			assertProblem(t, res, tt.status, tt.reason)
		})
	}
}

func assertProblem(t *testing.T, res result, status int, reason string) {
	t.Helper()
	if res.rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", res.rec.Code, status, res.rec.Body)
	}
	var p sidecar.Problem
	if err := json.Unmarshal(res.rec.Body.Bytes(), &p); err != nil || p.Reason != reason {
		t.Fatalf("body %s, want reason %s", res.rec.Body, reason)
	}
	if res.rec.Header().Get("Content-Type") != sidecar.ContentTypeProblem {
		t.Fatalf("content type %q", res.rec.Header().Get("Content-Type"))
	}
	if res.decision.Reason != reason || res.decision.Status != status {
		t.Fatalf("decision %+v", res.decision)
	}
	assertNoSecret(t, res.rec, secrets...)
	for _, k := range []string{"X-Upstream", "Etag"} {
		if res.rec.Header().Get(k) != "" {
			t.Fatalf("upstream header %s reached the client on a refusal", k)
		}
	}
}

func gzipped(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	io.WriteString(w, s)
	w.Close()
	return b.String()
}

func zstded(s string) string {
	enc, _ := zstd.NewWriter(nil)
	return string(enc.EncodeAll([]byte(s), nil))
}

func TestServeRefusesUpstreamAnswers(t *testing.T) {
	m := newHandler(t, "", func(m *ScopeTrim) { m.MaxBody = 4096 })
	big := `{"data":[` + strings.Repeat(`{"email":"ada@example.com"},`, 200) + `{}]}`
	bomb := `{"x":"` + strings.Repeat("A", 1<<20) + `"}`
	tests := []struct {
		name     string
		upstream func(http.ResponseWriter, *http.Request)
		reason   string
	}{
		{"not JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, contactsDoc)
		}, sidecar.ReasonUpstreamNotJSON},
		{"no content type", func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			io.WriteString(w, contactsDoc)
		}, sidecar.ReasonUpstreamNotJSON},
		{"text/plain JSON", jsonUpstreamCT("text/plain", contactsDoc), sidecar.ReasonUpstreamNotJSON},
		{"two content types", jsonUpstream(200, contactsDoc, "Content-Type: text/html"), sidecar.ReasonUpstreamNotJSON},
		{"encoding in two headers", jsonUpstream(200, gzipped(contactsDoc), "Content-Encoding: identity", "Content-Encoding: gzip"), sidecar.ReasonUpstreamEncoding},
		{"event stream", jsonUpstreamCT("text/event-stream", "data: "+contactsDoc+"\n\n"), sidecar.ReasonUpstreamStream},
		{"partial content", jsonUpstream(206, contactsDoc, "Content-Range: bytes 0-10/100"), sidecar.ReasonUpstreamPartial},
		{"content range on 200", jsonUpstream(200, contactsDoc, "Content-Range: bytes 0-10/100"), sidecar.ReasonUpstreamPartial},
		{"duplicate key", jsonUpstream(200, `{"data":[{"id":1,"email":"x","email":"ada@example.com"}]}`), sidecar.ReasonUpstreamDuplicate},
		{"too large", jsonUpstream(200, big), sidecar.ReasonUpstreamTooLarge},
		{"declared length over max_body", jsonUpstream(200, contactsDoc, "Content-Length: 99999999"), sidecar.ReasonUpstreamTooLarge},
		{"brotli", jsonUpstream(200, contactsDoc, "Content-Encoding: br"), sidecar.ReasonUpstreamEncoding},
		{"stacked encodings", jsonUpstream(200, gzipped(gzipped(contactsDoc)), "Content-Encoding: gzip, gzip"), sidecar.ReasonUpstreamEncoding},
		{"corrupt gzip", jsonUpstream(200, "\x1f\x8bnot gzip at all", "Content-Encoding: gzip"), sidecar.ReasonUpstreamEncoding},
		{"gzip bomb", jsonUpstream(200, gzipped(bomb), "Content-Encoding: gzip"), sidecar.ReasonUpstreamTooLarge},
		{"zstd bomb", jsonUpstream(200, zstded(bomb), "Content-Encoding: zstd"), sidecar.ReasonUpstreamTooLarge},
		{"JSONP", jsonUpstream(200, `cb(`+contactsDoc+`)`), sidecar.ReasonUpstreamInvalidJSON},
		{"XSSI", jsonUpstream(200, ")]}',\n"+contactsDoc), sidecar.ReasonUpstreamInvalidJSON},
		{"trailing data", jsonUpstream(200, contactsDoc+`{"ssn":"123-45-6789"}`), sidecar.ReasonUpstreamInvalidJSON},
		{"invalid UTF-8", jsonUpstream(200, "{\"data\":[{\"name\":\"\xc3\x28\",\"email\":\"ada@example.com\"}]}"), sidecar.ReasonUpstreamInvalidUTF8},
		{"too deep", jsonUpstream(200, `{"data":`+strings.Repeat("[", 70)+strings.Repeat("]", 70)+`}`), sidecar.ReasonUpstreamTooDeep},
		{"empty 200", jsonUpstream(200, ""), sidecar.ReasonUpstreamInvalidJSON},
		{"nothing written", func(w http.ResponseWriter, r *http.Request) {}, sidecar.ReasonUpstreamNotJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/v1/contacts", nil)
			res := serve(t, m, req, who([]string{"contacts:read"}, nil), tt.upstream)
			assertProblem(t, res, 502, tt.reason)
		})
	}
}

func jsonUpstreamCT(ct, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ct)
		w.Header().Set("X-Upstream", "1")
		io.WriteString(w, body)
	}
}

func TestServeDecodesCompressedAnswers(t *testing.T) {
	m := newHandler(t, "", nil)
	want := `{"data":[{"id":1,"name":"Ada","company":"ACME"},{"id":2,"name":"Bob","company":"Globex"}],"next_cursor":"c2"}`
	for _, enc := range []struct{ name, body string }{{"gzip", gzipped(contactsDoc)}, {"zstd", zstded(contactsDoc)}} {
		t.Run(enc.name, func(t *testing.T) {
			res := serve(t, m, httptest.NewRequest("GET", "/v1/contacts", nil), who([]string{"contacts:read"}, nil),
				jsonUpstream(200, enc.body, "Content-Encoding: "+enc.name))
			if res.rec.Body.String() != want || res.rec.Header().Get("Content-Encoding") != "" {
				t.Fatalf("got %q with headers %v", res.rec.Body, res.rec.Header())
			}
		})
	}
}

func TestServeHEADGetsTheHeadersOfGET(t *testing.T) {
	m := newHandler(t, "", nil)
	id := who([]string{"contacts:read"}, nil)
	get := serve(t, m, httptest.NewRequest("GET", "/v1/contacts", nil), id, jsonUpstream(200, contactsDoc, "Content-Length: 4242"))
	head := serve(t, m, httptest.NewRequest("HEAD", "/v1/contacts", nil), id, jsonUpstream(200, contactsDoc, "Content-Length: 4242"))
	if head.upstream.Method != "GET" {
		t.Fatalf("HEAD went upstream as %s", head.upstream.Method)
	}
	if head.rec.Body.Len() != 0 {
		t.Fatalf("HEAD got a body: %s", head.rec.Body)
	}
	for _, k := range []string{"Content-Length", "Content-Type", "Cache-Control"} {
		if head.rec.Header().Get(k) != get.rec.Header().Get(k) {
			t.Errorf("%s: HEAD %q, GET %q", k, head.rec.Header().Get(k), get.rec.Header().Get(k))
		}
	}
	if get.rec.Header().Get("Content-Length") == "4242" {
		t.Fatal("the upstream's length leaked")
	}
}

func TestServeStatusesWithoutTrimmableBody(t *testing.T) {
	m := newHandler(t, "", nil)
	id := who([]string{"contacts:read"}, nil)
	res := serve(t, m, httptest.NewRequest("GET", "/v1/contacts", nil), id, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Etag", `"v1"`)
		w.WriteHeader(304)
	})
	if res.rec.Code != 304 || res.rec.Body.Len() != 0 || res.rec.Header().Get("Etag") != "" {
		t.Fatalf("304: %d %q %v", res.rec.Code, res.rec.Body, res.rec.Header())
	}
	// error bodies: trimmed by error_fields on contacts, generic on deals
	errBody := `{"error":{"code":"not_found","message":"no such contact","email":"ada@example.com"},"trace":"123-45-6789"}`
	res = serve(t, m, httptest.NewRequest("GET", "/v1/contacts/9", nil), id, jsonUpstream(404, errBody))
	if res.rec.Code != 404 || res.rec.Body.String() != `{"error":{"code":"not_found","message":"no such contact"}}` {
		t.Fatalf("error_fields: %d %s", res.rec.Code, res.rec.Body)
	}
	res = serve(t, m, httptest.NewRequest("GET", "/v1/deals/9", nil), who([]string{"deals:read"}, nil), jsonUpstream(500, errBody))
	var p sidecar.Problem
	if res.rec.Code != 500 || json.Unmarshal(res.rec.Body.Bytes(), &p) != nil || p.Reason != sidecar.ReasonUpstreamError {
		t.Fatalf("generic: %d %s", res.rec.Code, res.rec.Body)
	}
	assertNoSecret(t, res.rec, secrets...)
	res = serve(t, m, httptest.NewRequest("GET", "/v1/contacts/9", nil), id, jsonUpstreamCT("text/html", "<p>ada@example.com</p>"))
	if res.rec.Code != 502 {
		t.Fatalf("non-JSON 200: %d", res.rec.Code)
	}
	res = serve(t, m, httptest.NewRequest("GET", "/v1/contacts/9", nil), id, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(503)
		io.WriteString(w, "<p>ada@example.com</p>")
	})
	if res.rec.Code != 503 {
		t.Fatalf("non-JSON 503: %d", res.rec.Code)
	}
	assertNoSecret(t, res.rec, secrets...)
}

func TestServeDropsTrailers(t *testing.T) {
	m := newHandler(t, "", nil)
	res := serve(t, m, httptest.NewRequest("GET", "/v1/contacts", nil), who([]string{"contacts:read"}, nil), func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Trailer", "X-Email")
		w.WriteHeader(200)
		io.WriteString(w, contactsDoc)
		w.Header().Set("X-Email", "ada@example.com") // as reverse_proxy copies trailers
		w.Header().Set(http.TrailerPrefix+"X-Ssn", "123-45-6789")
	})
	if res.rec.Code != 200 || res.rec.Header().Get("Trailer") != "" {
		t.Fatalf("%d %v", res.rec.Code, res.rec.Header())
	}
	assertNoSecret(t, res.rec, secrets...)
}

func TestServeHashIsKeyedPerTenant(t *testing.T) {
	m := newHandler(t, "", nil)
	id := who([]string{"contacts:analytics"}, nil)
	a := serve(t, m, httptest.NewRequest("GET", "/v1/contacts", nil), id, jsonUpstream(200, contactsDoc))
	repl := caddy.NewReplacer()
	req := httptest.NewRequest("GET", "/v1/contacts", nil)
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
	req, dec := sidecar.WithDecision(req)
	dec.Tenant = "globex"
	req = sidecar.WithIdentity(req, id)
	rec := httptest.NewRecorder()
	err := m.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		jsonUpstream(200, contactsDoc)(w, r)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if a.rec.Body.String() == rec.Body.String() || !strings.Contains(a.rec.Body.String(), `"email":"`) {
		t.Fatalf("acme %s\nglobex %s", a.rec.Body, rec.Body)
	}
	assertNoSecret(t, a.rec, "ada@example.com", "likes tea")
	if !strings.Contains(a.rec.Body.String(), `"phone":"****0958"`) {
		t.Fatalf("mask: %s", a.rec.Body)
	}
}

func provisionErr(m *ScopeTrim) error {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := m.Provision(ctx); err != nil {
		return err
	}
	return m.Validate()
}

// hijackRecorder is a recorder whose connection can be taken over, as a real
// HTTP/1.1 connection's can.
type hijackRecorder struct {
	*httptest.ResponseRecorder
	hijacked bool
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h.hijacked = true
	return nil, nil, errors.New("test connection")
}

// An upstream that switches protocols must not get the client's connection.
func TestServeRefusesHijack(t *testing.T) {
	m := newHandler(t, "", nil)
	rec := &hijackRecorder{ResponseRecorder: httptest.NewRecorder()}
	req := httptest.NewRequest("GET", "/v1/contacts", nil)
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	req = sidecar.WithIdentity(req, who([]string{"contacts:read"}, nil))
	var hijackErr error
	err := m.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusSwitchingProtocols)
		_, _, hijackErr = http.NewResponseController(w).Hijack()
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if rec.hijacked || hijackErr == nil {
		t.Fatal("the upstream's handler took over the client's connection")
	}
	if rec.Code != 502 {
		t.Fatalf("status %d", rec.Code)
	}
}

// TestDropHeadersAreCanonical: sendHeaders deletes them from the header map
// directly, which finds only canonical names.
func TestDropHeadersAreCanonical(t *testing.T) {
	for _, k := range dropHeaders {
		if c := http.CanonicalHeaderKey(k); c != k {
			t.Errorf("dropHeaders has %q, whose canonical form is %q", k, c)
		}
	}
}
