package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckTargets(t *testing.T) {
	sizes := []sizeSpec{{"1KB", 1000}, {"10KB", 10000}}
	rss := func(start, end int64) RSSStats { return RSSStats{StartKB: start, EndKB: end, PeakKB: end} }
	results := []Result{
		{Config: "plain", Size: "10KB", Summary: Summary{Requests: 1000, Elapsed: time.Minute, P99: ms(2), CPU: 150 * time.Millisecond}, RSS: rss(60000, 60000)},
		{Config: "chain-cached", Size: "10KB", Summary: Summary{Requests: 900, Elapsed: time.Minute, P99: ms(2.5), CPU: 180 * time.Millisecond}, RSS: rss(64000, 65000)},
		{Config: "chain-fresh", Size: "10KB", Summary: Summary{Requests: 500, Errors: 1, Elapsed: time.Minute, P99: ms(4)}, RSS: rss(64000, 90000)},
	}
	ndjson := []ndjsonResult{
		{Config: "plain", UpstreamBytes: 100e6, BaselineKB: 60000, RSS: RSSStats{PeakKB: 200000}},
		{Config: "chain-cached", UpstreamBytes: 100e6, BaselineKB: 60000, RSS: RSSStats{PeakKB: 60000 + 70*1024}},
	}
	checks := checkTargets(compare(results, "plain"), ndjson, time.Minute, 16, sizes)
	got := map[string]string{}
	for _, c := range checks {
		got[c.Goal] = c.Measured + " / " + c.Verdict
	}
	want := map[string]string{
		"chain-cached ≥ 0.85 × plain req/s (10KB)":            "0.90 / met",
		"chain-cached p99 added < 1 ms (10KB, 16 concurrent)": "+0.50 ms / met",
		// 150 µs against 200 µs per request
		"plain ÷ chain-cached sidecar CPU per request ≥ 0.85 (10KB)": "0.75 / NOT met",
		"zero errors": "1 / NOT met",
		"RSS flat over 1m0s (chain-cached, 10KB)":                 "62.5 MiB → 63.5 MiB over 1m0s / met",
		"RSS flat over 1m0s (chain-fresh, 10KB)":                  "62.5 MiB → 87.9 MiB over 1m0s / NOT met",
		"NDJSON 100.0 MB peak RSS growth < 64 MiB (chain-cached)": "70.0 MiB / NOT met",
	}
	if len(got) != len(want) {
		t.Errorf("got %d checks, want %d: %v", len(got), len(want), got)
	}
	for goal, w := range want {
		if got[goal] != w {
			t.Errorf("%s: got %q, want %q", goal, got[goal], w)
		}
	}

	short := checkTargets(compare(results, "plain"), nil, 10*time.Second, 16, sizes)
	for _, c := range short {
		if strings.HasPrefix(c.Goal, "RSS flat") && !strings.HasPrefix(c.Verdict, "not assessed") {
			t.Errorf("a 10 s run judged flatness: %+v", c)
		}
	}
}

func TestReferenceSize(t *testing.T) {
	if got := referenceSize([]sizeSpec{{"1KB", 1000}, {"10kb", 10000}}); got != "10kb" {
		t.Errorf("got %q", got)
	}
	if got := referenceSize([]sizeSpec{{"1KiB", 1024}, {"8KiB", 8192}, {"300KiB", 307200}}); got != "8KiB" {
		t.Errorf("without a 10KB size the nearest is the reference; got %q", got)
	}
}

func TestFlatAllowsNoiseNotGrowth(t *testing.T) {
	for _, tt := range []struct {
		start, end int64
		want       bool
	}{
		{60000, 60000, true},
		{60000, 50000, true},          // shrinking is flat
		{60000, 60000 + 4096, true},   // 4 MiB of allocator noise
		{200000, 200000 + 9000, true}, // within 5%
		{60000, 60000 + 5000, false},
		{200000, 200000 + 11000, false},
	} {
		if got := flat(RSSStats{StartKB: tt.start, EndKB: tt.end}); got != tt.want {
			t.Errorf("flat(%d → %d) = %v", tt.start, tt.end, got)
		}
	}
}

