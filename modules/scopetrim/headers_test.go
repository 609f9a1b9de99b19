package scopetrim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// headersPolicy allows a rate-limit header for the whole file, Link and
// Set-Cookie on contacts (whose redirects rule names its own paths and two
// query parameters), nothing more on deals, and a request allowlist on
// notes.
const headersPolicy = `{
	"connector": "crm", "version": "h1",
	"response_headers": ["x-ratelimit-remaining"],
	"endpoints": [
		{"match": {"methods": ["GET"], "path": "/v1/contacts*"},
		 "fields": {"contacts:read": ["data.#.id", "next_cursor"]},
		 "response_headers": ["Link", "set-cookie"],
		 "redirects": {"paths": ["/v1/contacts", "/v1/contacts/*"], "query": ["cursor", "limit"]}},
		{"match": {"methods": ["GET"], "path": "/v1/deals*"},
		 "fields": {"deals:read": ["data.#.id"]},
		 "error_fields": ["error.code"]},
		{"match": {"methods": ["POST"], "path": "/v1/notes"},
		 "fields": {"notes:write": ["id"]},
		 "request_headers": ["If-Match"]}
	]
}`

const headersDoc = `{"data":[{"id":"c1","email":"ada@example.com"}],"next_cursor":"c2"}`

// hostile answers 200 JSON (or status) with headers that carry personal data.
func hostile(status int, contentType string, extra ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		h.Set("X-User-Email", "ada@example.com")
		h.Add("Set-Cookie", "uid=123-45-6789")
		h.Set("Link", `<https://crm.example/v1/contacts?email=ada@example.com>; rel="next"`)
		h.Set("Content-Disposition", `attachment; filename="likes tea.json"`)
		h.Set("X-Debug", "123-45-6789")
		h.Set("Server", "crm/1.2 (ada@example.com)")
		for _, e := range extra {
			k, v, _ := strings.Cut(e, ": ")
			h.Add(k, v)
		}
		w.WriteHeader(status)
		io.WriteString(w, headersDoc)
	}
}

// assertRemoved fails unless the record names exactly these headers.
func assertRemoved(t *testing.T, d *sidecar.Decision, want ...string) {
	t.Helper()
	got := slices.Sorted(slices.Values(d.HeadersRemoved))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("headers_removed %q, want %q", got, want)
	}
}

// TestResponseHeadersAllowlist: on the deals endpoint, which names no header,
// every hostile header is dropped and named, in every kind of answer.
func TestResponseHeadersAllowlist(t *testing.T) {
	m := newHandler(t, headersPolicy, nil)
	deals := who([]string{"deals:read"}, nil)
	all := []string{"X-User-Email", "Set-Cookie", "Link", "Content-Disposition", "X-Debug", "Server"}
	ndjson := func(w http.ResponseWriter, r *http.Request) {
		hostile(200, "application/x-ndjson")(w, r)
		io.WriteString(w, "\n"+headersDoc+"\n")
	}
	tests := []struct {
		name     string
		method   string
		upstream func(http.ResponseWriter, *http.Request)
		status   int
		also     string // a further header named
	}{
		{"trimmed 200", "GET", hostile(200, "application/json"), 200, ""},
		{"HEAD", "HEAD", hostile(200, "application/json"), 200, ""},
		{"error body trimmed by error_fields", "GET", hostile(404, "application/json"), 404, ""},
		{"error body replaced", "GET", hostile(500, "text/html"), 500, ""},
		{"refused: not JSON", "GET", hostile(200, "text/html"), 502, ""},
		{"304", "GET", hostile(304, ""), 304, ""},
		{"NDJSON", "GET", ndjson, 200, ""},
		{"redirect refused", "GET", hostile(302, "", "Location: /v1/deals/2"), 502, "Location"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counterValue(t, headersRemovedTotal.WithLabelValues("crm@h1"))
			res := serve(t, m, httptest.NewRequest(tt.method, "/v1/deals", nil), deals, tt.upstream)
			if res.rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", res.rec.Code, tt.status, res.rec.Body)
			}
			for _, k := range all {
				if v := res.rec.Header().Values(k); len(v) > 0 {
					t.Errorf("%s reached the client: %q", k, v)
				}
			}
			assertNoSecret(t, res.rec, "ada@example.com", "123-45-6789", "likes tea")
			want := all
			if tt.also != "" {
				want = append(slices.Clone(all), tt.also)
			}
			assertRemoved(t, res.decision, want...)
			if got := counterValue(t, headersRemovedTotal.WithLabelValues("crm@h1")) - before; got != float64(len(want)) {
				t.Fatalf("metric grew by %v, want %d", got, len(want))
			}
			if !strings.Contains(res.rec.Header().Get("Cache-Control"), "no-store") {
				t.Fatalf("Cache-Control %q", res.rec.Header().Get("Cache-Control"))
			}
		})
	}
}

