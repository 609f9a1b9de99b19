package scopetrim

import (
	"encoding/json"
	"net/http"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// No release without a record: once an answer that carries upstream data is
// decided (its body trimmed, its headers judged) and right before its status
// line goes to the client, scope_trim has audit_log write the request's
// record (sidecar.Decision.Commit). When it cannot be written, the client
// gets 503 audit_unavailable instead of the answer. A buffered answer is
// committed with its final status and length; an NDJSON stream when its
// first record is released, and audit_log writes a closing record when it
// ends (records sent, bytes, how it ended).

// unaudited commits the record of a buffered answer of bodyLen bytes and
// reports whether it could not be written.
func (tw *trimWriter) unaudited(bodyLen int) bool {
	if tw.r.Method == http.MethodHead {
		bodyLen = 0
	}
	return sidecar.DecisionFrom(tw.r).Commit(tw.status, int64(bodyLen)) != nil
}

// unauditedProblem is unaudited for the generic problem that replaces an
// upstream error body: the body is the sidecar's, but the status and the
// headers the policy lets through are the upstream's.
func (tw *trimWriter) unauditedProblem(p *sidecar.Problem) bool {
	body, _ := json.Marshal(p) // as sidecar.WriteProblem writes it
	return tw.unaudited(len(body))
}

// refuseUnaudited answers in place of an answer whose record could not be
// written. Nothing of the answer has reached the client; the headers
// prepared for it are withdrawn.
func (tw *trimWriter) refuseUnaudited() error {
	tw.withdrawHeaders()
	return sidecar.Refuse(tw.ResponseWriter, tw.r, http.StatusServiceUnavailable, sidecar.ReasonAuditUnavailable,
		"the audit record of this answer could not be written; the answer was not released")
}

// withdrawHeaders takes back the headers sendHeaders prepared for an answer
// that is not released: they may carry the upstream's data.
func (tw *trimWriter) withdrawHeaders() {
	clear(tw.ResponseWriter.Header())
	tw.sent = false
}

// streamAudit follows one NDJSON stream for the audit record. Its methods
// run on the goroutine that trims the stream (the decoder's, for a
// compressed stream); audit_log reads the decision after scope_trim has
// joined that goroutine.
type streamAudit struct {
	d          *sidecar.Decision
	clientGone bool
}

// start commits the stream's opening record; false when it could not be
// written (the stream is then refused, nothing having been sent).
func (a *streamAudit) start(tw *trimWriter) bool {
	a.d = sidecar.DecisionFrom(tw.r)
	if a.d == nil {
		return true
	}
	a.d.Stream = sidecar.StreamStart
	if a.d.Commit(tw.status, -1) != nil {
		a.d.Stream = ""
		tw.withdrawHeaders()
		return false
	}
	return true
}

// sent counts n records released to the client.
func (a *streamAudit) sent(n int) {
	if a.d != nil {
		a.d.StreamRecords += n
	}
}

// end says how a started stream ended, for the closing record.
func (a *streamAudit) end(s *ndjsonStream) {
	if a.d == nil || a.d.Stream != sidecar.StreamStart {
		return
	}
	switch {
	case a.clientGone:
		a.d.Stream = sidecar.StreamClientGone
	case s.failed:
		a.d.Stream = sidecar.StreamCut
	default:
		a.d.Stream = sidecar.StreamComplete
	}
}
