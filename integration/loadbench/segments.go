package main

import (
	"context"
	"fmt"
	"time"
)

// accum pools one configuration and size over the rounds.
type accum struct {
	latencies []time.Duration
	errors    int64
	bytes     int64
	elapsed   time.Duration
	cpu       time.Duration
	rss       RSSStats
	samples   []errorSample
}

// Cache lookups oidc_auth counted during a configuration's measured phases.
type cacheCount struct{ hits, misses float64 }

const (
	cacheHitMetric  = `sidecar_oidc_auth_token_cache_total{result="hit"}`
	cacheMissMetric = `sidecar_oidc_auth_token_cache_total{result="miss"}`
)

// loadPhase runs every segment (configurations interleaved within a size,
// sizes within a round) and adds the rows to the report.
func (b *bench) loadPhase(ctx context.Context, rep *report) error {
	o := b.o
	acc := map[[2]string]*accum{}
	caches := map[string]*cacheCount{}
	for round := range o.rounds {
		if o.rawVerify && b.fresh != nil {
			rv, err := b.rawVerify(ctx, min(o.duration, 5*time.Second))
			if err != nil {
				return err
			}
			rep.rawVerify.Verifies += rv.Verifies
			rep.rawVerify.CPU += rv.CPU
			b.log("round %d  go-oidc raw Verify: %d verifies, %d µs CPU each", round+1, rv.Verifies, rv.PerVerify().Microseconds())
		}
		for _, size := range o.sizes {
			for _, name := range o.configs {
				s, tgt := b.sidecars[name], b.target(name, size.Label)
				if o.warmup > 0 {
					runLoad(ctx, b.client, tgt, o.concurrency, o.warmup)
				}
				var prof <-chan profileResult
				if o.cpuProfile != "" && round == 0 && name == o.profileConfig && size.Label == o.profileSize {
					secs := min(o.profileSeconds, max(1, int(o.duration.Seconds())-1))
					prof = startProfile(s, secs)
				}
				hits0, _ := s.metric(cacheHitMetric)
				miss0, _ := s.metric(cacheMissMetric)
				cpu0, err := processCPU(s.PID())
				if err != nil {
					return fmt.Errorf("%s: reading its CPU time: %w", name, err)
				}
				sampler := sampleRSS(s.PID(), o.sampleEvery)
				lr := runLoad(ctx, b.client, tgt, o.concurrency, o.duration)
				rss, err := sampler.Stop()
				cpu1, cerr := processCPU(s.PID())
				if err == nil {
					err = cerr
				}
				lr.CPU = cpu1 - cpu0
				if err != nil {
					return fmt.Errorf("%s: reading its memory: %w\nsidecar output:\n%s", name, err, lastLines(s.Output(), 15))
				}
				if name != "plain" {
					hits1, err1 := s.metric(cacheHitMetric)
					miss1, err2 := s.metric(cacheMissMetric)
					if err1 == nil && err2 == nil {
						c := caches[name]
						if c == nil {
							c = &cacheCount{}
							caches[name] = c
						}
						c.hits += hits1 - hits0
						c.misses += miss1 - miss0
					}
				}
				a := acc[[2]string{name, size.Label}]
				if a == nil {
					a = &accum{rss: rss}
					acc[[2]string{name, size.Label}] = a
				}
				a.latencies = append(a.latencies, lr.latencies...)
				a.errors += lr.Errors
				a.bytes += lr.Bytes
				a.elapsed += lr.Elapsed
				a.cpu += lr.CPU
				a.rss.EndKB = rss.EndKB
				a.rss.PeakKB = max(a.rss.PeakKB, rss.PeakKB)
				a.rss.HWMKB = rss.HWMKB
				a.rss.Samples += rss.Samples
				a.samples = append(a.samples, lr.Samples...)
				b.log("round %d  %-12s %-6s %8.0f req/s  p50 %s  p99 %s  errors %d  CPU/req %d µs  RSS %s→%s",
					round+1, name, size.Label, lr.RPS(), millis(lr.P50), millis(lr.P99), lr.Errors,
					lr.CPUPerRequest().Microseconds(), mebibytes(rss.StartKB), mebibytes(rss.EndKB))
				if prof != nil {
					res := <-prof
					if res.err != nil {
						return res.err
					}
					p, err := saveProfiles(o.cpuProfile, name, size.Label, res)
					if err != nil {
						return err
					}
					p.addBreakdown(lr.RPS() * float64(res.seconds))
					rep.profile = p
				}
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
	}
	var results []Result
	for _, size := range o.sizes {
		for _, name := range o.configs {
			a := acc[[2]string{name, size.Label}]
			sum := summarize(a.latencies, a.errors, a.elapsed, a.bytes)
			sum.CPU = a.cpu
			results = append(results, Result{Config: name, Size: size.Label, Summary: sum, RSS: a.rss})
			for _, e := range a.samples {
				rep.errorSamples = append(rep.errorSamples, fmt.Sprintf("%s %s: status %d %.300s", name, size.Label, e.Status, e.Detail))
			}
		}
	}
	rep.rows = compare(results, "plain")
	if b.users != nil {
		n, users := b.users.walked()
		rep.usersSeen = fmt.Sprintf("each configuration walks the same sequence, whose first %d requests (its warm-up and measured phases) came from %d distinct users", n, users)
	}
	rep.caches = caches
	return nil
}
