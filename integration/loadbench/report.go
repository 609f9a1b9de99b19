package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

// report collects everything one run prints.
type report struct {
	o            *options
	machine      machineInfo
	started      time.Time
	rows         []Row
	ndjson       []ndjsonResult
	profile      *profileSummary
	caches       map[string]*cacheCount
	rawVerify    rawVerifyResult
	usersSeen    string // users mode: how many users the measured requests came from
	errorSamples []string
}

type machineInfo struct {
	CPUs    int
	Model   string
	Go      string
	Kernel  string
	MemKB   int64
	LoadAvg string
}

func describeMachine() machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), Model: "unknown", Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.Model = cpuModel(string(b))
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.Go = strings.TrimSpace(strings.TrimPrefix(string(out), "go version "))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				fmt.Sscan(rest, &m.MemKB)
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo string) string {
	for line := range strings.SplitSeq(cpuinfo, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown"
}

// commandLine is how to repeat this run.
func commandLine(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		quoted[i] = a
	}
	return strings.TrimSpace("go run ./integration/loadbench " + strings.Join(quoted, " "))
}

// target is one of the goals and whether this run met it.
type targetCheck struct {
	Goal, Measured, Verdict string
}

// Thresholds from the issue.
const (
	minRatio10KB      = 0.85
	maxAddedP99       = time.Millisecond
	flatWindow        = 60 * time.Second
	maxNDJSONGrowthKB = 64 * 1024
)

// flat says whether RSS stayed flat over a phase: the end within 5% (at
// least 4 MiB) of the start. Allocator and GC noise move RSS by a few MiB
// even in a steady state; a leak grows with requests and passes that.
func flat(r RSSStats) bool {
	allowed := max(r.StartKB/20, 4*1024)
	return r.Growth() <= allowed
}

