package scopetrim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/alysio/privacy-sidecar/internal/contacts"
	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// proxyWriteSize is what reverse_proxy copies from the upstream per write
// (defaultBufferSize in caddyhttp/reverseproxy/streaming.go); for a body
// without Content-Length it flushes after every write (flushInterval -1).
const proxyWriteSize = 32 << 10

// exportLines is an NDJSON export of about size bytes, made of the load
// harness's records (integration/loadbench: exportRecords, 4096 distinct
// contacts repeated), the same records as one JSON array, and as JSON
// arrays of at most pageSize bytes (pages of a list endpoint).
func exportLines(size, pageSize int) (ndjson, array []byte, pages [][]byte) {
	var records [][]byte
	for i := range 4096 {
		b, _ := json.Marshal(contacts.At(i))
		records = append(records, b)
	}
	var page []byte
	for i := 0; len(ndjson) < size; i++ {
		r := records[i%len(records)]
		ndjson = append(append(ndjson, r...), '\n')
		array = append(append(array, ','), r...)
		if len(page) > 0 && len(page)+len(r)+2 > pageSize {
			page[0] = '['
			pages = append(pages, append(page, ']'))
			page = nil
		}
		page = append(append(page, ','), r...)
	}
	array[0], page[0] = '[', '['
	return ndjson, append(array, ']'), append(pages, append(page, ']'))
}

// exportBenchPolicy is policies/crm-export.json with a second endpoint,
// /v1/contacts/array, granting the same fields of every element of a JSON
// array, so the same records can be trimmed as one JSON document.
func exportBenchPolicy(tb testing.TB) string {
	var pf map[string]any
	if err := json.Unmarshal(mustRead(tb, filepath.Join("..", "..", "policies", "crm-export.json")), &pf); err != nil {
		tb.Fatal(err)
	}
	delete(pf, "$schema")
	eps := pf["endpoints"].([]any)
	export := eps[0].(map[string]any)
	fields := map[string]any{}
	for scope, list := range export["fields"].(map[string]any) {
		var prefixed []any
		for _, f := range list.([]any) {
			switch f := f.(type) {
			case string:
				prefixed = append(prefixed, "#."+f)
			case map[string]any:
				g := map[string]any{}
				for k, v := range f {
					g[k] = v
				}
				g["path"] = "#." + f["path"].(string)
				prefixed = append(prefixed, g)
			}
		}
		fields[scope] = prefixed
	}
	pf["endpoints"] = append(eps, map[string]any{
		"match":  map[string]any{"methods": []any{"GET"}, "path": "/v1/contacts/array"},
		"fields": fields,
	})
	out, err := json.Marshal(pf)
	if err != nil {
		tb.Fatal(err)
	}
	return string(out)
}

// chunkedUpstream writes body in proxyWriteSize pieces with a flush after
// each, as reverse_proxy copies a streamed answer. A JSON body comes with
// its Content-Length, as a page does, so that the buffer is sized once.
func chunkedUpstream(contentType string, body []byte) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", contentType)
		if contentType == "application/json" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		for b := body; len(b) > 0; {
			n := min(proxyWriteSize, len(b))
			if _, err := w.Write(b[:n]); err != nil {
				return err
			}
			_ = rc.Flush()
			b = b[n:]
		}
		return nil
	})
}

// countingClient is a client connection that throws the body away and
// counts what reached it.
type countingClient struct {
	header          http.Header
	status          int
	writes, flushes int
	bytes           int64
}

func (c *countingClient) Header() http.Header    { return c.header }
func (c *countingClient) WriteHeader(status int) { c.status = status }
func (c *countingClient) Write(p []byte) (int, error) {
	c.writes++
	c.bytes += int64(len(p))
	return len(p), nil
}
func (c *countingClient) Flush() { c.flushes++ }

func (c *countingClient) reset() {
	clear(c.header)
	c.status, c.writes, c.flushes, c.bytes = 0, 0, 0, 0
}

// exportRequest is a GET of path by a caller with the harness's scopes.
func exportRequest(path string) *http.Request {
	id := &sidecar.Identity{Subject: "bench", Scopes: []string{"contacts:read", "contacts:pii", "contacts:all"}}
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	r, d := sidecar.WithDecision(r)
	d.Tenant = "acme"
	return sidecar.WithIdentity(r, id)
}

