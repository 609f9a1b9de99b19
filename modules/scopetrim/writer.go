package scopetrim

import (
	"bufio"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// writer modes, chosen when the upstream's status and headers arrive.
const (
	modeBuffer  = iota // a JSON body to trim once complete
	modeRefuse         // refused on its headers; the body is not read
	modeDiscard        // an error body replaced by a generic problem
	modeStream         // NDJSON trimmed record by record
	modeNoBody         // 304 and other body-less answers
)

// errRefused stops the upstream copy: the body will not be forwarded.
var errRefused = errors.New("scope_trim: response refused")

// refusal is a 502 decided while the upstream answered.
type refusal struct {
	reason, detail string
}

// trimWriter takes the place of the client's response writer for the rest
// of the chain. Nothing reaches the client until finish (or, for NDJSON,
// until a record has been trimmed): the upstream's headers go to a private
// map, its status is held, and Flush does nothing.
type trimWriter struct {
	*caddyhttp.ResponseWriterWrapper
	m    *ScopeTrim
	r    *http.Request
	ep   *endpoint
	mask uint64

	header   http.Header // what the chain sets
	snapshot http.Header // header at WriteHeader: later additions are trailers
	status   int
	mode     int
	encoding string
	body     []byte
	size     int64 // bytes received, for modeDiscard
	refused  *refusal
	stream   *ndjsonStream
	sent     bool // headers went to the client
	judged   bool // the response header allowlist ran (response_headers.go)
	removed  int  // values withheld so far (all records of a stream)
}

func newTrimWriter(m *ScopeTrim, w http.ResponseWriter, r *http.Request, ep *endpoint, mask uint64) *trimWriter {
	return &trimWriter{
		ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		m:                     m,
		r:                     r,
		ep:                    ep,
		mask:                  mask,
		header:                w.Header().Clone(),
	}
}

// Header returns the private header map the upstream's headers go to.
func (tw *trimWriter) Header() http.Header { return tw.header }

// WriteHeader holds the status and decides, from the headers alone, how the
// body will be handled.
func (tw *trimWriter) WriteHeader(status int) {
	if tw.status != 0 {
		return
	}
	if status >= 100 && status < 200 {
		return // informational answers (103 Early Hints) are not forwarded
	}
	tw.status = status
	// what the chain sets from here on goes to a new map and is never
	// judged or sent (trailers): the snapshot is what was set by now
	tw.snapshot, tw.header = tw.header, make(http.Header)
	h := tw.snapshot
	ct := h.Get("Content-Type")
	media, _, _ := mime.ParseMediaType(ct)
	tw.encoding = strings.ToLower(strings.TrimSpace(strings.Join(h.Values("Content-Encoding"), ",")))
	switch {
	case isRedirect(status) && !tw.redirectAllowed(h):
		// no Location, another host, or a path or query the endpoint's
		// redirects rule does not name; the Location itself is not echoed
		tw.refuse(sidecar.ReasonUpstreamRedirectRefused, "the upstream redirected to a location that is not a path this endpoint's redirects allow")
	case isRedirect(status):
		tw.mode = modeNoBody // the Location is the answer; a redirect's body is not forwarded
	case len(h.Values("Content-Type")) > 1:
		// a client may read another of the types than the one judged here
		tw.refuse(sidecar.ReasonUpstreamNotJSON, "the upstream sent more than one content type")
	case status == http.StatusPartialContent || h.Get("Content-Range") != "":
		tw.refuse(sidecar.ReasonUpstreamPartial, "the upstream answered with a part of a document, which cannot be trimmed")
	case media == "text/event-stream":
		tw.refuse(sidecar.ReasonUpstreamStream, "the upstream answered with an event stream, which cannot be trimmed")
	case status == http.StatusNotModified || status == http.StatusNoContent || status == http.StatusResetContent:
		tw.mode = modeNoBody
	case status < 200 || status > 299:
		if tw.ep.errRoot != nil && isJSON(media) && knownEncoding(tw.encoding) {
			tw.mode = modeBuffer
		} else {
			tw.mode = modeDiscard
		}
	case isNDJSON(media):
		if !knownEncoding(tw.encoding) {
			tw.refuse(sidecar.ReasonUpstreamEncoding, "the upstream used a content encoding other than gzip or zstd")
			return
		}
		tw.mode = modeStream
		tw.stream = newNDJSONStream(tw, tw.encoding)
	case !isJSON(media):
		tw.refuse(sidecar.ReasonUpstreamNotJSON, "the upstream's content type is not JSON; only JSON can be trimmed")
	case !knownEncoding(tw.encoding):
		tw.refuse(sidecar.ReasonUpstreamEncoding, "the upstream used a content encoding other than gzip or zstd")
	default:
		tw.mode = modeBuffer
	}
	if tw.mode == modeBuffer {
		// a declared length over the cap is refused before reading; one
		// under it sizes the buffer exactly
		if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
			if n > tw.m.MaxBody && status >= 200 && status <= 299 {
				tw.refuse(sidecar.ReasonUpstreamTooLarge, "the upstream body is larger than max_body")
				return
			}
			if n <= tw.m.MaxBody && n <= 64<<20 {
				tw.body = tw.m.bodyBuffer(int(n))
			}
		}
	}
}

