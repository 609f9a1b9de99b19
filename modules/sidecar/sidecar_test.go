package sidecar

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestIdentityClaimPaths(t *testing.T) {
	id := &Identity{Claims: map[string]any{
		"tenant_id":                  "acme",
		"org":                        map[string]any{"id": "globex", "meta": map[string]any{"region": "eu"}},
		"https://example.com/tenant": "initech",
		"ext":                        map[string]any{"https://example.com/t": "umbrella"},
	}}
	for path, want := range map[string]any{
		"tenant_id":                  "acme",
		"org.id":                     "globex",
		"org.meta.region":            "eu",
		"https://example.com/tenant": "initech",
		"ext.https://example.com/t":  "umbrella",
	} {
		got, ok := id.Claim(path)
		if !ok || got != want {
			t.Errorf("Claim(%q) = %v, %v; want %v", path, got, ok, want)
		}
	}
	for _, path := range []string{"missing", "org.missing", "tenant_id.x", "org.id.deeper", ""} {
		if v, ok := id.Claim(path); ok {
			t.Errorf("Claim(%q) = %v, want not found", path, v)
		}
	}
	var none *Identity
	if _, ok := none.Claim("sub"); ok || none.HasScope("x") {
		t.Error("a nil identity must have no claims and no scopes")
	}
}

func TestDecisionFirstRefusalWins(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r, d := WithDecision(r)
	if r2, d2 := WithDecision(r); d2 != d || r2 != r {
		t.Fatal("WithDecision must reuse the record already in the request")
	}
	d.Deny(http.StatusUnauthorized, ReasonTokenExpired)
	d.Deny(http.StatusForbidden, ReasonTenantMismatch)
	if d.Reason != ReasonTokenExpired || d.Status != http.StatusUnauthorized {
		t.Fatalf("got %s/%d, want the first refusal", d.Reason, d.Status)
	}
	d.AddWithheld("data.#.email", 3)
	d.AddWithheld("data.#.email", 2)
	if d.FieldsRemoved != 5 || len(d.Withheld) != 1 {
		t.Fatalf("withheld %v (%d), want one pattern and 5 fields", d.Withheld, d.FieldsRemoved)
	}
	var nilRecord *Decision // modules call these without checking
	nilRecord.Deny(500, "x")
	nilRecord.AddWithheld("a", 1)
	nilRecord.AddSpoofedHeader("X")
	if nilRecord.Denied() {
		t.Fatal("a nil record is never denied")
	}
}

func TestRefuseWritesProblemWithoutErrorRoutes(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	repl := caddy.NewReplacer()
	r = r.WithContext(caddyContext(r, repl, &caddyhttp.Server{}))
	r, d := WithDecision(r)
	w := httptest.NewRecorder()
	if err := Refuse(w, r, http.StatusForbidden, ReasonTenantMismatch, "the tenant header does not match the token"); err != nil {
		t.Fatalf("Refuse returned %v; without handle_errors it writes the body itself", err)
	}
	if w.Code != http.StatusForbidden || w.Header().Get("Content-Type") != ContentTypeProblem {
		t.Fatalf("status %d, content type %q", w.Code, w.Header().Get("Content-Type"))
	}
	var p Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Reason != ReasonTenantMismatch || p.Status != 403 {
		t.Fatalf("body %s: %v", w.Body, err)
	}
	if d.Reason != ReasonTenantMismatch {
		t.Fatalf("decision reason %q", d.Reason)
	}
	if v, _ := repl.Get("sidecar.reason"); v != ReasonTenantMismatch {
		t.Fatalf("{sidecar.reason} = %v", v)
	}
}

func TestRefuseReturnsHandlerErrorWithErrorRoutes(t *testing.T) {
	srv := &caddyhttp.Server{Errors: &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{{Handlers: []caddyhttp.MiddlewareHandler{caddyhttp.StaticResponse{}}}}}}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r = r.WithContext(caddyContext(r, caddy.NewReplacer(), srv))
	w := httptest.NewRecorder()
	err := Refuse(w, r, http.StatusUnauthorized, ReasonTokenMissing, "")
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
		t.Fatalf("got %v, want a caddyhttp.HandlerError with 401", err)
	}
	var p *Problem
	if !errors.As(err, &p) || p.Reason != ReasonTokenMissing {
		t.Fatalf("the error does not carry the problem: %v", err)
	}
	if w.Body.Len() != 0 {
		t.Fatal("with handle_errors routes, Refuse must leave the body to them")
	}
}

