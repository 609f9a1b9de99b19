package main

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// chainStages are the handlers of the full chain, outermost first. Each
// one's own cost is its cumulative time minus the next one's.
var chainStages = []struct{ label, fn string }{
	{"audit_log", "github.com/alysio/privacy-sidecar/modules/auditlog.(*AuditLog).ServeHTTP"},
	{"oidc_auth", "github.com/alysio/privacy-sidecar/modules/oidcauth.(*OIDCAuth).ServeHTTP"},
	{"tenant_guard", "github.com/alysio/privacy-sidecar/modules/tenantguard.(*TenantGuard).ServeHTTP"},
	{"scope_trim", "github.com/alysio/privacy-sidecar/modules/scopetrim.(*ScopeTrim).ServeHTTP"},
	{"reverse_proxy", "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy.(*Handler).ServeHTTP"},
}

// Parts of a stage worth naming on their own.
var stageParts = []struct{ label, fn string }{
	{"… of scope_trim: trimming the body", "github.com/alysio/privacy-sidecar/modules/scopetrim.(*trimmer).trim"},
	{"… of audit_log: writing the record", "github.com/alysio/privacy-sidecar/modules/auditlog.(*AuditLog).record"},
	{"garbage collector (background marking)", "runtime.gcBgMarkWorker"},
}

var totalSamples = regexp.MustCompile(`Total samples = ([0-9.]+[a-zµ]+)`)

// stageCost is one line of the breakdown.
type stageCost struct {
	Label string
	CPU   time.Duration // over the whole profile
}

// breakdown reads `go tool pprof -top -cum` output and returns the total
// CPU of the profile and each chain stage's own CPU (then the named parts),
// leaving out stages absent from the profile (plain has only reverse_proxy).
func breakdown(topCum string) (total time.Duration, stages []stageCost, err error) {
	m := totalSamples.FindStringSubmatch(topCum)
	if m == nil {
		return 0, nil, fmt.Errorf("no total in the pprof output")
	}
	if total, err = time.ParseDuration(m[1]); err != nil {
		return 0, nil, err
	}
	cum := map[string]time.Duration{}
	for line := range strings.SplitSeq(topCum, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		d, err := time.ParseDuration(f[3])
		if err != nil {
			continue
		}
		cum[strings.Join(f[5:], " ")] = d
	}
	for i, s := range chainStages {
		c, ok := cum[s.fn]
		if !ok {
			continue
		}
		for _, inner := range chainStages[i+1:] {
			if ic, ok := cum[inner.fn]; ok {
				c -= ic
				break
			}
		}
		stages = append(stages, stageCost{s.label + " (own, without the handlers after it)", c})
	}
	for _, p := range stageParts {
		if c, ok := cum[p.fn]; ok {
			stages = append(stages, stageCost{p.label, c})
		}
	}
	return total, stages, nil
}

// breakdownTable renders the breakdown per request: requests is how many
// the sidecar answered during the profile.
func breakdownTable(total time.Duration, stages []stageCost, requests float64) string {
	if requests <= 0 {
		return ""
	}
	per := func(d time.Duration) string {
		return fmt.Sprintf("%.1f µs", float64(d.Microseconds())/requests)
	}
	var b strings.Builder
	b.WriteString("| where | CPU per request | share of the process |\n|---|--:|--:|\n")
	for _, s := range stages {
		fmt.Fprintf(&b, "| %s | %s | %.0f%% |\n", s.Label, per(s.CPU), 100*s.CPU.Seconds()/total.Seconds())
	}
	fmt.Fprintf(&b, "| whole process | %s | 100%% |\n", per(total))
	return b.String()
}