// BenchmarkNDJSON streams an 8 MB export of the load harness's records
// through ServeHTTP as reverse_proxy would (32 KiB writes, a flush after
// each) and, as baselines, trims the same records through the buffered
// JSON path, sent as one JSON array and as 10 KB pages (the load harness's
// page size, where the issue measured the JSON trimmer). "x_json_array"
// and "x_json_pages" are the NDJSON stream's time as a multiple of each
// baseline's, measured in the same run (the goal is about 1 or
// less); "client_writes" and "client_flushes" count what reached the
// client per run (per page for the pages).
func BenchmarkNDJSON(b *testing.B) {
	ndjson, array, pages := exportLines(8<<20, 10<<10)
	m := newHandler(b, exportBenchPolicy(b), func(m *ScopeTrim) { m.MaxBody = 2 * int64(len(array)) })
	client := &countingClient{header: http.Header{}}
	run := func(path, contentType string, body []byte) func() {
		upstream := chunkedUpstream(contentType, body)
		return func() {
			client.reset()
			if err := m.ServeHTTP(client, exportRequest(path), upstream); err != nil || client.status != http.StatusOK {
				b.Fatalf("%s: status %d, err %v", path, client.status, err)
			}
		}
	}
	stream := run("/v1/contacts/export", "application/x-ndjson", ndjson)
	buffered := run("/v1/contacts/array", "application/json", array)
	var pageRuns []func()
	for _, p := range pages {
		pageRuns = append(pageRuns, run("/v1/contacts/array", "application/json", p))
	}
	pagesSize := 0
	for _, p := range pages {
		pagesSize += len(p)
	}
	paged := func() {
		for _, run := range pageRuns {
			run()
		}
	}
	baselines := map[string]float64{} // ns/op of the last run of each baseline
	for _, c := range []struct {
		name string
		run  func()
		size int
	}{{"json_array", buffered, len(array)}, {"json_pages", paged, pagesSize}, {"ndjson", stream, len(ndjson)}} {
		b.Run("8MB/"+c.name, func(b *testing.B) {
			c.run()
			b.SetBytes(int64(c.size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c.run()
			}
			b.StopTimer()
			nsPerOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(float64(client.writes), "client_writes")
			b.ReportMetric(float64(client.flushes), "client_flushes")
			if c.name != "ndjson" {
				baselines[c.name] = nsPerOp
				return
			}
			for name, base := range baselines {
				b.ReportMetric(nsPerOp/base, "x_"+name)
			}
		})
	}
}

// TestNDJSONBenchmarkTrims keeps BenchmarkNDJSON honest: the NDJSON, the
// array and the pages keep the same fields of every record and withhold
// the same ones.
func TestNDJSONBenchmarkTrims(t *testing.T) {
	ndjson, array, pages := exportLines(256<<10, 10<<10)
	m := newHandler(t, exportBenchPolicy(t), nil)
	id := &sidecar.Identity{Subject: "bench", Scopes: []string{"contacts:read", "contacts:pii", "contacts:all"}}
	upstream := func(contentType string, body []byte) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			_ = chunkedUpstream(contentType, body).ServeHTTP(w, r)
		}
	}
	lines := serve(t, m, get("/v1/contacts/export"), id, upstream("application/x-ndjson", ndjson))
	doc := serve(t, m, get("/v1/contacts/array"), id, upstream("application/json", array))
	if lines.rec.Code != 200 || doc.rec.Code != 200 {
		t.Fatalf("status %d and %d", lines.rec.Code, doc.rec.Code)
	}
	var elements, paged []json.RawMessage
	if err := json.Unmarshal(doc.rec.Body.Bytes(), &elements); err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		page := serve(t, m, get("/v1/contacts/array"), id, upstream("application/json", p))
		var some []json.RawMessage
		if err := json.Unmarshal(page.rec.Body.Bytes(), &some); err != nil || page.rec.Code != 200 || len(p) > 10<<10 {
			t.Fatalf("page of %d bytes: %d %v", len(p), page.rec.Code, err)
		}
		paged = append(paged, some...)
	}
	got := bytes.Split(bytes.TrimSuffix(lines.rec.Body.Bytes(), []byte("\n")), []byte("\n"))
	if len(got) != len(elements) || len(got) != len(paged) || len(got) != bytes.Count(ndjson, []byte("\n")) {
		t.Fatalf("%d lines, %d elements, %d in pages, %d records", len(got), len(elements), len(paged), bytes.Count(ndjson, []byte("\n")))
	}
	for i := range got {
		if !bytes.Equal(got[i], elements[i]) || !bytes.Equal(got[i], paged[i]) {
			t.Fatalf("record %d: %s, as an element %s, in a page %s", i, got[i], elements[i], paged[i])
		}
	}
	body := lines.rec.Body.String()
	if strings.Contains(body, `"ssn"`) || strings.Contains(body, `"tags"`) || !strings.Contains(body, `"notes":"[redacted]"`) {
		t.Fatalf("the benchmark does not exercise trimming: %.300s", body)
	}
}