// TestResponseHeadersPolicyLists: the policy-level and endpoint-level lists
// (case-insensitive), Set-Cookie only where named, Link only with URLs the
// redirects rule allows and only its rel.
func TestResponseHeadersPolicyLists(t *testing.T) {
	m := newHandler(t, headersPolicy, nil)
	contacts := who([]string{"contacts:read"}, nil)
	goodLink := `</v1/contacts?cursor=c2&limit=10>; rel="next"; title="Ada Lovelace", </v1/contacts>; rel=first`
	res := serve(t, m, httptest.NewRequest("GET", "/v1/contacts", nil), contacts, jsonUpstream(200, headersDoc,
		"X-RateLimit-Remaining: 41", "Set-Cookie: session=opaque", "Link: "+goodLink, "X-Other: 1"))
	h := res.rec.Header()
	if h.Get("X-Ratelimit-Remaining") != "41" || h.Get("Set-Cookie") != "session=opaque" {
		t.Fatalf("allowed headers lost: %v", h)
	}
	if got := h.Get("Link"); got != `</v1/contacts?cursor=c2&limit=10>; rel="next", </v1/contacts>; rel="first"` {
		t.Fatalf("Link %q: rebuilt with rel only", got)
	}
	assertRemoved(t, res.decision, "X-Other")

	for name, link := range map[string]string{
		"another host":         `<https://evil.example/v1/contacts?cursor=1>; rel="next"`,
		"scheme-relative":      `<//evil.example/v1/contacts>; rel="next"`,
		"query not named":      `</v1/contacts?email=ada%40example.com>; rel="next"`,
		"path not named":       `</v1/deals?cursor=1>; rel="next"`,
		"dot segment":          `</v1/contacts/../admin>; rel="next"`,
		"encoded dot segment":  `</v1/contacts/%2e%2e/admin>; rel="next"`,
		"one of two links bad": `</v1/contacts?cursor=1>; rel="next", <https://evil.example/>; rel="prev"`,
		"extension rel":        `</v1/contacts?cursor=1>; rel="https://evil.example/ada"`,
		"no rel":               `</v1/contacts?cursor=1>`,
		"not a link":           `ada@example.com`,
	} {
		t.Run(name, func(t *testing.T) {
			res := serve(t, m, httptest.NewRequest("GET", "/v1/contacts", nil), contacts, jsonUpstream(200, headersDoc, "Link: "+link))
			if got := res.rec.Header().Get("Link"); got != "" {
				t.Fatalf("Link %q reached the client", got)
			}
			assertRemoved(t, res.decision, "Link")
		})
	}

	// deals names neither Set-Cookie nor Link; the rate limit is policy-wide
	res = serve(t, m, httptest.NewRequest("GET", "/v1/deals", nil), who([]string{"deals:read"}, nil), jsonUpstream(200, headersDoc,
		"X-RateLimit-Remaining: 40", "Set-Cookie: session=opaque", "Link: "+goodLink))
	if h := res.rec.Header(); h.Get("X-Ratelimit-Remaining") != "40" || h.Get("Set-Cookie") != "" || h.Get("Link") != "" {
		t.Fatalf("deals headers %v", h)
	}
	assertRemoved(t, res.decision, "Set-Cookie", "Link")
}

