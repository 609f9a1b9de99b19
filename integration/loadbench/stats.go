package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Summary is what one closed-loop segment (one configuration, one response
// size) measured.
type Summary struct {
	Requests int64         // completed with a 2xx status
	Errors   int64         // non-2xx statuses and transport errors
	Elapsed  time.Duration // wall time of the measured phase
	Bytes    int64         // response body bytes read by the client
	P50, P99 time.Duration // over successful requests
	Max      time.Duration
	CPU      time.Duration // user+system CPU the sidecar used in the phase
}

// CPUPerRequest is the sidecar's CPU time per successful request: less
// sensitive than req/s to what else runs on a shared machine.
func (s Summary) CPUPerRequest() time.Duration {
	if s.Requests == 0 {
		return 0
	}
	return s.CPU / time.Duration(s.Requests)
}

// RPS is successful requests per second.
func (s Summary) RPS() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Requests) / s.Elapsed.Seconds()
}

// summarize sorts latencies in place and computes the summary.
func summarize(latencies []time.Duration, errors int64, elapsed time.Duration, bytes int64) Summary {
	slices.Sort(latencies)
	s := Summary{Requests: int64(len(latencies)), Errors: errors, Elapsed: elapsed, Bytes: bytes}
	s.P50 = percentile(latencies, 50)
	s.P99 = percentile(latencies, 99)
	if n := len(latencies); n > 0 {
		s.Max = latencies[n-1]
	}
	return s
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of sorted
// latencies: the smallest value with at least p% of the values at or below
// it. Zero for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// ratio is a/b, NaN when b is zero (no baseline to compare with).
func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// Result is one row of the report.
type Result struct {
	Config string // plain, chain-cached, chain-fresh
	Size   string // label of the response size, e.g. 10KB
	Summary
	RSS RSSStats
}

// Row is a Result compared with the plain reverse_proxy baseline of the
// same size, measured in the same run.
type Row struct {
	Result
	Ratio    float64       // req/s relative to the baseline (NaN without one)
	CPURatio float64       // CPU per request relative to the baseline
	AddedP99 time.Duration // p99 minus the baseline's p99
	HasBase  bool
}

// compare pairs every result with the baseline config of its size.
func compare(results []Result, baseline string) []Row {
	base := map[string]Result{}
	for _, r := range results {
		if r.Config == baseline {
			base[r.Size] = r
		}
	}
	rows := make([]Row, 0, len(results))
	for _, r := range results {
		row := Row{Result: r, Ratio: math.NaN(), CPURatio: math.NaN()}
		if b, ok := base[r.Size]; ok {
			row.HasBase = true
			row.Ratio = ratio(r.RPS(), b.RPS())
			row.AddedP99 = r.P99 - b.P99
			row.CPURatio = ratio(float64(r.CPUPerRequest()), float64(b.CPUPerRequest()))
		}
		rows = append(rows, row)
	}
	return rows
}

// markdownTable renders rows as a GitHub markdown table.
func markdownTable(rows []Row) string {
	var b strings.Builder
	b.WriteString("| configuration | response | req/s | ratio to plain | p50 | p99 | p99 added | errors | sidecar CPU/req | CPU ratio | RSS start → end | peak RSS |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rows {
		ratioCell, added, cpuRatio := "n/a", "n/a", "n/a"
		if r.HasBase {
			ratioCell = formatRatio(r.Ratio)
			added = signedMillis(r.AddedP99)
			cpuRatio = formatRatio(r.CPURatio)
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %s | %s | %d | %d µs | %s | %s → %s | %s |\n",
			r.Config, r.Size, r.RPS(), ratioCell, millis(r.P50), millis(r.P99), added, r.Errors,
			r.CPUPerRequest().Microseconds(), cpuRatio,
			mebibytes(r.RSS.StartKB), mebibytes(r.RSS.EndKB), mebibytes(r.RSS.PeakKB))
	}
	return b.String()
}

func formatRatio(r float64) string {
	if math.IsNaN(r) {
		return "n/a"
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}

func millis(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

func signedMillis(d time.Duration) string {
	s := millis(d)
	if d >= 0 {
		s = "+" + s
	}
	return s
}

func mebibytes(kb int64) string {
	return strconv.FormatFloat(float64(kb)/1024, 'f', 1, 64) + " MiB"
}
