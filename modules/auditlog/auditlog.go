// Package auditlog implements the audit_log HTTP handler (module http.handlers.audit_log).
//
// SKELETON: being written; not usable yet.
package auditlog

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(AuditLog{})
}

// AuditLog is the audit_log handler.
type AuditLog struct{}

// CaddyModule returns the Caddy module information.
func (AuditLog) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.audit_log",
		New: func() caddy.Module { return new(AuditLog) },
	}
}

// ServeHTTP refuses every request until the module is written: fail closed.
func (m *AuditLog) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return caddyhttp.Error(http.StatusNotImplemented, fmt.Errorf("audit_log is not implemented yet"))
}

// Interface guards
var (
	_ caddyhttp.MiddlewareHandler = (*AuditLog)(nil)
)
