package scopetrim

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("scope_trim", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("scope_trim", httpcaddyfile.After, "encode")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(ScopeTrim)
	h.Next() // consume the directive name
	for h.NextBlock(0) {
	}
	return m, nil
}
