// Package oidcauth implements the oidc_auth HTTP handler (module http.handlers.oidc_auth).
//
// SKELETON: being written; not usable yet.
package oidcauth

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(OIDCAuth{})
}

// OIDCAuth is the oidc_auth handler.
type OIDCAuth struct{}

// CaddyModule returns the Caddy module information.
func (OIDCAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.oidc_auth",
		New: func() caddy.Module { return new(OIDCAuth) },
	}
}

// ServeHTTP refuses every request until the module is written: fail closed.
func (m *OIDCAuth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return caddyhttp.Error(http.StatusNotImplemented, fmt.Errorf("oidc_auth is not implemented yet"))
}

// Interface guards
var (
	_ caddyhttp.MiddlewareHandler = (*OIDCAuth)(nil)
)
