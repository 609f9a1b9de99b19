package oidcauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/alysio/privacy-sidecar/internal/devidp"
	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// startIssuer runs an in-process development issuer.
func startIssuer(t testing.TB) *devidp.Issuer {
	t.Helper()
	iss, err := devidp.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { iss.Close() })
	return iss
}

// newHandler provisions and validates an oidc_auth for iss (audience
// connector-api); configure adjusts it first.
func newHandler(t testing.TB, iss *devidp.Issuer, configure func(*OIDCAuth)) *OIDCAuth {
	t.Helper()
	m := &OIDCAuth{Issuers: []*Issuer{{Issuer: iss.URL, Audiences: []string{"connector-api"}}}}
	if configure != nil {
		configure(m)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := m.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	t.Cleanup(func() { _ = m.Cleanup() })
	if err := m.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return m
}

// recordingNext is the next handler; it keeps the request it received.
type recordingNext struct {
	called int
	req    *http.Request
}

func (n *recordingNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	n.called++
	n.req = r
	w.WriteHeader(http.StatusOK)
	return nil
}

type served struct {
	resp     *httptest.ResponseRecorder
	next     *recordingNext
	decision *sidecar.Decision
	repl     *caddy.Replacer
	err      error
}

// serve runs one request with a replacer and a decision record in context.
func serve(t testing.TB, m *OIDCAuth, token string, headers ...string) served {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/contacts", nil)
	if token != "" {
		r.Header["Authorization"] = []string{"Bearer " + token}
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		r.Header[name] = append(r.Header[name], strings.TrimSpace(value))
	}
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	r, dec := sidecar.WithDecision(r)
	w := httptest.NewRecorder()
	next := &recordingNext{}
	err := m.ServeHTTP(w, r, next)
	return served{resp: w, next: next, decision: dec, repl: repl, err: err}
}

func (s served) reason(t testing.TB) string {
	t.Helper()
	if s.err != nil {
		t.Fatalf("ServeHTTP returned %v; without handle_errors routes it writes the problem itself", s.err)
	}
	var p sidecar.Problem
	if err := json.Unmarshal(s.resp.Body.Bytes(), &p); err != nil {
		t.Fatalf("body is not problem+json: %s", s.resp.Body.String())
	}
	if s.next.called != 0 {
		t.Fatal("the next handler ran for a refused request")
	}
	if s.decision.Reason != p.Reason || s.decision.Status != s.resp.Code {
		t.Fatalf("decision %q/%d differs from the response %q/%d", s.decision.Reason, s.decision.Status, p.Reason, s.resp.Code)
	}
	return p.Reason
}

func TestServeHTTPAdmitsAndPublishesIdentity(t *testing.T) {
	iss := startIssuer(t)
	m := newHandler(t, iss, func(m *OIDCAuth) {
		m.ForwardHeaders = map[string]string{"X-Auth-Subject": "sub", "X-Org": "org.id", "X-Big": "big"}
		m.RolesClaim = "realm_access.roles"
	})
	tok := iss.MustMint(iss.AccessClaims("user-123", "connector-api", devidp.Claims{
		"azp":          "portal",
		"scope":        "contacts:read openid",
		"org":          map[string]any{"id": "org-7"},
		"realm_access": map[string]any{"roles": []string{"admin", "viewer"}},
		"big":          json.Number("12345678901234567890"),
	}))
	s := serve(t, m, tok, "X-Auth-Subject: attacker", "x_auth_subject: attacker", "X-User-Id: attacker")
	if s.err != nil || s.next.called != 1 {
		t.Fatalf("not admitted: err %v, status %d, body %s", s.err, s.resp.Code, s.resp.Body)
	}
	r := s.next.req
	id := sidecar.IdentityFrom(r)
	if id == nil {
		t.Fatal("no identity in the request context")
	}
	if id.Subject != "user-123" || id.Issuer != iss.URL || id.ClientID != "portal" ||
		strings.Join(id.Audiences, ",") != "connector-api" || strings.Join(id.Scopes, " ") != "contacts:read openid" ||
		strings.Join(id.Roles, ",") != "admin,viewer" || id.Expiry.IsZero() {
		t.Fatalf("identity %+v", id)
	}
	if s.decision.Identity != id {
		t.Fatal("the decision record does not carry the identity")
	}
	if got := r.Header.Values("X-Auth-Subject"); len(got) != 1 || got[0] != "user-123" {
		t.Fatalf("X-Auth-Subject %q", got)
	}
	if _, ok := r.Header["x_auth_subject"]; ok {
		t.Fatal("x_auth_subject reached the next handler")
	}
	if r.Header.Get("X-User-Id") != "" || r.Header.Get("Authorization") != "" {
		t.Fatal("spoofed X-User-Id or Authorization reached the next handler")
	}
	if r.Header.Get("X-Org") != "org-7" || r.Header.Get("X-Big") != "12345678901234567890" {
		t.Fatalf("forwarded X-Org %q X-Big %q", r.Header.Get("X-Org"), r.Header.Get("X-Big"))
	}
	if got := strings.Join(s.decision.SpoofedHeaders, ","); got != "X-Auth-Subject,X-User-Id,x_auth_subject" {
		t.Fatalf("spoofed headers recorded %q", got)
	}
	for placeholder, want := range map[string]string{
		"{http.auth.user.id}":             "user-123",
		"{oidc.subject}":                  "user-123",
		"{oidc.issuer}":                   iss.URL,
		"{oidc.client_id}":                "portal",
		"{oidc.scopes}":                   "contacts:read openid",
		"{oidc.roles}":                    "admin,viewer",
		"{oidc.audience}":                 "connector-api",
		"{oidc.claim.org.id}":             "org-7",
		"{oidc.claim.azp}":                "portal",
		"{oidc.claim.big}":                "12345678901234567890",
		"{oidc.claim.missing}":            "-",
		"{oidc.claim.aud}":                "connector-api",
		"{oidc.claim.realm_access.roles}": "admin,viewer",
	} {
		if got := s.repl.ReplaceAll(placeholder, "-"); got != want {
			t.Errorf("%s = %q, want %q", placeholder, got, want)
		}
	}
}

func TestServeHTTPForwardToken(t *testing.T) {
	iss := startIssuer(t)
	m := newHandler(t, iss, func(m *OIDCAuth) { m.ForwardToken = true })
	tok := iss.MustMint(iss.AccessClaims("u", "connector-api", nil))
	s := serve(t, m, tok)
	if s.next.called != 1 || s.next.req.Header.Get("Authorization") != "Bearer "+tok {
		t.Fatal("forward_token did not keep Authorization")
	}
}

func TestServeHTTPRefusals(t *testing.T) {
	iss := startIssuer(t)
	m := newHandler(t, iss, func(m *OIDCAuth) { m.RequireScope = []string{"contacts:read"} })
	ok := devidp.Claims{"scope": "contacts:read"}
	cases := []struct {
		name      string
		token     string
		headers   []string
		status    int
		reason    string
		challenge string
	}{
		{"missing", "", nil, 401, "token_missing", `Bearer realm="privacy-sidecar"`},
		{"two headers", iss.MustMint(iss.AccessClaims("u", "connector-api", ok)), []string{"Authorization: Bearer x.y.z"}, 400, "token_malformed", `Bearer realm="privacy-sidecar", error="invalid_request"`},
		{"over the cap", strings.Repeat("a", 17<<10), nil, 401, "token_malformed", `Bearer realm="privacy-sidecar", error="invalid_token"`},
		{"two tokens in one header", "a.b.c d.e.f", nil, 401, "token_malformed", `Bearer realm="privacy-sidecar", error="invalid_token"`},
		{"scope missing", iss.MustMint(iss.AccessClaims("u", "connector-api", nil)), nil, 403, "insufficient_scope", `Bearer realm="privacy-sidecar", error="insufficient_scope", scope="contacts:read"`},
		{"not valid yet", iss.MustMint(iss.AccessClaims("u", "connector-api", devidp.Claims{"nbf": 1<<40>>8*0 + 9999999999})), nil, 401, "token_not_yet_valid", `Bearer realm="privacy-sidecar", error="invalid_token"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := serve(t, m, c.token, c.headers...)
			if s.resp.Code != c.status {
				t.Fatalf("status %d, want %d: %s", s.resp.Code, c.status, s.resp.Body)
			}
			if got := s.reason(t); got != c.reason {
				t.Fatalf("reason %q, want %q", got, c.reason)
			}
			if got := s.resp.Header().Get("WWW-Authenticate"); got != c.challenge {
				t.Fatalf("WWW-Authenticate %q, want %q", got, c.challenge)
			}
			if c.token != "" && strings.Contains(s.resp.Body.String(), c.token) {
				t.Fatal("the body contains the token")
			}
		})
	}
}

// TestServeHTTPReturnsErrorWithErrorRoutes: with a handle_errors route that
// handles it, the refusal is a caddyhttp.Error so that route chooses the page.
func TestServeHTTPReturnsErrorWithErrorRoutes(t *testing.T) {
	iss := startIssuer(t)
	m := newHandler(t, iss, nil)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	srv := &caddyhttp.Server{Errors: &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{{Handlers: []caddyhttp.MiddlewareHandler{caddyhttp.StaticResponse{}}}}}}
	ctx := context.WithValue(r.Context(), caddyhttp.ServerCtxKey, srv)
	ctx = context.WithValue(ctx, caddy.ReplacerCtxKey, caddy.NewReplacer())
	w := httptest.NewRecorder()
	err := m.ServeHTTP(w, r.WithContext(ctx), &recordingNext{})
	var he caddyhttp.HandlerError
	if !asHandlerError(err, &he) || he.StatusCode != http.StatusUnauthorized {
		t.Fatalf("error %v, want a caddyhttp.HandlerError with 401", err)
	}
	if got := w.Header().Get("WWW-Authenticate"); got == "" {
		t.Fatal("no WWW-Authenticate challenge")
	}
}

func TestServeHTTPCacheHitAndMetrics(t *testing.T) {
	iss := startIssuer(t)
	m := newHandler(t, iss, nil)
	tok := iss.MustMint(iss.AccessClaims("u", "connector-api", nil))
	hits := counterValue(t, metrics.cache.WithLabelValues("hit"))
	allows := counterValue(t, metrics.decisions.WithLabelValues("allow", "ok"))
	for i := 0; i < 3; i++ {
		if s := serve(t, m, tok); s.next.called != 1 {
			t.Fatalf("request %d refused: %s", i, s.resp.Body)
		}
	}
	if got := counterValue(t, metrics.cache.WithLabelValues("hit")) - hits; got != 2 {
		t.Fatalf("cache hits %v, want 2", got)
	}
	if got := counterValue(t, metrics.decisions.WithLabelValues("allow", "ok")) - allows; got != 3 {
		t.Fatalf("allow decisions %v, want 3", got)
	}
	if m.cache.len() != 1 {
		t.Fatalf("cache holds %d entries, want 1", m.cache.len())
	}
}

// TestMetricsRegisterTwice: two oidc_auth handlers in one config share the
// registry; the second registration must not fail.
func TestMetricsRegisterTwice(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if err := registerMetrics(reg); err != nil {
		t.Fatalf("second registration: %v", err)
	}
}

// TestKeySetsSurviveReloadAndAreReleased: a second config with the same
// issuer shares the key set; it is destroyed when the last user cleans up.
func TestKeySetsSurviveReloadAndAreReleased(t *testing.T) {
	iss := startIssuer(t)
	a := newHandler(t, iss, nil)
	b := newHandler(t, iss, nil)
	if a.issuers[iss.URL].keys != b.issuers[iss.URL].keys {
		t.Fatal("two configs with the same issuer got different key sets")
	}
	key := a.issuers[iss.URL].poolKey
	if refs, _ := keySets.References(key); refs != 2 {
		t.Fatalf("references %d, want 2", refs)
	}
	_ = a.Cleanup()
	ks := b.issuers[iss.URL].keys
	if ks.ctx.Err() != nil {
		t.Fatal("the key set was destroyed while still in use")
	}
	_ = b.Cleanup()
	if ks.ctx.Err() == nil {
		t.Fatal("the key set was not destroyed after the last cleanup")
	}
	a.issuers, b.issuers = nil, nil // the test cleanup must not release twice
}

func TestValidateRefusesUnsafeConfig(t *testing.T) {
	cases := map[string]struct {
		m    OIDCAuth
		want string
	}{
		"no issuer":    {OIDCAuth{}, "no issuer configured"},
		"HS256":        {OIDCAuth{Issuers: []*Issuer{{Issuer: "https://a", Audiences: []string{"x"}}}, Algorithms: []string{"HS256"}}, `"HS256" is not allowed`},
		"none":         {OIDCAuth{Issuers: []*Issuer{{Issuer: "https://a", Audiences: []string{"x"}}}, Algorithms: []string{"none"}}, `"none" is not allowed`},
		"leeway":       {OIDCAuth{Issuers: []*Issuer{{Issuer: "https://a", Audiences: []string{"x"}}}, Leeway: caddy.Duration(1 << 62)}, "leeway"},
		"forward Host": {OIDCAuth{Issuers: []*Issuer{{Issuer: "https://a", Audiences: []string{"x"}}}, ForwardHeaders: map[string]string{"Host": "sub"}}, "protocol header"},
		"bad scope":    {OIDCAuth{Issuers: []*Issuer{{Issuer: "https://a", Audiences: []string{"x"}}}, RequireScope: []string{`a"b`}}, "not a valid scope"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := c.m.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestProvisionRefusesBadIssuer(t *testing.T) {
	for name, ic := range map[string]*Issuer{
		"no audience":    {Issuer: "https://idp.example"},
		"empty audience": {Issuer: "https://idp.example", Audiences: []string{""}},
		"not a URL":      {Issuer: "idp.example", Audiences: []string{"a"}},
		"query":          {Issuer: "https://idp.example?x=1", Audiences: []string{"a"}},
		"bad jwks_uri":   {Issuer: "https://idp.example", Audiences: []string{"a"}, JWKSURI: "file:///etc/keys"},
	} {
		t.Run(name, func(t *testing.T) {
			m := &OIDCAuth{Issuers: []*Issuer{ic}}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			if err := m.Provision(ctx); err == nil {
				_ = m.Cleanup()
				t.Fatal("provisioned an unsafe issuer")
			}
			_ = m.Cleanup()
		})
	}
}

func TestProvisionResolvesEnv(t *testing.T) {
	iss := startIssuer(t)
	t.Setenv("OIDC_TEST_ISSUER", iss.URL)
	t.Setenv("OIDC_TEST_AUD", "connector-api")
	m := &OIDCAuth{Issuers: []*Issuer{{Issuer: "{env.OIDC_TEST_ISSUER}", Audiences: []string{"{env.OIDC_TEST_AUD}"}}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := m.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Cleanup()
	if s := serve(t, m, iss.MustMint(iss.AccessClaims("u", "connector-api", nil))); s.next.called != 1 {
		t.Fatalf("refused: %s", s.resp.Body)
	}
}

func asHandlerError(err error, he *caddyhttp.HandlerError) bool {
	return errors.As(err, he)
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestServeHTTPConcurrent runs requests from many goroutines while the key
// set refreshes in the background; run with -race.
func TestServeHTTPConcurrent(t *testing.T) {
	iss := startIssuer(t)
	m := newHandler(t, iss, func(m *OIDCAuth) {
		m.CacheSize = 16
		m.Issuers[0].RefreshInterval = caddyDuration(5 * time.Millisecond)
	})
	tokens := make([]string, 32)
	for i := range tokens {
		tokens[i] = iss.MustMint(iss.AccessClaims(fmt.Sprint("user-", i), "connector-api", nil))
	}
	var wg sync.WaitGroup
	var refused atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				s := serve(t, m, tokens[(g*7+i)%len(tokens)])
				if s.next.called != 1 {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := refused.Load(); n != 0 {
		t.Fatalf("%d valid requests refused under concurrency", n)
	}
}
