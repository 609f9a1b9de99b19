package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/alysio/privacy-sidecar/internal/contacts"
)

// upstream is the connector the sidecar proxies to: fixed contact lists by
// size, and a streamed NDJSON export generated on the fly.
type upstream struct {
	URL    string // host:port, as reverse_proxy takes it
	docs   map[string][]byte
	server *http.Server

	once    sync.Once
	records [][]byte // of the NDJSON export
}

// startUpstream serves GET /v1/contacts?size=<label> from docs and
// GET /v1/contacts/export?bytes=N as NDJSON of about N bytes.
func startUpstream(docs map[string][]byte) (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	u := &upstream{URL: ln.Addr().String(), docs: docs}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/contacts", u.serveContacts)
	mux.HandleFunc("GET /v1/contacts/export", u.serveExport)
	u.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go u.server.Serve(ln)
	return u, nil
}

func (u *upstream) Close() error { return u.server.Close() }

func (u *upstream) serveContacts(w http.ResponseWriter, r *http.Request) {
	doc, ok := u.docs[r.URL.Query().Get("size")]
	if !ok {
		http.Error(w, "unknown size", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
	w.Write(doc)
}

// exportCycle is how many distinct records the export repeats: encoding
// each record afresh would make the harness, not the sidecar, the limit.
const exportCycle = 4096

// serveExport streams contacts as NDJSON until about ?bytes= bytes are
// written, without holding more than a buffer of them.
func (u *upstream) serveExport(w http.ResponseWriter, r *http.Request) {
	total, err := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
	if err != nil || total <= 0 {
		http.Error(w, "bytes must be a positive integer", http.StatusBadRequest)
		return
	}
	records := u.exportRecords()
	w.Header().Set("Content-Type", "application/x-ndjson")
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 32<<10)
	for i := 0; cw.n+int64(bw.Buffered()) < total; i++ {
		if _, err := bw.Write(records[i%len(records)]); err != nil {
			return // the client went away
		}
	}
	bw.Flush()
}

// exportRecords encodes the export's records once, each with its newline.
func (u *upstream) exportRecords() [][]byte {
	u.once.Do(func() {
		for i := range exportCycle {
			b, _ := json.Marshal(contacts.At(i))
			u.records = append(u.records, append(b, '\n'))
		}
	})
	return u.records
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
