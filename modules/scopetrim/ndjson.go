package scopetrim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"go.uber.org/zap"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// ndjsonStream trims an NDJSON answer record by record as it arrives.
// Memory is bounded by the largest record (at most max_body) plus one write
// of the proxy and one batch of trimmed records. The status and headers are
// sent with the first trimmed record, so a stream whose first record is bad
// is still refused with a 502; a bad record later ends the stream: the
// records before it are sent, the connection is aborted and the record and
// everything after it is never sent.
//
// The trimmed records of one write of the proxy go to the client as one
// write (see maxBatch), and are flushed once: a write per record costs the
// client's connection a deadline update and, every few kilobytes, a system
// call, which made per-record writes the stream's largest cost.
//
// A gzip or zstd stream is decoded as it arrives: the proxy's writes go into
// a pipe, and one goroutine decodes and trims. The handler's goroutine only
// writes to the pipe and waits for the decoder (settle) before it reads any
// state the decoder writes.
type ndjsonStream struct {
	tw       *trimWriter
	t        *trimmer
	pending  []byte
	searched int // pending[:searched] holds no newline
	records  int
	batched  int // trimmed records in t.out, not yet sent

	failed               bool
	failReason, failText string

	audit streamAudit

	pipe    *io.PipeWriter // nil for an identity stream
	done    chan struct{}  // closed when the decoder goroutine ends
	settled bool
}

func newNDJSONStream(tw *trimWriter, encoding string) *ndjsonStream {
	t := tw.m.pool.Get().(*trimmer)
	t.mask = tw.mask
	t.hash = nil
	if t.mask&tw.ep.hashScopes != 0 {
		t.hash = tw.m.hasherFor(tw.tenant())
	}
	t.rec = tw.recordFilterFor(t)
	s := &ndjsonStream{tw: tw, t: t}
	if encoding != "" && encoding != "identity" {
		pr, pw := io.Pipe()
		s.pipe, s.done = pw, make(chan struct{})
		go s.decode(pr, encoding)
	}
	return s
}

// decode runs on its own goroutine for a compressed stream.
func (s *ndjsonStream) decode(pr *io.PipeReader, encoding string) {
	defer close(s.done)
	var r io.Reader
	switch encoding {
	case "zstd":
		zr, err := zstd.NewReader(pr, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			s.fail(sidecar.ReasonUpstreamEncoding, "the upstream's zstd stream cannot be decoded")
			pr.CloseWithError(errRefused)
			return
		}
		defer zr.Close()
		r = zr
	default:
		zr, err := gzip.NewReader(pr)
		if err != nil {
			s.fail(sidecar.ReasonUpstreamEncoding, "the upstream's gzip stream is corrupt")
			pr.CloseWithError(errRefused)
			return
		}
		defer zr.Close()
		r = zr
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := s.feed(buf[:n]); werr != nil {
				pr.CloseWithError(errRefused)
				return
			}
		}
		if err == io.EOF {
			_, _ = io.Copy(io.Discard, pr) // let the proxy finish its writes
			return
		}
		if err != nil {
			if !errors.Is(err, io.ErrClosedPipe) {
				s.fail(sidecar.ReasonUpstreamEncoding, "the upstream's "+encoding+" stream is corrupt")
			}
			pr.CloseWithError(errRefused)
			return
		}
	}
}

// write takes what the proxy copies from the upstream.
func (s *ndjsonStream) write(p []byte) error {
	if s.pipe != nil {
		if _, err := s.pipe.Write(p); err != nil {
			return errRefused
		}
		return nil
	}
	return s.feed(p)
}

// maxBatch is the size of trimmed records above which a batch is sent
// before the proxy's write is done: the records of one 32 KiB write
// (reverse_proxy's buffer) fit, and a larger write, or values that
// transforms lengthen, cannot make the batch grow without bound.
const maxBatch = 64 << 10

// feed splits decoded bytes into records, trims each complete one and sends
// them together.
func (s *ndjsonStream) feed(p []byte) error {
	if s.failed {
		return errRefused
	}
	s.pending = append(s.pending, p...)
	sent := false
	start := 0 // the first byte of pending not yet trimmed
	for {
		i := bytes.IndexByte(s.pending[s.searched:], '\n')
		if i < 0 {
			break
		}
		end := s.searched + i
		if err := s.record(s.pending[start:end]); err != nil {
			// the records before this one are good: let the client have them
			if s.send() == nil && s.tw.sent {
				_ = http.NewResponseController(s.tw.ResponseWriter).Flush()
			}
			return err
		}
		start = end + 1
		s.searched = start
		if len(s.t.out) >= maxBatch {
			if err := s.send(); err != nil {
				return err
			}
			sent = true
		}
	}
	if s.batched > 0 {
		if err := s.send(); err != nil {
			return err
		}
		sent = true
	}
	if sent {
		// once per write of the proxy, which flushes after each write of
		// a body without Content-Length (reverseproxy.Handler.flushInterval)
		_ = http.NewResponseController(s.tw.ResponseWriter).Flush()
	}
	// Move the incomplete last record down once per write, not the rest of
	// the buffer once per record (quadratic in records per write).
	if start > 0 {
		s.pending = s.pending[:copy(s.pending, s.pending[start:])]
	}
	s.searched = len(s.pending)
	if int64(len(s.pending)) > s.tw.m.MaxBody {
		return s.fail(sidecar.ReasonUpstreamTooLarge, "an NDJSON record is larger than max_body")
	}
	return nil
}

