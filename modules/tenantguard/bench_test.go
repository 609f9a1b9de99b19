package tenantguard

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// benchCase is one configuration measured against the same request.
type benchCase struct {
	name  string
	guard caddyhttp.MiddlewareHandler
	extra []string // values of a disguised X_Tenant_ID copy, put back before each run
}

// passthrough is the baseline: a handler that only calls next, so the
// difference to it is what the guard costs.
type passthrough struct{}

func (passthrough) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return next.ServeHTTP(w, r)
}

type nopHandler struct{}

func (nopHandler) ServeHTTP(http.ResponseWriter, *http.Request) error { return nil }

func benchCases(tb testing.TB) []benchCase {
	reg := writeFile(tb, tb.TempDir(), "tenants.json", testRegistry)
	return []benchCase{
		{name: "baseline", guard: passthrough{}},
		{name: "header", guard: provision(tb, &TenantGuard{})},
		{name: "registry_connector_route", guard: provision(tb, &TenantGuard{Tenants: filepath.Clean(reg), Connector: "crm", RouteTenant: "{http.request.uri.path.1}"})},
		{name: "header_with_disguised_copy", guard: provision(tb, &TenantGuard{}), extra: []string{"globex"}},
	}
}

// newBenchRequest builds the request once; the guard does not change it
// when it passes (the disguised copy is put back each time by the caller).
func newBenchRequest(tb testing.TB) *http.Request {
	r, _ := request(tb, "http://h/tenants/acme/contacts", acmeIdentity(), "X-Tenant-Id: acme")
	return r
}

// BenchmarkServeHTTP measures a passing request per configuration; compare
// each to "baseline" in the same run (go test -bench ServeHTTP -benchmem).
func BenchmarkServeHTTP(b *testing.B) {
	for _, bc := range benchCases(b) {
		b.Run(bc.name, func(b *testing.B) {
			r := newBenchRequest(b)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				if len(bc.extra) > 0 {
					r.Header["X_Tenant_ID"] = bc.extra
				}
				if err := bc.guard.ServeHTTP(w, r, nopHandler{}); err != nil {
					b.Fatal(err)
				}
			}
			if d := sidecar.DecisionFrom(r); d.Denied() {
				b.Fatalf("refused: %s", d.Reason)
			}
		})
	}
}

// TestServeHTTPAllocations keeps the request path allocation-light: a
// passing request costs at most a few allocations more than the baseline
// (the published placeholders). It counts allocations, not time.
func TestServeHTTPAllocations(t *testing.T) {
	cases := benchCases(t)
	base := allocs(t, cases[0])
	for _, bc := range cases[1:] {
		const budget = 4
		if got := allocs(t, bc); got > base+budget {
			t.Errorf("%s: %.0f allocations per request, baseline %.0f; budget is baseline+%d", bc.name, got, base, budget)
		}
	}
}

func allocs(t *testing.T, bc benchCase) float64 {
	r := newBenchRequest(t)
	w := httptest.NewRecorder()
	return testing.AllocsPerRun(200, func() {
		if len(bc.extra) > 0 {
			r.Header["X_Tenant_ID"] = bc.extra
		}
		if err := bc.guard.ServeHTTP(w, r, nopHandler{}); err != nil {
			t.Fatal(err)
		}
	})
}
