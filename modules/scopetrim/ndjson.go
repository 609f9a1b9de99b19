package scopetrim

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// ndjsonStream trims an NDJSON answer record by record as it arrives.
// Memory is bounded by the largest record (at most max_body). The status and
// headers are sent with the first trimmed record, so a stream whose first
// record is bad is still refused with a 502; a bad record later ends the
// stream: the connection is aborted and the record never sent.
type ndjsonStream struct {
	tw       *trimWriter
	t        *trimmer
	pending  []byte
	searched int // pending[:searched] holds no newline
	records  int
	failed   bool
}

func newNDJSONStream(tw *trimWriter) *ndjsonStream {
	t := tw.m.pool.Get().(*trimmer)
	t.mask = tw.mask
	t.hash = nil
	if tw.ep.usesHash {
		t.hash = tw.m.hasherFor(tw.tenant())
	}
	return &ndjsonStream{tw: tw, t: t}
}

func (s *ndjsonStream) write(p []byte) error {
	if s.failed {
		return errRefused
	}
	s.pending = append(s.pending, p...)
	wrote := false
	for {
		i := bytes.IndexByte(s.pending[s.searched:], '\n')
		if i < 0 {
			break
		}
		end := s.searched + i
		if err := s.record(s.pending[:end]); err != nil {
			return err
		}
		wrote = true
		s.pending = s.pending[:copy(s.pending, s.pending[end+1:])]
		s.searched = 0
	}
	s.searched = len(s.pending)
	if int64(len(s.pending)) > s.tw.m.MaxBody {
		return s.fail(sidecar.ReasonUpstreamTooLarge, "an NDJSON record is larger than max_body")
	}
	if wrote && s.tw.sent {
		_ = http.NewResponseController(s.tw.ResponseWriter).Flush()
	}
	return nil
}

// record trims one line and sends it.
func (s *ndjsonStream) record(line []byte) error {
	s.records++
	if len(bytes.TrimLeft(line, " \t\r")) == 0 {
		return nil // blank lines carry nothing
	}
	out, err := s.t.trim(s.t.out[:0], line, s.tw.ep.root)
	s.t.out = out
	if err != nil {
		reason := sidecar.ReasonUpstreamInvalidJSON
		var se *scanError
		if errors.As(err, &se) && se.Reason != "" {
			reason = se.Reason
		}
		return s.fail(reason, fmt.Sprintf("NDJSON record %d was refused: %v", s.records, err))
	}
	s.tw.recordWithheld(s.t)
	if !s.tw.sent {
		s.tw.sendHeaders(-1)
		s.tw.ResponseWriter.WriteHeader(s.tw.status)
	}
	if s.tw.r.Method == http.MethodHead {
		return nil
	}
	s.t.out = append(s.t.out, '\n')
	if _, err := s.tw.ResponseWriter.Write(s.t.out); err != nil {
		return err
	}
	return nil
}

// fail ends the stream. Before anything was sent it becomes an ordinary
// refusal; afterwards the decision records it and the response is aborted.
func (s *ndjsonStream) fail(reason, detail string) error {
	s.failed = true
	if !s.tw.sent {
		s.tw.refuse(reason, detail)
		return errRefused
	}
	// the records before this one are good: let the client have them
	_ = http.NewResponseController(s.tw.ResponseWriter).Flush()
	sidecar.DecisionFrom(s.tw.r).Deny(http.StatusBadGateway, reason)
	if repl, ok := s.tw.r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("sidecar.reason", reason)
	}
	s.tw.m.logger.Warn("ndjson stream ended: record refused", zap.String("reason", reason), zap.String("detail", detail))
	return errRefused
}

// finish trims a last record without a newline and ends the stream.
func (s *ndjsonStream) finish(err error, aborted bool) error {
	defer s.tw.m.release(s.t)
	if !s.failed && err == nil && !aborted && len(s.pending) > 0 {
		if rerr := s.record(s.pending); rerr != nil && !s.failed {
			return rerr
		}
	}
	if !s.failed && (err != nil || aborted) {
		_ = s.fail(sidecar.ReasonUpstreamError, "the upstream stream ended before it was complete")
	}
	if s.failed {
		if !s.tw.sent {
			return s.tw.refuse502(s.tw.refused.reason, s.tw.refused.detail)
		}
		// the status is sent: only an aborted connection tells the client
		// that the stream did not end normally
		panic(http.ErrAbortHandler)
	}
	if !s.tw.sent {
		s.tw.sendHeaders(-1)
		s.tw.ResponseWriter.WriteHeader(s.tw.status)
	}
	return nil
}
