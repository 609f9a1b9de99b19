package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// ndjsonResult is one NDJSON export streamed through a configuration.
type ndjsonResult struct {
	Config        string
	UpstreamBytes int64 // what the upstream generated
	OutBytes      int64 // what the client received
	Records       int64
	Elapsed       time.Duration
	BaselineKB    int64 // RSS just before the export
	RSS           RSSStats
}

// MBps is the upstream's bytes per second through the sidecar, in MB/s.
func (r ndjsonResult) MBps() float64 {
	return float64(r.UpstreamBytes) / 1e6 / r.Elapsed.Seconds()
}

// ndjsonExport streams o.ndjsonBytes of NDJSON through configuration name
// while sampling the sidecar's RSS. Each record must arrive as valid JSON,
// and through the chain without the fields the policy does not grant.
func (b *bench) ndjsonExport(ctx context.Context, name string) (ndjsonResult, error) {
	s := b.sidecars[name]
	if e := b.exports[name]; e != nil {
		s = e
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	export := func(n int64) (ndjsonResult, error) {
		res := ndjsonResult{Config: name, UpstreamBytes: n}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/v1/contacts/export?bytes="+strconv.FormatInt(n, 10), nil)
		req.Header.Set("Authorization", "Bearer "+b.tokens[name]())
		req.Header.Set("X-Tenant-ID", benchTenant)
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return res, fmt.Errorf("%s NDJSON export: %w", name, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			return res, fmt.Errorf("%s NDJSON export: status %s: %s\nsidecar output:\n%s", name, resp.Status, body, lastLines(s.Output(), 15))
		}
		r := bufio.NewReaderSize(resp.Body, 64<<10)
		for {
			line, err := r.ReadSlice('\n')
			res.OutBytes += int64(len(line))
			if len(bytes.TrimSpace(line)) > 0 {
				res.Records++
				// Every record is checked for a withheld field; one in a
				// hundred is parsed too, so the client keeps up.
				if (name != "plain" && bytes.Contains(line, []byte(`"ssn"`))) || (res.Records%100 == 1 && !json.Valid(line)) {
					return res, fmt.Errorf("%s NDJSON export: record %d is invalid or untrimmed: %.200s", name, res.Records, line)
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return res, fmt.Errorf("%s NDJSON export: after %d records: %w\nsidecar output:\n%s", name, res.Records, err, lastLines(s.Output(), 15))
			}
		}
		res.Elapsed = time.Since(t0)
		return res, nil
	}
	// A small export first, so that the measured one starts from a process
	// that has served this route once.
	if _, err := export(1 << 20); err != nil {
		return ndjsonResult{}, err
	}
	time.Sleep(500 * time.Millisecond)
	base, _, err := readStatus(s.PID())
	if err != nil {
		return ndjsonResult{}, err
	}
	b.log("streaming %s of NDJSON through %s", formatBytes(b.o.ndjsonBytes), name)
	var prof <-chan profileResult
	if b.o.cpuProfile != "" && b.o.profileSize == "ndjson" && b.o.profileConfig == name {
		prof = startProfile(s, b.o.profileSeconds)
	}
	sampler := sampleRSS(s.PID(), 20*time.Millisecond)
	res, err := export(b.o.ndjsonBytes)
	rss, serr := sampler.Stop()
	if prof != nil {
		pr := <-prof
		if pr.err != nil {
			return res, pr.err
		}
		if b.profile, err = saveProfiles(b.o.cpuProfile, name, "ndjson", pr); err != nil {
			return res, err
		}
	}
	if err != nil {
		return res, err
	}
	if serr != nil {
		return res, serr
	}
	res.BaselineKB, res.RSS = base, rss
	b.log("%s: %d records, %s out, %.1f MB/s, RSS %s → peak %s", name, res.Records, formatBytes(res.OutBytes), res.MBps(), mebibytes(base), mebibytes(rss.PeakKB))
	return res, nil
}

func formatBytes(n int64) string {
	return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + " MB"
}
