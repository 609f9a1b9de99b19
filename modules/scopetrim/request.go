package scopetrim

import (
	"net/http"
	"slices"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// scrubOverrides removes the method and URL override headers from the
// request, in any spelling and from its trailers, and records each as a
// spoofed header. It runs first, so that a refused request records them too.
// The Connection header, which could name them, never reaches the upstream
// (prepareUpstreamRequest).
func scrubOverrides(r *http.Request) {
	overrideHeaders.RemoveHeaders(r.Header, sidecar.DecisionFrom(r))
	overrideHeaders.ScrubTrailers(r)
}

// prepareUpstreamRequest returns the request to proxy: HEAD becomes GET (the
// trimmed length is only known from the body), the upstream is asked for an
// identity encoding, ranges are removed (a part of a document cannot be
// trimmed), and so are the preconditions of a read on an endpoint with
// record rules (an answer without its records cannot be judged). The Connection header is removed so that a client cannot name
// Accept-Encoding (or a verified header) in it and have the proxy strip ours.
// Under a request_headers allowlist, only the allowed headers remain.
//
// The client's request itself keeps its headers: handlers before scope_trim
// (encode) still read its Accept-Encoding.
// conditionalHeaders are the preconditions of RFC 9110 section 13.1 but
// If-Range, which goes with Range.
var conditionalHeaders = []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"}

func prepareUpstreamRequest(r *http.Request, ep *endpoint) *http.Request {
	r2 := r.WithContext(r.Context())
	r2.Header = r.Header.Clone()
	if r2.Method == http.MethodHead {
		r2.Method = http.MethodGet
	}
	// the names are canonical already: direct map writes spare the
	// canonicalisation that Set and Del do on every call
	r2.Header["Accept-Encoding"] = []string{"identity"}
	delete(r2.Header, "Range")
	delete(r2.Header, "If-Range")
	delete(r2.Header, "Connection")
	if ep.records != nil && r2.Method == http.MethodGet {
		// A precondition lets the connector answer without the record
		// (304, 412), which the record rules cannot judge: an existing
		// record the caller may not see would answer otherwise than a
		// missing one.
		for _, k := range conditionalHeaders {
			delete(r2.Header, k)
		}
	}
	if allow := ep.headers.request; allow != nil {
		verified := sidecar.DecisionFrom(r).VerifiedHeaders
		for k := range r2.Header {
			if !allow[k] && !defaultRequestHeaders[k] && !slices.Contains(verified, k) {
				delete(r2.Header, k)
			}
		}
	}
	return r2
}