func TestMachineAndMetricParsing(t *testing.T) {
	cpuinfo := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n\nprocessor\t: 1\nmodel name\t: other\n"
	if got := cpuModel(cpuinfo); got != "Intel(R) Xeon(R) Processor" {
		t.Errorf("cpuModel = %q", got)
	}
	metrics := `# HELP sidecar_oidc_auth_token_cache_total lookups
sidecar_oidc_auth_token_cache_total{result="hit"} 1234
sidecar_oidc_auth_token_cache_total{result="miss"} 5.5e+01
sidecar_oidc_auth_token_cache_total{result="hit",x="y"} 6
`
	if got := sumMetric(metrics, cacheHitMetric[:len(cacheHitMetric)-1]); got != 1240 {
		t.Errorf("hits = %v, want 1240", got)
	}
	if got := sumMetric(metrics, cacheMissMetric); got != 55 {
		t.Errorf("misses = %v, want 55", got)
	}
	if got := commandLine([]string{"-duration", "20s", "-out", "/tmp/a b.md"}); got != "go run ./integration/loadbench -duration 20s -out '/tmp/a b.md'" {
		t.Errorf("commandLine = %q", got)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-duration", "20s", "-sizes", "1KB, 10KB", "-configs", "plain,chain-cached"})
	if err != nil {
		t.Fatal(err)
	}
	if o.duration != 20*time.Second || len(o.sizes) != 2 || o.sizes[1] != (sizeSpec{"10KB", 10000}) || o.ndjsonBytes != 100e6 {
		t.Errorf("parsed %+v", o)
	}
	withEnv, err := parseFlags([]string{"-sidecar-env", "GOGC=400, GOMAXPROCS=1"})
	if err != nil || withEnv.sidecarEnv["GOGC"] != "400" || withEnv.sidecarEnv["GOMAXPROCS"] != "1" {
		t.Errorf("-sidecar-env: %v, %v", withEnv, err)
	}
	alt, err := parseFlags([]string{"-alt-bin", "bin/other"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(alt.configs, ","); got != "plain,chain-cached,chain-fresh,chain-cached-alt,chain-fresh-alt" || !filepath.IsAbs(alt.altBin) {
		t.Errorf("-alt-bin: configs %v, binary %q; want an -alt twin of each chain configuration and an absolute path (the sidecar runs in the repository root)", alt.configs, alt.altBin)
	}
	peers, err := parseFlags([]string{"-peers", "-sizes", "10KB"})
	if err != nil || strings.Join(peers.configs, ",") != "plain,chain-cached,chain-fresh,oidc-cached,oidc-fresh,oauth2-proxy-cached,oauth2-proxy-fresh" {
		t.Errorf("-peers: configs %v, %v", peers.configs, err)
	}
	users, err := parseFlags([]string{"-mode", "users", "-user-caches", "100,-1"})
	if err != nil || strings.Join(users.configs, ",") != "plain,chain-cached,users-cache-100,users-cache--1" {
		t.Errorf("users mode: configs %v, %v", users.configs, err)
	}
	for _, name := range append(append([]string{}, users.configs...), peers.configs...) {
		if _, err := specFor(name); err != nil {
			t.Errorf("specFor(%q): %v", name, err)
		}
	}
	for _, bad := range [][]string{
		{"-configs", "plain,nginx"},
		{"-sizes", "huge"},
		{"-mode", "fast"},
		{"-duration", "10ms"},
		{"-fresh-tokens", "100"},
		{"-cpuprofile", "x", "-configs", "plain"},
		{"extra"},
		{"-sidecar-env", "GOGC"},
		{"-mode", "users", "-user-caches", "0"},
		{"-mode", "users", "-users", "1"},
		{"-zipf", "1"},
		{"-zipf", "0.5"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
