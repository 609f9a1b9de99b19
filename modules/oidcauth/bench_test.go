package oidcauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// BenchmarkCheckPath measures oidc_auth's whole ServeHTTP check path and,
// as the baseline in the same run, go-oidc's raw Verify of the same token
// with the key in memory. Each oidc_auth result also reports its ratio to
// that baseline ("x-raw-verify"). Run with: go test -bench CheckPath -run '^$'
func BenchmarkCheckPath(b *testing.B) {
	iss := startIssuer(b)
	for _, alg := range []string{"RS256", "ES256"} {
		key := iss.KeyFor(alg)
		tok, err := iss.MintWith(key, devidp.Header{"typ": "at+jwt"}, iss.AccessClaims("user-123", "connector-api", devidp.Claims{
			"exp": time.Now().Add(time.Hour).Unix(), "scope": "contacts:read openid",
		}))
		if err != nil {
			b.Fatal(err)
		}
		var baseline float64
		b.Run(alg+"/go-oidc-raw-verify", func(b *testing.B) {
			v := rawVerifier(iss, staticKeys(iss))
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
			baseline = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
		uncached := newHandler(b, iss, func(m *OIDCAuth) {
			m.CacheSize = -1
			m.ForwardHeaders = map[string]string{"X-Auth-Subject": "sub"}
		})
		cached := newHandler(b, iss, func(m *OIDCAuth) { m.ForwardHeaders = map[string]string{"X-Auth-Subject": "sub"} })
		// Interleaved: each iteration runs the raw Verify and the uncached
		// oidc_auth path back to back, so load on a shared machine hits both
		// alike and the ratio stays meaningful when ns/op does not.
		b.Run(alg+"/paired-uncached-vs-raw", func(b *testing.B) {
			v := rawVerifier(iss, staticKeys(iss))
			ctx := context.Background()
			if s := serve(b, uncached, tok); s.next.called != 1 {
				b.Fatalf("refused: %s", s.resp.Body)
			}
			req := httptest.NewRequest(http.MethodGet, "/contacts", nil)
			next := &recordingNext{}
			w := httptest.NewRecorder()
			var rawNs, oursNs time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				r := req.Clone(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
				r.Header["Authorization"] = []string{"Bearer " + tok}
				if err := uncached.ServeHTTP(w, r, next); err != nil || w.Code != http.StatusOK {
					b.Fatalf("refused: %v %d", err, w.Code)
				}
				t2 := time.Now()
				rawNs += t1.Sub(t0)
				oursNs += t2.Sub(t1)
			}
			b.ReportMetric(float64(rawNs.Nanoseconds())/float64(b.N), "raw-ns/op")
			b.ReportMetric(float64(oursNs.Nanoseconds())/float64(b.N), "oidc_auth-ns/op")
			b.ReportMetric(float64(oursNs)/float64(rawNs), "x-raw-verify")
		})
		for _, c := range []struct {
			name string
			m    *OIDCAuth
		}{{"uncached", uncached}, {"cached", cached}} {
			b.Run(alg+"/oidc_auth-"+c.name, func(b *testing.B) {
				if s := serve(b, c.m, tok); s.next.called != 1 { // loads keys, fills the cache
					b.Fatalf("refused: %s", s.resp.Body)
				}
				req := httptest.NewRequest(http.MethodGet, "/contacts", nil)
				next := &recordingNext{}
				w := httptest.NewRecorder()
				b.ReportAllocs()
				for b.Loop() {
					r := req.Clone(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
					r.Header["Authorization"] = []string{"Bearer " + tok}
					if err := c.m.ServeHTTP(w, r, next); err != nil || w.Code != http.StatusOK {
						b.Fatalf("refused: %v %d", err, w.Code)
					}
				}
				ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				if baseline > 0 {
					b.ReportMetric(ns/baseline, "x-raw-verify")
				}
			})
		}
	}
}
