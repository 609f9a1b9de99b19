package auditlog

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// releasing stands in for scope_trim: it commits the record of a 5-byte
// answer, then releases it only if the commit succeeded.
func releasing(t *testing.T, w *switchWriter, recordsAtRelease *int) caddyhttp.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) error {
		d := sidecar.DecisionFrom(r)
		d.Tenant = "acme"
		if err := d.Commit(http.StatusOK, 5); err != nil {
			return sidecar.Refuse(rw, r, http.StatusServiceUnavailable, sidecar.ReasonAuditUnavailable, "not released")
		}
		*recordsAtRelease = len(w.lines(t))
		_, err := io.WriteString(rw, "hello")
		return err
	}
}

func TestCommitWritesTheRecordBeforeTheRelease(t *testing.T) {
	w := new(switchWriter)
	m, _, _ := newTestAuditLog(t, w, "")
	var atRelease int
	rw := httptest.NewRecorder()
	if err := m.ServeHTTP(rw, newRequest("/v1/contacts"), releasing(t, w, &atRelease)); err != nil {
		t.Fatal(err)
	}
	recs := w.lines(t)
	if rw.Body.String() != "hello" || atRelease != 1 || len(recs) != 1 {
		t.Fatalf("body %q; %d records at the release, %d after: want the one record written before the body and none after", rw.Body, atRelease, len(recs))
	}
	if r := recs[0]; r.Status != 200 || r.BytesOut != 5 || r.Decision != "allow" || r.Tenant != "acme" || r.Stream != "" {
		t.Fatalf("committed record %+v", r)
	}
}

// TestSinkFailingBetweenBodyAndRecord: the sink works when the request
// arrives (the refusal check passes) and fails when the record of the
// answer is written. Without the commit, the answer was released and its
// record lost; now the client gets 503 audit_unavailable instead.
func TestSinkFailingBetweenBodyAndRecord(t *testing.T) {
	w := new(switchWriter)
	m, _, _ := newTestAuditLog(t, w, "")
	var atRelease int
	next := releasing(t, w, &atRelease)
	failing := caddyhttp.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) error {
		w.setFail(true) // the disk fills up while the upstream answers
		return next(rw, r)
	})
	rw := httptest.NewRecorder()
	_ = m.ServeHTTP(rw, newRequest("/v1/contacts"), failing)
	if rw.Code != http.StatusServiceUnavailable || rw.Body.String() == "hello" {
		t.Fatalf("status %d body %q: the answer was released without its record", rw.Code, rw.Body)
	}
	if got := counterValue(t, m.metrics.writeFailures); got != 2 {
		t.Fatalf("write failures %v, want 2 (the commit and the refusal's record)", got)
	}

	// on_write_failure allow releases unaudited, as documented
	w2 := new(switchWriter)
	m2, _, _ := newTestAuditLog(t, w2, "allow")
	next2 := releasing(t, w2, &atRelease)
	rw = httptest.NewRecorder()
	_ = m2.ServeHTTP(rw, newRequest("/"), caddyhttp.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) error {
		w2.setFail(true)
		return next2(rw, r)
	}))
	if rw.Code != http.StatusOK || rw.Body.String() != "hello" {
		t.Fatalf("on_write_failure allow: %d %q", rw.Code, rw.Body)
	}
}

func TestStreamGetsAnOpeningAndAClosingRecord(t *testing.T) {
	w := new(switchWriter)
	m, _, _ := newTestAuditLog(t, w, "")
	var atStart int
	next := caddyhttp.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) error {
		d := sidecar.DecisionFrom(r)
		d.Stream = sidecar.StreamStart
		if err := d.Commit(http.StatusOK, -1); err != nil {
			t.Fatal(err)
		}
		atStart = len(w.lines(t))
		for i := 0; i < 3; i++ {
			_, _ = io.WriteString(rw, "{}\n")
			d.StreamRecords++
		}
		d.AddWithheld("email", 3)
		d.Stream = sidecar.StreamComplete
		return nil
	})
	_ = m.ServeHTTP(httptest.NewRecorder(), newRequest("/v1/contacts/export"), next)
	recs := w.lines(t)
	if atStart != 1 || len(recs) != 2 {
		t.Fatalf("%d records at the start, %d in all; want 1 and 2", atStart, len(recs))
	}
	open, closing := recs[0], recs[1]
	if open.Stream != "start" || open.BytesOut != 0 || open.StreamRecords != 0 || open.RequestID != closing.RequestID {
		t.Fatalf("opening record %+v", open)
	}
	if closing.Stream != "complete" || closing.StreamRecords != 3 || closing.BytesOut != 9 || closing.FieldsRemoved != 3 || closing.Decision != "allow" {
		t.Fatalf("closing record %+v", closing)
	}

	// A stream ended by a panic (the proxy aborting it) is closed as cut.
	w.buf.Reset()
	func() {
		defer func() { _ = recover() }()
		_ = m.ServeHTTP(httptest.NewRecorder(), newRequest("/v1/contacts/export"), caddyhttp.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) error {
			d := sidecar.DecisionFrom(r)
			d.Stream = sidecar.StreamStart
			_ = d.Commit(http.StatusOK, -1)
			_, _ = io.WriteString(rw, "{}\n")
			panic(http.ErrAbortHandler)
		}))
	}()
	if recs := w.lines(t); len(recs) != 2 || recs[1].Stream != "cut" || recs[1].Decision != "deny" {
		t.Fatalf("records after an aborted stream: %+v", recs)
	}
}
