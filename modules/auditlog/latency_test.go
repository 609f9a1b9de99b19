package auditlog

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func TestAddedLatencyLeavesOutTheConnectorsTime(t *testing.T) {
	repl := caddy.NewReplacer()
	r := httptest.NewRequest("GET", "/v1/contacts", nil)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	start := time.Now().Add(-300 * time.Millisecond)

	// refused before the connector: all of it was the sidecar's
	if got := addedLatency(r, &Record{}, start); got < 300*time.Millisecond {
		t.Fatalf("refused request: added %v, want at least 300ms", got)
	}
	// the connector took 200 ms of it: exactly that is left out
	repl.Set(placeholderUpstreamDuration, 200*time.Millisecond)
	before := time.Since(start)
	got := addedLatency(r, &Record{}, start)
	after := time.Since(start)
	if got < before-200*time.Millisecond || got > after-200*time.Millisecond {
		t.Fatalf("proxied request: added %v, want the request's %v..%v less the connector's 200ms", got, before, after)
	}
	// a stream's duration is the stream's: not observed
	if got := addedLatency(r, &Record{Stream: "start"}, start); got >= 0 {
		t.Fatalf("stream: added %v, want negative (not observed)", got)
	}
}
