package scopetrim

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// maxPooledOutput is the largest output buffer kept for reuse; larger ones
// are left to the garbage collector so one huge response does not pin memory.
const maxPooledOutput = 1 << 20

// finish sends the client what the chain's answer allows: the trimmed body,
// a refusal, or a generic problem in place of an upstream error body.
func (tw *trimWriter) finish(err error, aborted bool) error {
	if tw.mode == modeStream && tw.refused == nil {
		return tw.stream.finish(err, aborted)
	}
	if tw.refused != nil {
		return tw.refuse502(tw.refused.reason, tw.refused.detail)
	}
	if tw.status == 0 {
		if err != nil {
			return err // nothing was answered: the proxy's own error (502, 504)
		}
		if aborted {
			return tw.refuse502(sidecar.ReasonUpstreamError, "the upstream connection failed before it answered")
		}
		tw.WriteHeader(http.StatusOK) // an empty answer: refused below as invalid JSON
		if tw.refused != nil {
			return tw.refuse502(tw.refused.reason, tw.refused.detail)
		}
	}
	success := tw.status >= 200 && tw.status <= 299
	if tw.hidesMissingRecord() {
		return tw.recordNotVisible()
	}
	if aborted || err != nil {
		if success {
			return tw.refuse502(sidecar.ReasonUpstreamError, "the upstream body ended before it was complete")
		}
		tw.mode = modeDiscard
	}
	switch tw.mode {
	case modeNoBody:
		tw.sendHeaders(-1)
		if tw.unaudited(0) {
			return tw.refuseUnaudited()
		}
		tw.ResponseWriter.WriteHeader(tw.status)
		return nil
	case modeDiscard:
		return tw.genericError()
	}
	root := tw.ep.root
	if !success {
		root = tw.ep.errRoot
	}
	body, reason, detail := decodeBody(tw.encoding, tw.body, tw.m.MaxBody)
	if reason != "" {
		if !success {
			return tw.genericError()
		}
		return tw.refuse502(reason, detail)
	}
	t := tw.m.pool.Get().(*trimmer)
	defer tw.m.release(t)
	hashScopes := tw.ep.hashScopes
	t.mask = tw.mask
	if !success {
		t.mask, hashScopes = 1, tw.ep.errHashScopes // error_fields are compiled under one pseudo-scope
	}
	t.hash = nil
	if t.mask&hashScopes != 0 {
		t.hash = tw.m.hasherFor(tw.tenant())
	}
	if success {
		t.rec = tw.recordFilterFor(t)
	}
	out, terr := t.trim(t.out[:0], body, root)
	t.out = out
	if terr != nil {
		t.withheldPatterns() // forget: nothing of this body is sent
		t.removed = 0
		if !success {
			return tw.genericError()
		}
		var se *scanError
		if errors.As(terr, &se) && se.Reason != "" {
			return tw.refuse502(se.Reason, "the upstream body was refused: "+se.Error())
		}
		return tw.refuse502(sidecar.ReasonUpstreamInvalidJSON, "the upstream body was refused")
	}
	if t.rec != nil && !tw.releaseRecords(t) {
		return tw.recordNotVisible()
	}
	tw.recordWithheld(t)
	tw.sendHeaders(len(out))
	if tw.unaudited(len(out)) {
		return tw.refuseUnaudited()
	}
	tw.ResponseWriter.WriteHeader(tw.status)
	if tw.r.Method != http.MethodHead {
		if _, werr := tw.ResponseWriter.Write(out); werr != nil {
			return werr
		}
	}
	return nil
}

// tenant is the verified tenant, or "" without tenant_guard.
func (tw *trimWriter) tenant() string {
	if d := sidecar.DecisionFrom(tw.r); d != nil {
		return d.Tenant
	}
	return ""
}

func (m *ScopeTrim) release(t *trimmer) {
	t.forget()
	t.rec = nil
	t.recState.forget()
	if cap(t.out) > maxPooledOutput {
		t.out = nil
	}
	t.hash = nil
	m.pool.Put(t)
}

// recordWithheld adds the trimmer's withheld patterns to the decision record.
func (tw *trimWriter) recordWithheld(t *trimmer) {
	removed := t.removed
	patterns, counts := t.withheldPatterns()
	d := sidecar.DecisionFrom(tw.r)
	for i, p := range patterns {
		d.AddWithheld(p, counts[i])
	}
	tw.removed += removed
	if repl, ok := tw.r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set(PlaceholderFieldsRemoved, tw.removed)
	}
}

// refuse502 refuses the answer the upstream gave. No upstream header or
// byte of its body reaches the client.
func (tw *trimWriter) refuse502(reason, detail string) error {
	tw.judgeHeaders(nil) // record what the upstream sent that no policy allowed
	if c := tw.m.logger.Check(zap.WarnLevel, "upstream response refused"); c != nil {
		c.Write(zap.String("reason", reason), zap.String("endpoint", tw.ep.path), zap.String("detail", detail))
	}
	return sidecar.Refuse(tw.ResponseWriter, tw.r, http.StatusBadGateway, reason, detail)
}

// genericError replaces an upstream error body that the endpoint's
// error_fields do not cover with a problem that says only the status.
func (tw *trimWriter) genericError() error {
	tw.sendHeaders(-1)
	if repl, ok := tw.r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("sidecar.reason", sidecar.ReasonUpstreamError)
	}
	p := &sidecar.Problem{
		Type:   "https://alysio.dev/sidecar/reasons#" + sidecar.ReasonUpstreamError,
		Title:  http.StatusText(tw.status),
		Status: tw.status,
		Reason: sidecar.ReasonUpstreamError,
		Detail: fmt.Sprintf("the upstream answered %d; its body is not forwarded", tw.status),
	}
	if tw.unauditedProblem(p) {
		return tw.refuseUnaudited()
	}
	if tw.r.Method == http.MethodHead {
		tw.ResponseWriter.WriteHeader(tw.status)
		return nil
	}
	sidecar.WriteProblem(tw.ResponseWriter, p)
	return nil
}

// dropHeaders are upstream headers that describe the untrimmed body, or that
// must not reach the client from a trimmed route, in canonical form
// (TestDropHeadersAreCanonical). No policy can allow them.
var dropHeaders = []string{
	"Content-Length", "Content-Encoding", "Content-Range", "Accept-Ranges",
	"Etag", "Digest", "Content-Md5", "Content-Digest", "Repr-Digest", "Want-Digest",
	"Trailer", "Transfer-Encoding",
}

// sendHeaders writes the answer's headers: what the response header
// allowlist passes (response_headers.go), with caching forbidden. length is
// the trimmed body's length, or -1 for none.
func (tw *trimWriter) sendHeaders(length int) {
	dst := tw.ResponseWriter.Header()
	tw.judgeHeaders(dst)
	dst["Cache-Control"] = []string{"private, no-store"}
	dst["X-Content-Type-Options"] = []string{"nosniff"}
	if length >= 0 {
		dst["Content-Length"] = []string{strconv.Itoa(length)}
	}
	tw.sent = true
}
