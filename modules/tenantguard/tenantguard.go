// Package tenantguard implements the tenant_guard HTTP handler (module http.handlers.tenant_guard).
//
// SKELETON: being written; not usable yet.
package tenantguard

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(TenantGuard{})
}

// TenantGuard is the tenant_guard handler.
type TenantGuard struct{}

// CaddyModule returns the Caddy module information.
func (TenantGuard) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.tenant_guard",
		New: func() caddy.Module { return new(TenantGuard) },
	}
}

// ServeHTTP refuses every request until the module is written: fail closed.
func (m *TenantGuard) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return caddyhttp.Error(http.StatusNotImplemented, fmt.Errorf("tenant_guard is not implemented yet"))
}

// Interface guards
var (
	_ caddyhttp.MiddlewareHandler = (*TenantGuard)(nil)
)
