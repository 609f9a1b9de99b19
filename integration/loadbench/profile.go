package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

type profileResult struct {
	data                  []byte // CPU profile
	allocsBase, allocsEnd []byte // allocation profiles before and after it
	seconds               int
	err                   error
}

// startProfile asks the sidecar's admin API, in the background, for a CPU
// profile of the next seconds and for the allocation profile before and
// after, so that their difference is what those seconds allocated.
func startProfile(s *sidecar, seconds int) <-chan profileResult {
	ch := make(chan profileResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+30)*time.Second)
		defer cancel()
		res := profileResult{seconds: seconds}
		get := func(path string) []byte {
			if res.err != nil {
				return nil
			}
			data, err := s.adminGet(ctx, path)
			if err != nil {
				res.err = fmt.Errorf("profile of %s from its admin API: %w", s.Name, err)
			}
			return data
		}
		res.allocsBase = get("/debug/pprof/allocs")
		res.data = get(fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds))
		res.allocsEnd = get("/debug/pprof/allocs")
		ch <- res
	}()
	return ch
}

// saveProfiles writes the CPU profile to file and the allocation profiles
// next to it, and summarizes them.
func saveProfiles(file, config, size string, res profileResult) (*profileSummary, error) {
	base, end := file+".allocs-before", file+".allocs-after"
	for path, data := range map[string][]byte{file: res.data, base: res.allocsBase, end: res.allocsEnd} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return nil, err
		}
	}
	p := summarizeProfile(file, config, size, res.seconds)
	p.Allocs = pprofTop(end, "-top", "-sample_index=alloc_space", "-nodecount=25", "-base", base)
	p.AllocsCum = pprofTop(end, "-top", "-cum", "-sample_index=alloc_space", "-nodecount=40", "-base", base)
	return p, nil
}

// profileSummary is `go tool pprof -top` of a saved profile.
type profileSummary struct {
	File, Config, Size string
	Seconds            int
	Flat, Cum          string // the top lines by flat and by cumulative time
	Allocs, AllocsCum  string // bytes allocated during the profile
	Breakdown          string // markdown: CPU per request by chain stage
}

// addBreakdown fills p.Breakdown for requests answered during the profile.
func (p *profileSummary) addBreakdown(requests float64) {
	out := pprofTop(p.File, "-top", "-cum", "-unit=ms", "-nodefraction=0", "-nodecount=100000")
	total, stages, err := breakdown(out)
	if err != nil || total == 0 {
		return
	}
	p.Breakdown = breakdownTable(total, stages, requests)
}

func summarizeProfile(file, config, size string, seconds int) *profileSummary {
	p := &profileSummary{File: file, Config: config, Size: size, Seconds: seconds}
	p.Flat = pprofTop(file, "-top", "-nodecount=25")
	p.Cum = pprofTop(file, "-top", "-cum", "-nodecount=40")
	return p
}

func pprofTop(file string, args ...string) string {
	cmd := exec.Command("go", append(append([]string{"tool", "pprof"}, args...), file)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("go tool pprof failed: %v\n%s", err, out)
	}
	return strings.TrimRight(string(out), "\n")
}
