package auditlog

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("audit_log", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("audit_log", httpcaddyfile.After, "log_level")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(AuditLog)
	h.Next() // consume the directive name
	for h.NextBlock(0) {
	}
	return m, nil
}
