package sidecar

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// errorRoutesHandle reports whether the server's handle_errors routes would
// write a response for err. Caddy runs them for every error a handler
// returns, and when none matches, its errorEmptyHandler writes only the
// status (modules/caddyhttp/caddyhttp.go and server.go, ServeHTTP): the
// problem body would be lost. So a refusal goes to those routes only when
// one of them matches it as Caddy would match it: on the original request
// (server.go restores method and URI before the error chain, issue #3717)
// with the error's placeholders set ({http.error.status_code}, which
// `handle_errors 404` compiles to an expression matcher on).
//
// A matching route counts when it runs a handler other than a subroute, or
// a subroute (what handle_errors and handle compile to) whose own routes
// handle the error. A matcher that fails with an error leaves the decision
// to Caddy, as before.
func errorRoutesHandle(r *http.Request, err error) bool {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || srv == nil || srv.Errors == nil || len(srv.Errors.Routes) == 0 {
		return false
	}
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return true // cannot evaluate the routes: leave the refusal to Caddy
	}
	probe := *r
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		probe.Method, probe.RequestURI, probe.URL = orig.Method, orig.RequestURI, orig.URL
	}
	handled := routesHandle(srv.Errors.Routes, srv.Errors.WithError(&probe, err))
	if !handled {
		// WithError set these on the request's replacer; the refusal is no
		// longer an error, so they must not show up in later logs.
		for _, k := range []string{"http.error", "http.error.status_code", "http.error.status_text", "http.error.id", "http.error.trace", "http.error.message"} {
			repl.Delete(k)
		}
	}
	return handled
}

func routesHandle(routes caddyhttp.RouteList, r *http.Request) bool {
	for _, route := range routes {
		match, err := route.MatcherSets.AnyMatchWithError(r)
		if err != nil {
			return true
		}
		if !match {
			continue
		}
		for _, h := range route.Handlers {
			sub, ok := h.(*caddyhttp.Subroute)
			if !ok || routesHandle(sub.Routes, r) {
				return true
			}
		}
		if route.Terminal {
			return false
		}
	}
	return false
}