// checkTargets compares the rows (and NDJSON results) with the issue's
// goals. The 10 KB row is the one whose label is 10KB, else the size
// nearest to 10,000 bytes.
func checkTargets(rows []Row, ndjson []ndjsonResult, duration time.Duration, concurrency int, sizes []sizeSpec) []targetCheck {
	load := fmt.Sprintf("%d concurrent", concurrency)
	var checks []targetCheck
	ref := referenceSize(sizes)
	var cached *Row
	var totalErrors int64
	for i := range rows {
		totalErrors += rows[i].Errors
		if rows[i].Config == "chain-cached" && rows[i].Size == ref {
			cached = &rows[i]
		}
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	switch {
	case len(rows) == 0: // an NDJSON-only run
	case cached != nil && cached.HasBase:
		checks = append(checks,
			targetCheck{"chain-cached ≥ 0.85 × plain req/s (" + ref + ")", formatRatio(cached.Ratio), verdict(cached.Ratio >= minRatio10KB)},
			// issue 16 judges the same goal by CPU per request, which moves
			// less than req/s with what else the machine runs
			targetCheck{"plain ÷ chain-cached sidecar CPU per request ≥ 0.85 (" + ref + ")", formatRatio(1 / cached.CPURatio), verdict(1/cached.CPURatio >= minRatio10KB)},
			targetCheck{fmt.Sprintf("chain-cached p99 added < 1 ms (%s, %s)", ref, load), signedMillis(cached.AddedP99), verdict(cached.AddedP99 < maxAddedP99)})
	default:
		checks = append(checks, targetCheck{"chain-cached vs plain (" + ref + ")", "not measured", "n/a (run plain and chain-cached)"})
	}
	if len(rows) > 0 {
		checks = append(checks, targetCheck{"zero errors", fmt.Sprintf("%d", totalErrors), verdict(totalErrors == 0)})
	}
	for _, r := range rows {
		if r.Config == "plain" || r.Size != ref {
			continue
		}
		goal := fmt.Sprintf("RSS flat over %s (%s, %s)", flatWindow, r.Config, ref)
		measured := fmt.Sprintf("%s → %s over %s", mebibytes(r.RSS.StartKB), mebibytes(r.RSS.EndKB), r.Elapsed.Round(time.Second))
		v := verdict(flat(r.RSS))
		if duration < flatWindow {
			v = "not assessed (needs -duration 60s)"
		}
		checks = append(checks, targetCheck{goal, measured, v})
	}
	for _, n := range ndjson {
		if n.Config == "plain" {
			continue
		}
		growth := n.RSS.PeakKB - n.BaselineKB
		checks = append(checks, targetCheck{
			fmt.Sprintf("NDJSON %s peak RSS growth < 64 MiB (%s)", formatBytes(n.UpstreamBytes), n.Config),
			mebibytes(growth), verdict(growth < maxNDJSONGrowthKB)})
	}
	return checks
}

// referenceSize is the size label the ratio target refers to.
func referenceSize(sizes []sizeSpec) string {
	best, bestDist := "", math.MaxFloat64
	for _, s := range sizes {
		if strings.EqualFold(s.Label, "10KB") {
			return s.Label
		}
		if d := math.Abs(float64(s.Bytes) - 10000); d < bestDist {
			best, bestDist = s.Label, d
		}
	}
	return best
}

// markdown renders the report for docs/performance.md.
func (rep *report) markdown() string {
	var b strings.Builder
	o, m := rep.o, rep.machine
	fmt.Fprintf(&b, "Measured %s with\n\n```\n%s\n```\n\n", rep.started.Format("2006-01-02 15:04 MST"), commandLine(os.Args[1:]))
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %s RAM, %s, %s; load average at start %s. ", m.CPUs, m.Model, mebibytes(m.MemKB), m.Kernel, m.Go, m.LoadAvg)
	b.WriteString("The load generator, the upstream and the issuer run in the harness process on the same machine, so they compete with the sidecar for the CPUs: compare ratios, which come from the same run, rather than absolute figures.\n\n")
	if len(rep.rows) > 0 {
		fmt.Fprintf(&b, "Closed loop, %d concurrent keep-alive connections, %s measured per row after %s of warm-up", o.concurrency, o.duration, o.warmup)
		if o.rounds > 1 {
			fmt.Fprintf(&b, ", %d interleaved rounds pooled", o.rounds)
		}
		b.WriteString(". `plain` is `reverse_proxy` alone (caddyfiles/bench/plain.Caddyfile); `chain-cached` is audit_log, oidc_auth, tenant_guard and scope_trim in front of it (caddyfiles/bench/chain.Caddyfile, policies/crm.json) with one RS256 token reused; `chain-fresh` is the same chain with a different token on every request (token cache of 256 entries, 1,024 tokens used in turn), so every request verifies a signature." + rep.peersSentence() + " Responses are CRM contact lists; the chain removes `ssn`, `date_of_birth` and `tags` and redacts `notes`. RSS is the sidecar's VmRSS sampled every " + o.sampleEvery.String() + " during the measured phase. Sidecar CPU/req is the sidecar process's user+system CPU time (/proc/PID/stat) divided by its successful requests; it depends less than req/s on what else the machine runs, and the CPU ratio is the chain's cost relative to plain.\n\n")
		b.WriteString(markdownTable(rep.rows))
		b.WriteString("\n")
		var hwm []string
		for _, r := range rep.rows {
			if r.Size == rep.rows[len(rep.rows)-1].Size {
				hwm = append(hwm, fmt.Sprintf("%s %s", r.Config, mebibytes(r.RSS.HWMKB)))
			}
		}
		fmt.Fprintf(&b, "Peak RSS since start (VmHWM) at the end of the run: %s.\n", strings.Join(hwm, ", "))
		names := make([]string, 0, len(rep.caches))
		for name := range rep.caches {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			c := rep.caches[name]
			if total := c.hits + c.misses; total > 0 {
				fmt.Fprintf(&b, "oidc_auth token cache during %s: %.0f hits, %.0f misses (%.1f%% misses).\n", name, c.hits, c.misses, 100*c.misses/total)
			}
		}
		b.WriteString("\n")
		b.WriteString(rep.missMarkdown())
		b.WriteString(rep.usersMarkdown())
	}
	if len(rep.ndjson) > 0 {
		b.WriteString("NDJSON export (`application/x-ndjson`, generated and streamed by the upstream, trimmed record by record by scope_trim with policies/crm-export.json; the client reads it as fast as it arrives):\n\n")
		b.WriteString("| configuration | upstream bytes | records | bytes out | time | throughput | RSS before | peak RSS | peak growth |\n")
		b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, n := range rep.ndjson {
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %.1f MB/s | %s | %s | %s |\n", n.Config, formatBytes(n.UpstreamBytes), n.Records,
				formatBytes(n.OutBytes), n.Elapsed.Round(time.Millisecond), n.MBps(), mebibytes(n.BaselineKB), mebibytes(n.RSS.PeakKB), mebibytes(n.RSS.PeakKB-n.BaselineKB))
		}
		b.WriteString("\n")
	}
	if p := rep.profile; p != nil && p.Breakdown != "" {
		fmt.Fprintf(&b, "Where %s's CPU goes (%s responses; from a %d s CPU profile taken through the admin API, divided by the requests answered meanwhile):\n\n%s\n", p.Config, p.Size, p.Seconds, p.Breakdown)
	}
	var sizes []sizeSpec
	if len(rep.rows) > 0 {
		sizes = o.sizes
	}
	if checks := checkTargets(rep.rows, rep.ndjson, o.duration, o.concurrency, sizes); len(checks) > 0 {
		b.WriteString("| target (issues 7 and 16) | measured | |\n|---|--:|---|\n")
		for _, c := range checks {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", c.Goal, c.Measured, c.Verdict)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// peersSentence describes the -peers and users configurations, if any ran.
func (rep *report) peersSentence() string {
	var s string
	if contains(rep.o.configs, oidcCached) || contains(rep.o.configs, oidcFresh) {
		s += " `oidc-cached` and `oidc-fresh` are oidc_auth alone in front of reverse_proxy (caddyfiles/bench/oidc.Caddyfile), with the same tokens."
	}
	if contains(rep.o.configs, oauth2Cached) || contains(rep.o.configs, oauth2Fresh) {
		s += " `oauth2-proxy-cached` and `oauth2-proxy-fresh` are oauth2-proxy " + oauth2ProxyVersion + " (built with `go install " + oauth2ProxyModule + "`) validating the same bearer tokens against the same issuer (`--skip-jwt-bearer-tokens`, `--oidc-issuer-url`, `--client-id` the audience) and proxying to the same upstream, request and auth logging off; it keeps no token cache, so both verify every token."
	}
	if rep.o.mode == "users" {
		s += " `users-cache-N` is the chain with a token cache of N entries (-1: none) and the users' tokens."
	}
	return s
}

// print writes the report to stdout (and to path if set); the profile and
// error samples go to stdout only.
func (rep *report) print(path string) error {
	md := rep.markdown()
	fmt.Println(md)
	if len(rep.errorSamples) > 0 {
		fmt.Println("First failed requests:")
		for _, s := range rep.errorSamples {
			fmt.Println("  " + s)
		}
		fmt.Println()
	}
	if p := rep.profile; p != nil {
		fmt.Printf("CPU profile of %s during the %s segment (%ds), saved to %s\n\n%s\n\n%s\n\n", p.Config, p.Size, p.Seconds, p.File, p.Flat, p.Cum)
		fmt.Printf("Bytes allocated during the profile (%s.allocs-after minus .allocs-before)\n\n%s\n\n%s\n", p.File, p.Allocs, p.AllocsCum)
	}
	if path != "" {
		return os.WriteFile(path, []byte(md), 0o644)
	}
	return nil
}