// TestResponseSafeSetChecks: the safe set passes values that carry no data
// and drops (or trims) the others.
func TestResponseSafeSetChecks(t *testing.T) {
	m := newHandler(t, headersPolicy, nil)
	deals := who([]string{"deals:read"}, nil)
	tests := []struct {
		header, value, want string
		removed             bool
	}{
		{"Content-Type", `application/json; charset=UTF-8; note="ada@example.com"`, "application/json; charset=utf-8", false},
		{"Content-Type", "application/json; charset=UTF-8; note=ada@example.com", "application/json", false},
		{"Content-Type", "application/vnd.crm+json; profile=\"ada@example.com\"", "application/vnd.crm+json", false},
		{"Date", "Wed, 02 Dec 2026 10:00:00 GMT", "Wed, 02 Dec 2026 10:00:00 GMT", false},
		{"Date", "ada@example.com", "", true},
		{"Retry-After", "120", "120", false},
		{"Retry-After", "Wed, 02 Dec 2026 10:00:00 GMT", "Wed, 02 Dec 2026 10:00:00 GMT", false},
		{"Retry-After", "120; ada@example.com", "", true},
		{"Vary", "Accept-Encoding, Origin", "Accept-Encoding, Origin", false},
		{"Vary", "Accept, X-Client-Hint, Ada-Lovelace-123-45-6789", "Accept, X-Client-Hint", false}, // X-Client-Hint: the client sent it
		{"Vary", "Ada-Lovelace", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.header+" "+tt.value, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/v1/deals", nil)
			req.Header.Set("X-Client-Hint", "1")
			res := serve(t, m, req, deals, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set(tt.header, tt.value)
				io.WriteString(w, headersDoc)
			})
			if res.rec.Code != 200 {
				t.Fatalf("status %d: %s", res.rec.Code, res.rec.Body)
			}
			if got := res.rec.Header().Get(tt.header); got != tt.want {
				t.Fatalf("%s = %q, want %q", tt.header, got, tt.want)
			}
			if removed := slices.Contains(res.decision.HeadersRemoved, tt.header); removed != tt.removed {
				t.Fatalf("headers_removed %q", res.decision.HeadersRemoved)
			}
		})
	}
}

// TestResponseKeepsHeadersSetBeforeScopeTrim: what Caddy or an earlier
// handler set is the sidecar's own and passes; what the chain deleted stays
// deleted; an upstream value added to it is dropped.
func TestResponseKeepsHeadersSetBeforeScopeTrim(t *testing.T) {
	m := newHandler(t, headersPolicy, nil)
	req := httptest.NewRequest("GET", "/v1/deals", nil)
	var res result
	res.rec = httptest.NewRecorder()
	res.rec.Header().Set("Strict-Transport-Security", "max-age=63072000")
	res.rec.Header().Set("X-Frame-Options", "DENY")
	res.rec.Header().Set("Server", "Caddy")
	rec := res.rec
	res = serveWith(t, m, req, who([]string{"deals:read"}, nil), rec, func(w http.ResponseWriter, r *http.Request) {
		delete(w.Header(), "Server") // as reverse_proxy does
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("X-Frame-Options", "ALLOW-FROM https://evil.example")
		w.Header().Add("Via", "1.1 Caddy")
		io.WriteString(w, headersDoc)
	})
	h := res.rec.Header()
	if h.Get("Strict-Transport-Security") != "max-age=63072000" || !slices.Equal(h.Values("X-Frame-Options"), []string{"DENY"}) {
		t.Fatalf("headers set before scope_trim: %v", h)
	}
	if h.Get("Server") != "" || h.Get("Via") != "" {
		t.Fatalf("Server %q, Via %q", h.Get("Server"), h.Get("Via"))
	}
	assertRemoved(t, res.decision, "X-Frame-Options")
}

