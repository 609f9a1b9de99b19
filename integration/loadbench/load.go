package main

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// newClient is the one HTTP client of the run: keep-alive connections,
// enough idle ones per host for every worker, no transparent gzip (the
// client asks for identity, as the connector's callers do).
func newClient(concurrency int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			MaxIdleConns:        4 * concurrency,
			MaxIdleConnsPerHost: 2 * concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
		Timeout: 30 * time.Second,
	}
}

// target is what the workers send: a URL, and the bearer token and tenant
// header of each request.
type target struct {
	url    string
	tenant string
	token  func() string // called once per request; "" sends no token
}

// errorSample is one failed request, kept for the report.
type errorSample struct {
	Status int
	Detail string
}

// loadResult is a segment's raw measurements.
type loadResult struct {
	Summary
	Samples   []errorSample
	latencies []time.Duration // of successful requests, sorted
}

// runLoad drives tgt with a closed loop of concurrency workers for d: each
// worker sends a request, reads the whole body, and sends the next.
func runLoad(ctx context.Context, client *http.Client, tgt target, concurrency int, d time.Duration) loadResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		errors  atomic.Int64
		bytes   atomic.Int64
		mu      sync.Mutex
		samples []errorSample
		lat     = make([][]time.Duration, concurrency)
		wg      sync.WaitGroup
	)
	fail := func(s errorSample) {
		errors.Add(1)
		mu.Lock()
		if len(samples) < 5 {
			samples = append(samples, s)
		}
		mu.Unlock()
	}
	start := time.Now()
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 1<<14)
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tgt.url, nil)
				if tok := tgt.token(); tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				if tgt.tenant != "" {
					req.Header.Set("X-Tenant-ID", tgt.tenant)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						fail(errorSample{Detail: err.Error()})
					}
					continue
				}
				if resp.StatusCode < 200 || resp.StatusCode > 299 {
					body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
					resp.Body.Close()
					fail(errorSample{Status: resp.StatusCode, Detail: string(body)})
					continue
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				elapsed := time.Since(t0)
				bytes.Add(n)
				if err != nil {
					if ctx.Err() == nil {
						fail(errorSample{Status: resp.StatusCode, Detail: "reading the body: " + err.Error()})
					}
					continue
				}
				mine = append(mine, elapsed)
			}
			lat[w] = mine
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	return loadResult{Summary: summarize(all, errors.Load(), elapsed, bytes.Load()), Samples: samples, latencies: all}
}

// fetchOnce sends one request and returns its status, headers and body.
func fetchOnce(ctx context.Context, client *http.Client, tgt target) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tgt.url, nil)
	if err != nil {
		return nil, nil, err
	}
	if tok := tgt.token(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if tgt.tenant != "" {
		req.Header.Set("X-Tenant-ID", tgt.tenant)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}
