// Package scopetrim implements the scope_trim HTTP handler (module http.handlers.scope_trim).
//
// SKELETON: being written; not usable yet.
package scopetrim

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(ScopeTrim{})
}

// ScopeTrim is the scope_trim handler.
type ScopeTrim struct{}

// CaddyModule returns the Caddy module information.
func (ScopeTrim) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.scope_trim",
		New: func() caddy.Module { return new(ScopeTrim) },
	}
}

// ServeHTTP refuses every request until the module is written: fail closed.
func (m *ScopeTrim) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return caddyhttp.Error(http.StatusNotImplemented, fmt.Errorf("scope_trim is not implemented yet"))
}

// Interface guards
var (
	_ caddyhttp.MiddlewareHandler = (*ScopeTrim)(nil)
)
