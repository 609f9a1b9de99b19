package scopetrim

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// committing returns a request whose decision records every Commit: what
// the client had received at that moment, and the arguments. fail makes
// the commit fail, as a full audit disk does.
type commitProbe struct {
	calls      int
	status     int
	bytes      int64
	bodyBefore int
	fail       bool
}

func committing(t *testing.T, method, target string, p *commitProbe, rec func() *httptest.ResponseRecorder) *http.Request {
	t.Helper()
	req, d := sidecar.WithDecision(httptest.NewRequest(method, target, nil))
	d.SetCommit(func(status int, bytes int64) error {
		p.calls++
		p.status, p.bytes = status, bytes
		if r := rec(); r != nil {
			p.bodyBefore = r.Body.Len()
		}
		if p.fail {
			return errors.New("no space left on device")
		}
		return nil
	})
	return req
}

func TestReleaseWaitsForTheRecord(t *testing.T) {
	m := newHandler(t, "", nil)
	var res result
	p := &commitProbe{}
	req := committing(t, "GET", "/v1/contacts", p, func() *httptest.ResponseRecorder { return res.rec })
	res = serveKeep(t, m, req, who([]string{"contacts:read"}, nil), &res, jsonUpstream(200, contactsDoc))
	if res.rec.Code != 200 || p.calls != 1 || p.status != 200 || p.bytes != int64(res.rec.Body.Len()) || p.bodyBefore != 0 {
		t.Fatalf("status %d, commit %+v, body %d bytes: the record must be committed once, before any byte, with the body's length",
			res.rec.Code, p, res.rec.Body.Len())
	}
}

func TestReleaseRefusedWhenTheRecordFails(t *testing.T) {
	m := newHandler(t, "", nil)
	cases := []struct {
		name     string
		method   string
		path     string
		upstream func(http.ResponseWriter, *http.Request)
	}{
		{"buffered", "GET", "/v1/contacts", jsonUpstream(200, contactsDoc, "X-Total-Count: 1042", "Link: </v1/contacts?cursor=c2>")},
		{"HEAD", "HEAD", "/v1/contacts", jsonUpstream(200, contactsDoc)},
		{"no body", "GET", "/v1/contacts", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }},
		{"upstream error", "GET", "/v1/contacts", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`"id" db down`))
		}},
		{"ndjson", "GET", "/v1/contacts/export", ndjsonUpstream(`{"data":[{"id":1,"email":"ada@example.com"}]}`+"\n", `{"data":[{"id":2}]}`+"\n")},
		{"empty ndjson", "GET", "/v1/contacts/export", ndjsonUpstream()},
		{"gzip ndjson", "GET", "/v1/contacts/export", compressedNDJSON("gzip", `{"data":[{"id":1,"email":"ada@example.com"}]}`+"\n")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var res result
			p := &commitProbe{fail: true}
			req := committing(t, c.method, c.path, p, func() *httptest.ResponseRecorder { return res.rec })
			res = serveKeep(t, m, req, who([]string{"contacts:read"}, nil), &res, c.upstream)
			if p.calls != 1 || p.bodyBefore != 0 {
				t.Fatalf("commit %+v", p)
			}
			assertProblem(t, res, http.StatusServiceUnavailable, sidecar.ReasonAuditUnavailable)
			if strings.Contains(res.rec.Body.String(), `"id"`) {
				t.Fatalf("data released without a record: %s", res.rec.Body)
			}
			if h := res.rec.Header(); h.Get("X-Total-Count") != "" || h.Get("Link") != "" || h.Get("Content-Type") != sidecar.ContentTypeProblem {
				t.Fatalf("the refusal carries the answer's headers: %v", h)
			}
			if res.decision.Stream != "" {
				t.Fatalf("stream %q for a stream never started", res.decision.Stream)
			}
		})
	}
}

func TestNDJSONRecordsItsStartAndEnd(t *testing.T) {
	m := newHandler(t, "", nil)
	var res result
	p := &commitProbe{}
	req := committing(t, "GET", "/v1/contacts/export", p, func() *httptest.ResponseRecorder { return res.rec })
	res = serveKeep(t, m, req, who([]string{"contacts:read"}, nil), &res, ndjsonUpstream(
		`{"data":[{"id":1,"email":"ada@example.com"}]}`+"\n", "\n", `{"data":[{"id":2}]}`+"\n", `{"data":[]}`))
	if res.rec.Code != 200 || p.calls != 1 || p.bytes != -1 || p.bodyBefore != 0 {
		t.Fatalf("status %d, commit %+v", res.rec.Code, p)
	}
	if d := res.decision; d.Stream != sidecar.StreamComplete || d.StreamRecords != 3 {
		t.Fatalf("stream %q with %d records, want complete with 3", d.Stream, d.StreamRecords)
	}

	// A record refused mid-stream cuts it: the closing record says so.
	res = result{}
	p = &commitProbe{}
	req = committing(t, "GET", "/v1/contacts/export", p, func() *httptest.ResponseRecorder { return res.rec })
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Fatalf("recovered %v, want http.ErrAbortHandler", v)
			}
		}()
		serveKeep(t, m, req, who([]string{"contacts:read"}, nil), &res, ndjsonUpstream(
			`{"data":[{"id":1}]}`+"\n", `{"data":[{"id":2,"id":3}]}`+"\n"))
	}()
	if d := res.decision; d.Stream != sidecar.StreamCut || d.StreamRecords != 1 || d.Reason != sidecar.ReasonUpstreamDuplicate {
		t.Fatalf("stream %q, %d records, reason %q", d.Stream, d.StreamRecords, d.Reason)
	}
}