// TestRedirects: a 3xx passes only with a Location on this route that the
// endpoint's redirects allow; every other one is refused with 502
// upstream_redirect_refused, its Location and body never sent.
func TestRedirects(t *testing.T) {
	m := newHandler(t, headersPolicy, nil)
	contacts := who([]string{"contacts:read"}, nil)
	redirect := func(status int, location string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			if location != "" {
				w.Header().Set("Location", location)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, headersDoc)
		}
	}
	for _, tt := range []struct {
		name, path, location string
		status               int
	}{
		{"another host", "/v1/contacts", "https://evil.example/collect?email=ada@example.com", 302},
		{"scheme-relative", "/v1/contacts", "//evil.example/v1/contacts", 302},
		{"backslash", "/v1/contacts", `/\evil.example/v1/contacts`, 301},
		{"relative path", "/v1/contacts", "v1/contacts", 302},
		{"query not named", "/v1/contacts", "/v1/contacts?email=ada%40example.com", 303},
		{"query named and not", "/v1/contacts", "/v1/contacts?cursor=2&ssn=123-45-6789", 307},
		{"path not named", "/v1/contacts", "/admin", 302},
		{"dot segments", "/v1/contacts", "/v1/contacts/../../admin", 302},
		{"fragment", "/v1/contacts", "/v1/contacts#ada@example.com", 302},
		{"no Location", "/v1/contacts", "", 300},
		{"endpoint without redirects", "/v1/deals", "/v1/deals?cursor=2", 302},
	} {
		t.Run(tt.name, func(t *testing.T) {
			who := contacts
			if strings.HasPrefix(tt.path, "/v1/deals") {
				who = wholeDeals
			}
			res := serve(t, m, httptest.NewRequest("GET", tt.path, nil), who, redirect(tt.status, tt.location))
			assertProblem(t, res, 502, sidecar.ReasonUpstreamRedirectRefused)
			if res.rec.Header().Get("Location") != "" {
				t.Fatal("the refused Location reached the client")
			}
		})
	}
	for _, loc := range []string{"/v1/contacts/c2", "/v1/contacts?cursor=c2&limit=5", "/v1/contacts?"} {
		res := serve(t, m, httptest.NewRequest("GET", "/v1/contacts", nil), contacts, redirect(302, loc))
		if res.rec.Code != 302 || res.rec.Header().Get("Location") != loc || res.rec.Body.Len() != 0 || res.decision.Denied() {
			t.Fatalf("allowed redirect to %s: %d %v %q", loc, res.rec.Code, res.rec.Header(), res.rec.Body)
		}
	}
}

var wholeDeals = who([]string{"deals:read"}, nil)

// TestLocationOutsideRedirects: on a 201 the Location is not a redirect; it
// passes only where response_headers names it and the rule allows it.
func TestLocationOutsideRedirects(t *testing.T) {
	policy := strings.Replace(headersPolicy, `"response_headers": ["Link", "set-cookie"]`, `"response_headers": ["Location"]`, 1)
	m := newHandler(t, policy, nil)
	contacts := who([]string{"contacts:read"}, nil)
	for loc, pass := range map[string]bool{"/v1/contacts/c3": true, "https://evil.example/c3": false, "/v1/contacts/c3?email=x": false} {
		res := serve(t, m, httptest.NewRequest("GET", "/v1/contacts", nil), contacts, jsonUpstream(201, headersDoc, "Location: "+loc))
		if got := res.rec.Header().Get("Location"); (got == loc) != pass || res.rec.Code != 201 {
			t.Errorf("Location %s: got %q (%d)", loc, got, res.rec.Code)
		}
	}
	res := serve(t, m, httptest.NewRequest("GET", "/v1/deals", nil), wholeDeals, jsonUpstream(201, headersDoc, "Location: /v1/deals/2"))
	if res.rec.Header().Get("Location") != "" {
		t.Fatal("Location passed where no policy names it")
	}
}

