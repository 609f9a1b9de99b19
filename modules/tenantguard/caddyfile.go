package tenantguard

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("tenant_guard", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("tenant_guard", httpcaddyfile.After, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(TenantGuard)
	h.Next() // consume the directive name
	for h.NextBlock(0) {
	}
	return m, nil
}
