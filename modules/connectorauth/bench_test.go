package connectorauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// passthrough is the baseline: a handler that only calls next.
type passthrough struct{}

func (passthrough) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return next.ServeHTTP(w, r)
}

type okNext struct{}

func (okNext) ServeHTTP(w http.ResponseWriter, _ *http.Request) error {
	w.WriteHeader(http.StatusOK)
	return nil
}

// BenchmarkServeHTTP measures a request on a connected connection whose
// access token is cached (the path almost every request takes), serially
// and in parallel, and reports each as a ratio to the baseline handler of
// the same run (x_baseline): go test ./modules/connectorauth -run '^$' -bench ServeHTTP -benchmem
func BenchmarkServeHTTP(b *testing.B) {
	srv := newTokenServer(b)
	m := handler(b, srv, "")
	if _, err := m.conn.Connect(context.Background(), "acme", Credential{RefreshToken: srv.issue()}); err != nil {
		b.Fatal(err)
	}
	r, _ := request("acme", "crm", "Authorization: Bearer caller")
	if err := m.ServeHTTP(httptest.NewRecorder(), r, okNext{}); err != nil { // warm the token cache
		b.Fatal(err)
	}
	var baseline float64
	for _, bc := range []struct {
		name     string
		h        caddyhttp.MiddlewareHandler
		parallel bool
	}{
		{"baseline", passthrough{}, false},
		{"connector_auth", m, false},
		{"baseline_parallel", passthrough{}, true},
		{"connector_auth_parallel", m, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			caller := []string{"Bearer caller"}
			// one request per goroutine, reused: the handler only rewrites
			// its Authorization header, which is put back each time
			serve := func(req *http.Request, w http.ResponseWriter) {
				req.Header["Authorization"] = caller
				if err := bc.h.ServeHTTP(w, req, okNext{}); err != nil {
					b.Error(err)
				}
			}
			if bc.parallel {
				b.RunParallel(func(pb *testing.PB) {
					req, _ := request("acme", "crm")
					w := discard{}
					for pb.Next() {
						serve(req, w)
					}
				})
			} else {
				req, _ := request("acme", "crm")
				w := discard{}
				for b.Loop() {
					serve(req, w)
				}
			}
			perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if bc.name == "baseline" || bc.name == "baseline_parallel" {
				baseline = perOp
			} else if baseline > 0 {
				b.ReportMetric(perOp/baseline, "x_baseline")
			}
		})
	}
}

// discard is a response writer that keeps nothing.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}