// TestOverrideHeadersNeverReachTheUpstream: every spelling of the method and
// URL override family is removed and recorded as spoofed, also from
// trailers, and for a refused request too.
func TestOverrideHeadersNeverReachTheUpstream(t *testing.T) {
	m := newHandler(t, headersPolicy, nil)
	var names []string
	for _, base := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-Original-URL", "X-Rewrite-URL"} {
		names = append(names, base, strings.ToLower(base), strings.ReplaceAll(base, "-", "_"), strings.ReplaceAll(strings.ToLower(base), "-", "."))
	}
	req := httptest.NewRequest("GET", "/v1/deals", nil)
	for _, n := range names {
		req.Header[n] = []string{"DELETE"}
	}
	res := serve(t, m, req, wholeDeals, jsonUpstream(200, headersDoc))
	if res.rec.Code != 200 {
		t.Fatalf("status %d", res.rec.Code)
	}
	for k := range res.upstream.Header {
		if overrideHeaders.Matches(k) {
			t.Errorf("%s reached the upstream", k)
		}
	}
	if d := res.decision; len(d.SpoofedHeaders) != sidecar.MaxRecordedNames || d.SpoofedHeadersOmitted != len(names)-sidecar.MaxRecordedNames {
		t.Fatalf("recorded %q and %d more; want the first %d of %d names", d.SpoofedHeaders, d.SpoofedHeadersOmitted, sidecar.MaxRecordedNames, len(names))
	}

	refused := httptest.NewRequest("GET", "/v1/nowhere", nil)
	refused.Header.Set("X-HTTP-Method-Override", "DELETE")
	res = serve(t, m, refused, wholeDeals, jsonUpstream(200, headersDoc))
	if res.rec.Code != 403 || !slices.Equal(res.decision.SpoofedHeaders, []string{"X-Http-Method-Override"}) {
		t.Fatalf("refused request: %d, recorded %q", res.rec.Code, res.decision.SpoofedHeaders)
	}
}

// TestRequestHeadersAllowlist: under an allowlist (policy or directive) only
// the listed names, the default set and the verified headers reach the
// upstream.
func TestRequestHeadersAllowlist(t *testing.T) {
	send := func(m *ScopeTrim, path, method string) http.Header {
		req := httptest.NewRequest(method, path, strings.NewReader(`{}`))
		for k, v := range map[string]string{
			"Accept": "application/json", "Content-Type": "application/json", "Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			"If-Match": `"v1"`, "Cookie": "uid=1", "User-Agent": "curl", "X-Auth-Subject": "user-1", "X-Tenant-Id": "acme",
		} {
			req.Header.Set(k, v)
		}
		var res result
		res.rec = httptest.NewRecorder()
		req = withVerified(req, "X-Auth-Subject", "X-Tenant-Id")
		res = serveWith(t, m, req, who([]string{"notes:write", "deals:read"}, nil), res.rec, jsonUpstream(200, `{"id":1}`))
		return res.upstream.Header
	}
	keys := func(h http.Header) string {
		return strings.Join(slices.Sorted(func(yield func(string) bool) {
			for k := range h {
				if !yield(k) {
					return
				}
			}
		}), ",")
	}
	m := newHandler(t, headersPolicy, nil)
	if got := keys(send(m, "/v1/notes", "POST")); got != "Accept,Accept-Encoding,Content-Type,If-Match,Traceparent,X-Auth-Subject,X-Tenant-Id" {
		t.Fatalf("policy allowlist forwarded %s", got)
	}
	if got := keys(send(m, "/v1/deals", "GET")); !strings.Contains(got, "Cookie") || !strings.Contains(got, "User-Agent") {
		t.Fatalf("without an allowlist, %s", got)
	}
	m = newHandler(t, headersPolicy, func(m *ScopeTrim) { m.RequestHeaders = []string{} })
	if got := keys(send(m, "/v1/deals", "GET")); got != "Accept,Accept-Encoding,Content-Type,Traceparent,X-Auth-Subject,X-Tenant-Id" {
		t.Fatalf("directive allowlist forwarded %s", got)
	}
}

