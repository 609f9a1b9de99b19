package main

import (
	"os"
	"testing"
	"time"
)

const statusSample = `Name:	privacy-sidecar
Umask:	0022
State:	S (sleeping)
VmPeak:	 1290012 kB
VmSize:	 1290012 kB
VmHWM:	   71234 kB
VmRSS:	   65432 kB
RssAnon:	   40000 kB
Threads:	12
`

func TestParseStatus(t *testing.T) {
	rss, hwm, err := parseStatus(statusSample)
	if err != nil || rss != 65432 || hwm != 71234 {
		t.Fatalf("parseStatus = %d, %d, %v; want 65432, 71234, nil", rss, hwm, err)
	}
	for name, text := range map[string]string{
		"no RSS (zombie)": "Name:\tx\nVmHWM:\t 10 kB\n",
		"odd unit":        "VmRSS:\t10 MB\nVmHWM:\t10 kB\n",
		"not a number":    "VmRSS:\tten kB\nVmHWM:\t10 kB\n",
	} {
		if _, _, err := parseStatus(text); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
}

func TestRSSSamplerOnThisProcess(t *testing.T) {
	s := sampleRSS(os.Getpid(), 5*time.Millisecond)
	ballast := make([]byte, 32<<20)
	for i := range ballast { // touch every page so that it is resident
		ballast[i] = byte(i)
	}
	time.Sleep(30 * time.Millisecond)
	stats, err := s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if stats.Samples < 2 || stats.StartKB <= 0 || stats.PeakKB < stats.StartKB || stats.HWMKB < stats.PeakKB {
		t.Errorf("implausible samples: %+v", stats)
	}
	if stats.PeakGrowth() < 16<<10 {
		t.Errorf("touching 32 MiB grew the sampled peak by only %d KiB: %+v", stats.PeakGrowth(), stats)
	}
	_ = ballast[len(ballast)-1]
}

func TestRSSSamplerReportsAGoneProcess(t *testing.T) {
	s := sampleRSS(1<<30, time.Millisecond) // no such pid
	if _, err := s.Stop(); err == nil {
		t.Error("sampling a process that does not exist reported no error")
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses, utime 250 and stime 50 ticks.
	stat := "4242 (privacy (side) car) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 12 0 100 1000 200\n"
	got, err := parseStatCPU(stat)
	if err != nil || got != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	if _, err := parseStatCPU("4242 (x) S 1 2"); err == nil {
		t.Error("a short stat line parsed")
	}
	self, err := processCPU(os.Getpid())
	if err != nil || self < 0 {
		t.Errorf("processCPU(self) = %v, %v", self, err)
	}
}