func TestIsSecurityEvent(t *testing.T) {
	for reason, want := range map[string]bool{
		ReasonTokenInvalid: true, ReasonTenantMismatch: true, ReasonIssuerNotAllowedForTenant: true,
		ReasonUpstreamDuplicate: true, ReasonUpstreamUnavailable: false, ReasonTokenExpired: false, ReasonTokenMissing: false, "upstream_": false, ReasonOK: false,
	} {
		if IsSecurityEvent(reason) != want {
			t.Errorf("IsSecurityEvent(%q) = %v", reason, !want)
		}
	}
}

// statusMatcher matches an error route on {http.error.status_code}, as the
// expression `handle_errors 404` compiles to does.
type statusMatcher int

func (m statusMatcher) MatchWithError(r *http.Request) (bool, error) {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	v, _ := repl.Get("http.error.status_code")
	return v == int(m), nil
}

// TestRefuseUnderUnrelatedErrorRoutes: error routes that do not match the
// refusal (only 404, at the top or inside a subroute as handle_errors
// compiles it) leave the problem body and the challenge to Refuse; a
// matching one gets the error.
func TestRefuseUnderUnrelatedErrorRoutes(t *testing.T) {
	respond := []caddyhttp.MiddlewareHandler{caddyhttp.StaticResponse{}}
	only404 := caddyhttp.RouteList{{MatcherSets: caddyhttp.MatcherSets{{statusMatcher(404)}}, Handlers: respond}}
	nested := caddyhttp.RouteList{{Handlers: []caddyhttp.MiddlewareHandler{&caddyhttp.Subroute{Routes: only404}}}}
	for name, tc := range map[string]struct {
		routes caddyhttp.RouteList
		status int
		toErr  bool
	}{
		"404 route, 401 refusal":            {only404, 401, false},
		"nested 404 route, 401 refusal":     {nested, 401, false},
		"404 route, 404 refusal":            {only404, 404, true},
		"nested 404 route, 404 refusal":     {nested, 404, true},
		"route without handlers":            {caddyhttp.RouteList{{}}, 401, false},
		"terminal route stops the matching": {append(caddyhttp.RouteList{{Terminal: true}}, only404...), 404, false},
	} {
		t.Run(name, func(t *testing.T) {
			srv := &caddyhttp.Server{Errors: &caddyhttp.HTTPErrorConfig{Routes: tc.routes}}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			repl := caddy.NewReplacer()
			r = r.WithContext(caddyContext(r, repl, srv))
			w := httptest.NewRecorder()
			w.Header().Set("WWW-Authenticate", `Bearer realm="x"`)
			err := Refuse(w, r, tc.status, ReasonTokenMissing, "send a token")
			if tc.toErr {
				var he caddyhttp.HandlerError
				if !errors.As(err, &he) || he.StatusCode != tc.status || w.Body.Len() != 0 {
					t.Fatalf("got %v and body %q; want the error for the matching route", err, w.Body)
				}
				return
			}
			if err != nil {
				t.Fatalf("Refuse returned %v; no errors route matches, so it must write the problem", err)
			}
			var p Problem
			if w.Code != tc.status || json.Unmarshal(w.Body.Bytes(), &p) != nil || p.Reason != ReasonTokenMissing {
				t.Fatalf("status %d body %q", w.Code, w.Body)
			}
			if w.Header().Get("WWW-Authenticate") == "" || w.Header().Get("Content-Type") != ContentTypeProblem {
				t.Fatalf("headers %v", w.Header())
			}
			if _, ok := repl.Get("http.error.status_code"); ok {
				t.Fatal("the error placeholders stayed set for a refusal that is not an error")
			}
		})
	}
}
