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
	srv := &caddyhttp.Server{Errors: &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{{}}}}
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
