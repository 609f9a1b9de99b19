package main

import (
	"strings"
	"testing"
	"time"
)

const topCumSample = `File: privacy-sidecar
Type: cpu
Duration: 10s, Total samples = 6490ms (64.90%)
      flat  flat%   sum%        cum   cum%
      10ms  0.15%  0.15%     4590ms 70.72%  net/http.(*conn).serve
         0     0%  0.92%     3570ms 55.01%  github.com/alysio/privacy-sidecar/modules/auditlog.(*AuditLog).ServeHTTP
         0     0%  0.92%     3190ms 49.15%  github.com/alysio/privacy-sidecar/modules/oidcauth.(*OIDCAuth).ServeHTTP
      10ms  0.15%  1.08%     3050ms 47.00%  github.com/alysio/privacy-sidecar/modules/tenantguard.(*TenantGuard).ServeHTTP
      10ms  0.15%  1.23%     2860ms 44.07%  github.com/alysio/privacy-sidecar/modules/scopetrim.(*ScopeTrim).ServeHTTP
         0     0%  1.39%     1200ms 18.49%  github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy.(*Handler).ServeHTTP
         0     0%  2.77%     1010ms 15.56%  github.com/alysio/privacy-sidecar/modules/scopetrim.(*trimmer).trim
         0     0% 18.34%      500ms  7.70%  runtime.gcBgMarkWorker
`

func TestBreakdownSubtractsInnerStages(t *testing.T) {
	total, stages, err := breakdown(topCumSample)
	if err != nil {
		t.Fatal(err)
	}
	if total != 6490*time.Millisecond {
		t.Errorf("total = %v", total)
	}
	want := []stageCost{
		{"audit_log (own, without the handlers after it)", 380 * time.Millisecond},
		{"oidc_auth (own, without the handlers after it)", 140 * time.Millisecond},
		{"tenant_guard (own, without the handlers after it)", 190 * time.Millisecond},
		{"scope_trim (own, without the handlers after it)", 1660 * time.Millisecond},
		{"reverse_proxy (own, without the handlers after it)", 1200 * time.Millisecond},
		{"… of scope_trim: trimming the body", 1010 * time.Millisecond},
		{"garbage collector (background marking)", 500 * time.Millisecond},
	}
	if len(stages) != len(want) {
		t.Fatalf("got %v", stages)
	}
	for i := range want {
		if stages[i] != want[i] {
			t.Errorf("stage %d = %+v, want %+v", i, stages[i], want[i])
		}
	}
	table := breakdownTable(total, stages, 10000)
	for _, w := range []string{"| scope_trim (own, without the handlers after it) | 166.0 µs | 26% |", "| whole process | 649.0 µs | 100% |"} {
		if !strings.Contains(table, w) {
			t.Errorf("table lacks %q:\n%s", w, table)
		}
	}
}

func TestBreakdownOfPlainHasOnlyTheProxy(t *testing.T) {
	plain := "Duration: 10s, Total samples = 5.76s (57.59%)\n         0     0%  1.56%      2.12s 36.81%  github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy.(*Handler).ServeHTTP\n"
	_, stages, err := breakdown(plain)
	if err != nil || len(stages) != 1 || stages[0] != (stageCost{"reverse_proxy (own, without the handlers after it)", 2120 * time.Millisecond}) {
		t.Errorf("got %v, %v", stages, err)
	}
	if _, _, err := breakdown("not a profile"); err == nil {
		t.Error("text without a total parsed")
	}
}
