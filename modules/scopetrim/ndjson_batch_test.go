package scopetrim

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// writeCountingRecorder is a client connection that keeps the answer and
// counts the writes and flushes that reached it.
type writeCountingRecorder struct {
	*httptest.ResponseRecorder
	writes, flushes int
}

func (w *writeCountingRecorder) Write(p []byte) (int, error) {
	w.writes++
	return w.ResponseRecorder.Write(p)
}

func (w *writeCountingRecorder) Flush() {
	w.flushes++
	w.ResponseRecorder.Flush()
}

// serveWrites runs a GET of path through m for id; the upstream makes one
// write and one flush per element of writes, as reverse_proxy copies. The
// panic of an aborted stream is recovered and returned.
func serveWrites(t *testing.T, m *ScopeTrim, path string, id *sidecar.Identity, writes ...string) (w *writeCountingRecorder, d *sidecar.Decision, aborted any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	r, d = sidecar.WithDecision(r)
	d.Tenant = "acme"
	r = sidecar.WithIdentity(r, id)
	w = &writeCountingRecorder{ResponseRecorder: httptest.NewRecorder()}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		for _, p := range writes {
			if _, err := w.Write([]byte(p)); err != nil {
				return err
			}
			_ = rc.Flush()
		}
		return nil
	})
	defer func() { aborted = recover() }()
	if err := m.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
	return w, d, nil
}

// The records trimmed from one write of the proxy reach the client as one
// write and one flush; a write that completes no record sends nothing.
func TestNDJSONOneClientWritePerProxyWrite(t *testing.T) {
	m := newHandler(t, "", nil)
	rec := func(id string) string { return `{"data":[{"id":"` + id + `","email":"ada@example.com"}]}` + "\n" }
	w, d, aborted := serveWrites(t, m, "/v1/contacts/export", who([]string{"contacts:read"}, nil),
		rec("1")+rec("2")+rec("3"),
		rec("4")+`{"data":[{"id":`, // the fifth record ends in the next write
		`"5"}]}`+"\n"+rec("6"),
		`{"data":[{"id":"7"}]}`, // no newline: sent when the stream ends
	)
	if aborted != nil {
		t.Fatalf("aborted: %v", aborted)
	}
	var want strings.Builder
	for _, id := range []string{"1", "2", "3", "4", "5", "6", "7"} {
		want.WriteString(`{"data":[{"id":"` + id + `"}]}` + "\n")
	}
	if w.Code != 200 || w.Body.String() != want.String() {
		t.Fatalf("%d %q", w.Code, w.Body)
	}
	if w.writes != 4 || w.flushes != 3 {
		t.Fatalf("%d writes and %d flushes reached the client, want 4 and 3", w.writes, w.flushes)
	}
	if d.StreamRecords != 7 || d.Stream != sidecar.StreamComplete {
		t.Fatalf("decision %+v", d)
	}
}

// A write of the proxy whose trimmed records exceed maxBatch is sent in
// more than one write, so the batch stays bounded.
func TestNDJSONBatchIsBounded(t *testing.T) {
	m := newHandler(t, "", nil)
	record := `{"data":[{"id":"` + strings.Repeat("x", 1000) + `"}]}` + "\n"
	n := 3 * maxBatch / len(record)
	w, d, aborted := serveWrites(t, m, "/v1/contacts/export", who([]string{"contacts:read"}, nil), strings.Repeat(record, n))
	if aborted != nil || w.Code != 200 || w.Body.String() != strings.Repeat(record, n) {
		t.Fatalf("aborted %v, status %d, %d bytes", aborted, w.Code, w.Body.Len())
	}
	if w.writes < 3 || w.writes > 4 || d.StreamRecords != n {
		t.Fatalf("%d writes for %d bytes, %d records counted", w.writes, w.Body.Len(), d.StreamRecords)
	}
}

// A bad record in the middle of one write of the proxy ends the stream
// there: the records before it are sent, nothing of it (not even what was
// trimmed before its error) and nothing after it.
func TestNDJSONBadRecordMidWriteStopsAtThatLine(t *testing.T) {
	m := newHandler(t, "", nil)
	w, d, aborted := serveWrites(t, m, "/v1/contacts/export", who([]string{"contacts:read"}, nil),
		`{"data":[{"id":1,"email":"ada@example.com"}]}`+"\n"+`{"data":[{"id":2}]}`+"\n"+
			`{"data":[{"id":"before-the-error","name":"x","name":"123-45-6789"}]}`+"\n"+
			`{"data":[{"id":4}]}`+"\n",
		`{"data":[{"id":5}]}`+"\n",
	)
	if aborted != http.ErrAbortHandler {
		t.Fatalf("recovered %v, want http.ErrAbortHandler", aborted)
	}
	if w.Body.String() != `{"data":[{"id":1}]}`+"\n"+`{"data":[{"id":2}]}`+"\n" {
		t.Fatalf("body %q", w.Body)
	}
	if w.writes != 1 || w.flushes != 1 {
		t.Fatalf("%d writes and %d flushes, want the good records in one write, flushed", w.writes, w.flushes)
	}
	if d.StreamRecords != 2 || d.Stream != sidecar.StreamCut || d.Reason != sidecar.ReasonUpstreamDuplicate {
		t.Fatalf("decision %+v", d)
	}
}

// A bad first record in a write refuses the stream with a 502 even when
// good records follow it in the same write.
func TestNDJSONBadFirstRecordOfABatchIsRefused(t *testing.T) {
	m := newHandler(t, "", nil)
	w, _, aborted := serveWrites(t, m, "/v1/contacts/export", who([]string{"contacts:read"}, nil),
		`{"data":[{"id":1,"id":2}]}`+"\n"+`{"data":[{"id":3}]}`+"\n")
	if aborted != nil || w.Code != http.StatusBadGateway || strings.Contains(w.Body.String(), `"id":3`) || w.writes != 1 {
		t.Fatalf("aborted %v, %d %q after %d writes", aborted, w.Code, w.Body, w.writes)
	}
}

// Lines that record rules withhold are left out of the batch they were in.
func TestNDJSONWithheldLinesLeaveTheBatch(t *testing.T) {
	m := newHandler(t, recordsPolicy, nil)
	w, d, aborted := serveWrites(t, m, "/v1/contacts/export", rep("contacts:read"),
		`{"id":"c1","name":"Ada","owner_id":"u1","ssn":"1"}`+"\n"+
			`{"id":"c2","name":"Bob","owner_id":"u9","ssn":"2"}`+"\n"+
			`{"id":"c3","name":"Cy","owner_id":"u2","ssn":"3"}`+"\n"+
			`{"id":"c4","name":"Di","owner_id":"u9","ssn":"4"}`+"\n")
	want := `{"id":"c1","name":"Ada","owner_id":"u1"}` + "\n" + `{"id":"c3","name":"Cy","owner_id":"u2"}` + "\n"
	if aborted != nil || w.Code != 200 || w.Body.String() != want || w.writes != 1 {
		t.Fatalf("aborted %v, %d %q after %d writes", aborted, w.Code, w.Body, w.writes)
	}
	if d.StreamRecords != 2 || d.RecordsWithheld != 2 {
		t.Fatalf("decision %+v", d)
	}
}