// record trims one line and adds it to the batch in t.out (see send). A
// line that is refused or withheld leaves the batch as it was.
func (s *ndjsonStream) record(line []byte) error {
	s.records++
	if blank(line) {
		return nil // blank lines carry nothing
	}
	lineRecord := s.t.rec != nil && s.t.rec.rules.single
	if lineRecord {
		s.t.markCounts()
	}
	batch := len(s.t.out)
	out, err := s.t.trimNext(s.t.out, line, s.tw.ep.root)
	// what was trimmed of a refused line before its error is dropped too
	s.t.out = out[:batch]
	if err == nil && lineRecord && !s.t.rec.rootReleased {
		s.t.restoreCounts() // a withheld line is left out, with what it withheld
		return nil
	}
	if err != nil {
		reason := sidecar.ReasonUpstreamInvalidJSON
		var se *scanError
		if errors.As(err, &se) && se.Reason != "" {
			reason = se.Reason
		}
		return s.fail(reason, fmt.Sprintf("NDJSON record %d was refused: %v", s.records, err))
	}
	if !s.tw.sent {
		s.tw.sendHeaders(-1)
		if !s.audit.start(s.tw) {
			return s.fail(sidecar.ReasonAuditUnavailable, "the audit record of the stream's start could not be written")
		}
		s.tw.ResponseWriter.WriteHeader(s.tw.status)
	}
	if s.tw.r.Method == http.MethodHead {
		return nil
	}
	s.t.out = append(out, '\n')
	s.batched++
	return nil
}

// blank reports whether line holds only spaces, tabs and carriage
// returns; a plain loop, as most lines fail at their first byte.
func blank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// send writes the batch of trimmed records to the client in one write.
func (s *ndjsonStream) send() error {
	if s.batched == 0 {
		return nil
	}
	n := s.batched
	s.batched = 0
	batch := s.t.out
	s.t.out = s.t.out[:0]
	if _, err := s.tw.ResponseWriter.Write(batch); err != nil {
		s.audit.clientGone = true
		return err
	}
	s.audit.sent(n)
	return nil
}

// fail ends the stream. What it means for the client (a refusal before
// anything was sent, an aborted connection after) is decided by finish.
// The good records before the failure are sent and flushed by the caller
// (feed, finish): every other failure comes after a feed that flushed.
func (s *ndjsonStream) fail(reason, detail string) error {
	if !s.failed {
		s.failed, s.failReason, s.failText = true, reason, detail
	}
	return errRefused
}

// settle ends the decoder goroutine, if any, and waits for it; after it the
// handler's goroutine may read everything the decoder wrote.
func (s *ndjsonStream) settle() {
	if s.pipe == nil || s.settled {
		return
	}
	s.settled = true
	s.pipe.Close()
	<-s.done
}

// finish trims a last record without a newline and ends the stream.
func (s *ndjsonStream) finish(err error, aborted bool) error {
	s.settle()
	defer s.audit.end(s)
	defer s.tw.m.release(s.t)
	// The withheld patterns of every record sent, sorted and recorded once
	// per stream rather than once per record; a stream refused before its
	// first record was sent withheld nothing from the client.
	defer func() {
		if s.tw.sent {
			s.tw.recordWithheld(s.t)
			if s.t.rec != nil {
				s.t.rec.report(sidecar.DecisionFrom(s.tw.r))
				s.tw.logRuleFailures(s.t.rec)
			}
			return
		}
		s.t.withheldPatterns()
		s.t.removed = 0
	}()
	if !s.failed && err == nil && !aborted && len(s.pending) > 0 {
		if s.record(s.pending) == nil {
			_ = s.send() // the handler's return ends the response
		}
	}
	if !s.failed && (err != nil || aborted) {
		_ = s.fail(sidecar.ReasonUpstreamError, "the upstream stream ended before it was complete")
	}
	if s.failed {
		if !s.tw.sent && s.failReason == sidecar.ReasonAuditUnavailable {
			return s.tw.refuseUnaudited()
		}
		if !s.tw.sent {
			return s.tw.refuse502(s.failReason, s.failText)
		}
		s.recordAbort()
		// the status is sent: only an aborted connection tells the client
		// that the stream did not end normally
		panic(http.ErrAbortHandler)
	}
	if !s.tw.sent {
		s.tw.sendHeaders(-1)
		if !s.audit.start(s.tw) { // an empty stream
			return s.tw.refuseUnaudited()
		}
		s.tw.ResponseWriter.WriteHeader(s.tw.status)
	}
	return nil
}

// recordAbort records a stream cut after its status was sent.
func (s *ndjsonStream) recordAbort() {
	reason := s.failReason
	if reason == "" {
		reason = sidecar.ReasonUpstreamError
	}
	sidecar.DecisionFrom(s.tw.r).Deny(http.StatusBadGateway, reason)
	if repl, ok := s.tw.r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("sidecar.reason", reason)
	}
	s.tw.m.logger.Warn("ndjson stream ended: record refused", zap.String("reason", reason), zap.String("detail", s.failText))
}
