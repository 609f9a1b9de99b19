package connectorauth

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// errCut is what a write gets once the request was cut.
var errCut = errors.New("connector_auth: the request was cut because its connection was disconnected")

// connWriter passes the answer to the client until the request is cut,
// and drops the access token when the connector refused it (401).
type connWriter struct {
	*caddyhttp.ResponseWriterWrapper
	ctx   context.Context
	lease Lease
	// sent is set once anything of the answer went toward the client.
	sent bool
}

func (w *connWriter) WriteHeader(status int) {
	if w.ctx.Err() != nil {
		return // cut: ServeHTTP answers instead, or aborts the connection
	}
	if status == http.StatusUnauthorized {
		// the connected system no longer accepts the token (revoked, or
		// expired early): the next request refreshes it
		w.lease.Unauthorized()
	}
	if status >= 200 {
		w.sent = true
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *connWriter) Write(p []byte) (int, error) {
	if w.ctx.Err() != nil {
		return 0, errCut
	}
	w.sent = true
	return w.ResponseWriterWrapper.Write(p)
}

// ReadFrom goes through Write, so that a cut also stops a copy in progress;
// the embedded wrapper's ReadFrom would bypass it.
func (w *connWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(writerOnly{w}, r)
}

// writerOnly hides ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }
