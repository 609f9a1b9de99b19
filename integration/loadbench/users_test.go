package main

import (
	"fmt"
	"math"
	"testing"
	"time"
)

func TestUserTrafficIsZipfAndTheSameForEveryCursor(t *testing.T) {
	tokens := make([]string, 1000)
	for i := range tokens {
		tokens[i] = fmt.Sprint("token-", i)
	}
	u := newUserTraffic(tokens, 1.1)
	a, b := u.cursor(), u.cursor()
	counts := map[string]int{}
	const n = 100_000
	for range n {
		ta, tb := a(), b()
		if ta != tb {
			t.Fatal("two cursors handed out different sequences")
		}
		counts[ta]++
	}
	if again := newUserTraffic(tokens, 1.1).cursor(); again() != u.tokens[u.order[0]] {
		t.Fatal("the sequence is not the same from one run to the next")
	}
	// Under Zipf(1.1) over 1000 users the most active user makes about
	// 1/H(1000, 1.1) ≈ 18% of the requests; under a uniform spread, 0.1%.
	top := 0
	for _, c := range counts {
		top = max(top, c)
	}
	if share := float64(top) / n; share < 0.12 || share > 0.25 {
		t.Errorf("the most active user made %.1f%% of the requests, want about 18%%", 100*share)
	}
	if requests, users := u.walked(); requests != n || users != len(counts) {
		t.Errorf("walked() = %d requests from %d users, want %d from %d", requests, users, n, len(counts))
	}
	uniform := newUserTraffic(tokens, 0).cursor()
	counts = map[string]int{}
	for range n {
		counts[uniform()]++
	}
	for _, c := range counts {
		if math.Abs(float64(c)-n/1000) > 60 {
			t.Fatalf("a user of the uniform spread made %d requests, want about %d", c, n/1000)
		}
	}
}

func TestMissCostsPairFreshWithCached(t *testing.T) {
	row := func(config string, cpu time.Duration) Row {
		return Row{Result: Result{Config: config, Size: "10KB", Summary: Summary{Requests: 1000, CPU: 1000 * cpu}}}
	}
	rows := []Row{
		row("plain", 200*time.Microsecond),
		row("chain-cached", 260*time.Microsecond),
		row("chain-fresh", 350*time.Microsecond),
		row("chain-cached-alt", 270*time.Microsecond),
		row("chain-fresh-alt", 480*time.Microsecond),
		row("oidc-fresh", 300*time.Microsecond), // no cached twin: no row
		row("oauth2-proxy-cached", 500*time.Microsecond),
		row("oauth2-proxy-fresh", 510*time.Microsecond), // no cache: no row
	}
	costs := missCosts(rows, rawVerifyResult{Verifies: 10, CPU: 10 * 100 * time.Microsecond})
	if len(costs) != 2 {
		t.Fatalf("costs %+v, want chain and chain-alt", costs)
	}
	if c := costs[0]; c.Cached != "chain-cached" || c.Added != 90*time.Microsecond || math.Abs(c.Ratio-0.9) > 1e-9 {
		t.Errorf("chain: %+v", c)
	}
	if c := costs[1]; c.Cached != "chain-cached-alt" || c.Added != 210*time.Microsecond || math.Abs(c.Ratio-2.1) > 1e-9 {
		t.Errorf("chain-alt: %+v", c)
	}
	if c := missCosts(rows, rawVerifyResult{}); !math.IsNaN(c[0].Ratio) {
		t.Error("a ratio without a raw Verify baseline")
	}
}
