package sidecar

import (
	"context"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func caddyContext(r *http.Request, repl *caddy.Replacer, srv *caddyhttp.Server) context.Context {
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	return context.WithValue(ctx, caddyhttp.ServerCtxKey, srv)
}
