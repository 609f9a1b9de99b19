package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RSSStats is the sidecar's resident memory over one measured phase, from
// /proc/PID/status, in KiB.
type RSSStats struct {
	StartKB int64 // first sample of the phase
	EndKB   int64 // last sample of the phase
	PeakKB  int64 // largest VmRSS sampled during the phase
	HWMKB   int64 // VmHWM at the end: the process's peak since it started
	Samples int
}

// Growth is the end of the phase minus its start.
func (s RSSStats) Growth() int64 { return s.EndKB - s.StartKB }

// PeakGrowth is the peak of the phase minus its start.
func (s RSSStats) PeakGrowth() int64 { return s.PeakKB - s.StartKB }

// parseStatus reads VmRSS and VmHWM (KiB) from the text of /proc/PID/status.
func parseStatus(text string) (rssKB, hwmKB int64, err error) {
	found := 0
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, 0, fmt.Errorf("unexpected %s line %q in /proc status", name, sc.Text())
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("unexpected %s value %q: %v", name, fields[0], err)
		}
		if name == "VmRSS" {
			rssKB = n
		} else {
			hwmKB = n
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("VmRSS or VmHWM missing from /proc status (is the process still running?)")
	}
	return rssKB, hwmKB, nil
}

func readStatus(pid int) (rssKB, hwmKB int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStatus(string(b))
}

// rssSampler polls a process's /proc status until stopped.
type rssSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	stats RSSStats
	err   error
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	rss, hwm, err := readStatus(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return
	}
	if s.stats.Samples == 0 {
		s.stats.StartKB = rss
	}
	s.stats.Samples++
	s.stats.EndKB = rss
	s.stats.PeakKB = max(s.stats.PeakKB, rss)
	s.stats.HWMKB = hwm
}

// Stop takes a last sample and returns the statistics.
func (s *rssSampler) Stop() (RSSStats, error) {
	close(s.stop)
	<-s.done
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats, s.err
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// parseStatCPU returns user plus system CPU time from the text of
// /proc/PID/stat (fields 14 and 15, counted after the parenthesised command
// name, which may itself contain spaces).
func parseStatCPU(text string) (time.Duration, error) {
	end := strings.LastIndexByte(text, ')')
	if end < 0 {
		return 0, fmt.Errorf("unexpected /proc stat %q", text)
	}
	fields := strings.Fields(text[end+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc stat %q", text)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected CPU time %q in /proc stat", f)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// processCPU is the CPU time a process has used so far.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}