func (tw *trimWriter) refuse(reason, detail string) {
	tw.mode = modeRefuse
	if tw.refused == nil {
		tw.refused = &refusal{reason: reason, detail: detail}
	}
}

// Write collects the body within max_body. It returns an error as soon as
// the body is refused, so the upstream is not read any further.
func (tw *trimWriter) Write(p []byte) (int, error) {
	if tw.status == 0 {
		tw.WriteHeader(http.StatusOK)
	}
	switch tw.mode {
	case modeRefuse:
		return 0, errRefused
	case modeNoBody:
		return len(p), nil
	case modeDiscard:
		tw.size += int64(len(p))
		if tw.size > tw.m.MaxBody {
			return 0, errRefused // the generic problem replaces it anyway
		}
		return len(p), nil
	case modeStream:
		if err := tw.stream.write(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if int64(len(tw.body))+int64(len(p)) > tw.m.MaxBody {
		if tw.status >= 200 && tw.status <= 299 {
			tw.refuse(sidecar.ReasonUpstreamTooLarge, "the upstream body is larger than max_body")
		} else {
			tw.mode = modeDiscard
		}
		return 0, errRefused
	}
	if tw.body == nil {
		tw.body = tw.m.bodyBuffer(len(p))
	}
	if need := len(tw.body) + len(p); need > cap(tw.body) {
		// grow at most to max_body, so the buffer never holds more than the cap
		grown := make([]byte, len(tw.body), min(max(2*cap(tw.body), need, 4096), int(tw.m.MaxBody)))
		copy(grown, tw.body)
		tw.body = grown
	}
	tw.body = append(tw.body, p...)
	return len(p), nil
}

// bodyBuffer returns an empty buffer for at least n bytes, reusing one
// from an earlier response when it is large enough.
func (m *ScopeTrim) bodyBuffer(n int) []byte {
	if b, ok := m.bodies.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:0]
	}
	return make([]byte, 0, max(n, 4096))
}

// releaseBody keeps the body buffer for the next response; buffers over
// 1 MiB are left to the garbage collector so that one large answer does not
// pin its memory. A kept buffer is zeroed first: the sidecar keeps nothing
// of the data that passed, not even in a pool.
func (tw *trimWriter) releaseBody() {
	if tw.body != nil && cap(tw.body) <= 1<<20 {
		clear(tw.body)
		b := tw.body[:0]
		tw.m.bodies.Put(&b)
	}
	tw.body = nil
}

// ReadFrom keeps io.Copy from going around Write to the client's writer.
func (tw *trimWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(writerOnly{tw}, r)
}

type writerOnly struct{ io.Writer }

// FlushError holds buffered answers back; a stream flushes its own records.
func (tw *trimWriter) FlushError() error { return nil }

// Flush is FlushError for callers that use http.Flusher.
func (tw *trimWriter) Flush() {}

// Hijack is refused: a connection taken over by the upstream (a 101 the
// client never asked for) would bypass trimming entirely.
func (tw *trimWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, errHijack
}

var errHijack = errors.New("scope_trim: a trimmed response cannot take over the connection")

func isJSON(media string) bool {
	return media == "application/json" || (strings.HasSuffix(media, "+json") && strings.Contains(media, "/"))
}

func isNDJSON(media string) bool {
	return media == "application/x-ndjson" || media == "application/jsonl"
}

func knownEncoding(enc string) bool {
	switch enc {
	case "", "identity", "gzip", "x-gzip", "zstd":
		return true
	}
	return false
}

// Interface guards
var (
	_ http.ResponseWriter = (*trimWriter)(nil)
	_ io.ReaderFrom       = (*trimWriter)(nil)
	_ http.Flusher        = (*trimWriter)(nil)
	_ http.Hijacker       = (*trimWriter)(nil)
)
