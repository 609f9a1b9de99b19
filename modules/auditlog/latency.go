package auditlog

import (
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// placeholderUpstreamDuration is where reverse_proxy leaves the time it spent
// proxying, body included (modules/caddyhttp/reverseproxy/reverseproxy.go,
// finalizeResponse).
const placeholderUpstreamDuration = "http.reverse_proxy.upstream.duration"

// addedLatency is the time the sidecar added to the request up to now: its
// whole duration less the time reverse_proxy spent with the connector. A
// request refused before the connector was called added all of its time.
// It is negative (not observed) for a streamed answer, whose duration is
// the stream's, and is read when the record is written: for a buffered
// answer that is right before its release, after reverse_proxy returned.
func addedLatency(r *http.Request, rec *Record, start time.Time) time.Duration {
	if rec.Stream != "" {
		return -1
	}
	added := time.Since(start)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		if v, ok := repl.Get(placeholderUpstreamDuration); ok {
			if upstream, ok := v.(time.Duration); ok && upstream < added {
				added -= upstream
			}
		}
	}
	return added
}
