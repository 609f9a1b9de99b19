package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

func TestPercentileNearestRank(t *testing.T) {
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 99, 0},
		{"one value", []time.Duration{ms(3)}, 50, ms(3)},
		{"p50 of 1..100", hundred, 50, ms(50)},
		{"p99 of 1..100", hundred, 99, ms(99)},
		{"p100 is the max", hundred, 100, ms(100)},
		{"p99 of ten values is the max", hundred[:10], 99, ms(10)},
		{"p50 of four values", []time.Duration{1, 2, 3, 4}, 50, 2},
		{"tiny p is the min", hundred, 0.001, ms(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarizeSortsAndCounts(t *testing.T) {
	lat := []time.Duration{ms(5), ms(1), ms(3), ms(2), ms(4)}
	s := summarize(lat, 2, 2*time.Second, 5000)
	if s.Requests != 5 || s.Errors != 2 || s.Bytes != 5000 {
		t.Fatalf("counts: %+v", s)
	}
	if s.P50 != ms(3) || s.P99 != ms(5) || s.Max != ms(5) {
		t.Errorf("p50 %v p99 %v max %v, want 3ms 5ms 5ms", s.P50, s.P99, s.Max)
	}
	if got := s.RPS(); got != 2.5 {
		t.Errorf("RPS = %v, want 2.5 (5 successes in 2 s; errors do not count)", got)
	}
	if (Summary{Requests: 10}).RPS() != 0 {
		t.Error("RPS without elapsed time must be 0, not Inf")
	}
}

func TestCompareAgainstPlainOfTheSameSize(t *testing.T) {
	res := func(config, size string, n int64, p99 time.Duration) Result {
		return Result{Config: config, Size: size, Summary: Summary{Requests: n, Elapsed: time.Second, P99: p99}}
	}
	rows := compare([]Result{
		res("plain", "1KB", 1000, ms(2)),
		res("chain-cached", "1KB", 900, ms(2.5)),
		res("plain", "10KB", 800, ms(3)),
		res("chain-cached", "10KB", 600, ms(2)),
		res("chain-fresh", "300KB", 100, ms(9)), // no plain of this size
	}, "plain")
	want := []struct {
		ratio   float64
		added   time.Duration
		hasBase bool
	}{{1, 0, true}, {0.9, ms(0.5), true}, {1, 0, true}, {0.75, -ms(1), true}, {math.NaN(), 0, false}}
	for i, w := range want {
		r := rows[i]
		if r.HasBase != w.hasBase || r.AddedP99 != w.added {
			t.Errorf("row %d (%s %s): hasBase %v added %v, want %v %v", i, r.Config, r.Size, r.HasBase, r.AddedP99, w.hasBase, w.added)
		}
		if math.IsNaN(w.ratio) != math.IsNaN(r.Ratio) || (!math.IsNaN(w.ratio) && math.Abs(r.Ratio-w.ratio) > 1e-9) {
			t.Errorf("row %d (%s %s): ratio %v, want %v", i, r.Config, r.Size, r.Ratio, w.ratio)
		}
	}
	cpuRows := compare([]Result{
		{Config: "plain", Size: "1KB", Summary: Summary{Requests: 100, Elapsed: time.Second, CPU: 10 * time.Millisecond}},
		{Config: "chain-cached", Size: "1KB", Summary: Summary{Requests: 50, Elapsed: time.Second, CPU: 10 * time.Millisecond}},
	}, "plain")
	if got := cpuRows[1].CPUPerRequest(); got != 200*time.Microsecond {
		t.Errorf("CPU per request = %v, want 200µs", got)
	}
	if got := cpuRows[1].CPURatio; got != 2 {
		t.Errorf("CPU ratio = %v, want 2 (twice the CPU per request of plain)", got)
	}
	table := markdownTable(rows)
	for _, want := range []string{
		"| chain-cached | 1KB | 900 | 0.90 | 0.00 ms | 2.50 ms | +0.50 ms | 0 |",
		"| chain-cached | 10KB | 600 | 0.75 | 0.00 ms | 2.00 ms | -1.00 ms | 0 |",
		"| chain-fresh | 300KB | 100 | n/a | 0.00 ms | 9.00 ms | n/a | 0 |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if n := strings.Count(table, "\n"); n != 2+5 {
		t.Errorf("table has %d lines, want header, rule and 5 rows:\n%s", n, table)
	}
}

func TestRatioWithoutBaselineIsNaN(t *testing.T) {
	if !math.IsNaN(ratio(5, 0)) || ratio(3, 4) != 0.75 {
		t.Error("ratio must be a/b, NaN for b = 0")
	}
	if formatRatio(math.NaN()) != "n/a" || formatRatio(0.854) != "0.85" {
		t.Error("formatRatio")
	}
}