// serveWith is serve with the client's recorder given (holding headers set
// before scope_trim) and the request's decision record kept.
func serveWith(t *testing.T, m *ScopeTrim, req *http.Request, id *sidecar.Identity, rec *httptest.ResponseRecorder, upstream func(w http.ResponseWriter, r *http.Request)) result {
	t.Helper()
	repl := caddy.NewReplacer()
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
	req, dec := sidecar.WithDecision(req)
	if id != nil {
		req = sidecar.WithIdentity(req, id)
	}
	res := result{rec: rec, decision: dec, repl: repl}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		res.upstream = r
		upstream(w, r)
		return nil
	})
	if err := m.ServeHTTP(rec, req, next); err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
	return res
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// withVerified notes the names as set by earlier sidecar modules.
func withVerified(r *http.Request, names ...string) *http.Request {
	r, d := sidecar.WithDecision(r)
	for _, n := range names {
		d.AddVerifiedHeader(n)
	}
	return r
}

func TestHeaderPolicyRefusals(t *testing.T) {
	ep := func(extra string) string {
		return `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},"fields":{"s":["a"]}` + extra + `}]}`
	}
	for name, tt := range map[string]struct{ policy, want string }{
		"response header set by the sidecar": {ep(`,"response_headers":["Content-Length"]`), "set or removed by scope_trim itself"},
		"ETag":                               {ep(`,"response_headers":["etag"]`), "Etag is set or removed"},
		"pattern":                            {ep(`,"response_headers":["X-*"]`), "X-*"},
		"Link without redirects":             {ep(`,"response_headers":["Link"]`), "add \"redirects\""},
		"policy-level Location":              {`{"connector":"c","version":"1","response_headers":["Location"],"endpoints":[{"match":{"methods":["GET"],"path":"/x"},"fields":{"s":["a"]}}]}`, "Location, whose URLs"},
		"override in request_headers":        {ep(`,"request_headers":["x_http_method_override"]`), "is never forwarded"},
		"hop-by-hop in request_headers":      {ep(`,"request_headers":["Connection"]`), "hop-by-hop"},
		"redirects without paths":            {ep(`,"redirects":{"paths":[]}`), "paths is empty"},
		"redirect path to another host":      {ep(`,"redirects":{"paths":["//evil/x"]}`), "single /"},
		"redirect query name":                {ep(`,"redirects":{"paths":["/x"],"query":["a=b"]}`), "not a parameter name"},
		"unknown redirects key":              {ep(`,"redirects":{"paths":["/x"],"hosts":["a"]}`), "hosts"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := compilePolicy("p.json", []byte(tt.policy), DefaultMaxDepth)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// FuzzURLRule: a URL the rule allows, resolved by a client against the
// sidecar's address, stays on the sidecar's host, on a path the rule names,
// with only the named query parameters.
func FuzzURLRule(f *testing.F) {
	for _, seed := range []string{"/v1/contacts?cursor=2", "//evil/x", "/v1/contacts/%2e%2e/x", `/\evil`, "/v1/contacts?cursor=1&cursor=2", "/v1/contacts/%2F..%2Fadmin", "/v1/contacts;x=1", "/v1/contacts?a;b"} {
		f.Add(seed)
	}
	rule, err := compileURLRule(&redirectsFile{Paths: []string{"/v1/contacts", "/v1/contacts/*"}, Query: []string{"cursor"}})
	if err != nil {
		f.Fatal(err)
	}
	base, _ := url.Parse("https://sidecar.example/v1/contacts/c1")
	f.Fuzz(func(t *testing.T, raw string) {
		if !rule.allows(raw) {
			return
		}
		ref, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("allowed %q, which does not parse: %v", raw, err)
		}
		u := base.ResolveReference(ref)
		if u.Host != "sidecar.example" || u.Scheme != "https" || u.Fragment != "" {
			t.Fatalf("allowed %q, which resolves to %s", raw, u)
		}
		if !rule.matchesPath(u.Path) || hasDotSegment(u.Path) {
			t.Fatalf("allowed %q, whose path resolves to %q", raw, u.Path)
		}
		for k := range u.Query() {
			if k != "cursor" {
				t.Fatalf("allowed %q with parameter %q", raw, k)
			}
		}
	})
}

// FuzzCheckLink: whatever the upstream's Link, what passes reparses to links
// whose targets the rule allows, with a registered rel and nothing else.
func FuzzCheckLink(f *testing.F) {
	for _, seed := range []string{
		`</v1/contacts?cursor=2>; rel="next"`,
		`</v1/contacts>; rel=first, </v1/contacts?cursor=9>; rel="last"; title="a,b"`,
		`<https://evil/>; rel=next`, `</v1/contacts>; rel="next"; rel="prev"`, `</v1/contacts>;rel="next prev"`,
		`</v1/contacts>; title*=UTF-8''ada%40example.com; rel=next`, `</v1/contacts>; rel="ne\"xt"`,
	} {
		f.Add(seed)
	}
	rule, _ := compileURLRule(&redirectsFile{Paths: []string{"/v1/contacts", "/v1/contacts/*"}, Query: []string{"cursor"}})
	f.Fuzz(func(t *testing.T, v string) {
		out, ok := checkLink([]string{v}, rule)
		if !ok {
			if out != nil {
				t.Fatalf("refused %q but returned %q", v, out)
			}
			return
		}
		links, ok := parseLinks(out[0])
		if !ok || len(out) != 1 {
			t.Fatalf("%q passed as %q, which does not reparse", v, out)
		}
		for _, l := range links {
			if !rule.allows(l.target) || !validRel(l.rel) {
				t.Fatalf("%q passed as %q with link %+v", v, out, l)
			}
		}
		if strings.Contains(out[0], "title") || strings.Count(out[0], ";") != len(links) {
			t.Fatalf("%q passed as %q with more than rel", v, out)
		}
	})
}

// TestSchemaHeaderNamesAgreeWithCompiler: the names the policy schema refuses
// in response_headers and request_headers are the ones the compiler refuses.
func TestSchemaHeaderNamesAgreeWithCompiler(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "policies", "policy.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Defs map[string]struct {
			Items struct {
				Not struct {
					Pattern string `json:"pattern"`
				} `json:"not"`
			} `json:"items"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	check := func(def string, names []string, compile func(string) (string, error)) {
		re := regexp.MustCompile(schema.Defs[def].Items.Not.Pattern)
		for _, n := range names {
			_, err := compile(n)
			if re.MatchString(n) != (err != nil) {
				t.Errorf("%s %q: schema refuses it: %v; compiler: %v", def, n, re.MatchString(n), err)
			}
		}
	}
	response := []string{"X-RateLimit-Remaining", "Set-Cookie", "Link", "Location", "Content-Type", "x-etag"}
	for k := range sidecarResponseHeaders {
		response = append(response, k, strings.ToLower(k))
	}
	check("responseHeaders", response, responseHeaderName)
	request := []string{"If-Match", "Cookie", "X-Request-Id", "X-HTTP-Method-Overrides", "Hosts"}
	for _, n := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-Original-URL", "X-Rewrite-URL", "Connection", "Host", "TE", "Transfer-Encoding"} {
		request = append(request, n, strings.ToLower(n), strings.ReplaceAll(n, "-", "_"), strings.ReplaceAll(n, "-", "."))
	}
	check("requestHeaders", request, requestHeaderName)
}
