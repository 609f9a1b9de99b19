// Package sidecarhealth implements the sidecar_health HTTP handler (module
// http.handlers.sidecar_health): a readiness check for probes that reports,
// for each issuer that oidc_auth verifies tokens from, whether its signing
// keys are loaded.
package sidecarhealth

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

func init() {
	caddy.RegisterModule(Health{})
}

// Health answers 200 when every issuer's keys are loaded and 503 otherwise,
// with a JSON body listing each issuer:
//
//	{"status":"ok","issuers":[{"issuer":"https://idp.example.com","keys_loaded":true,"keys":2,"last_refresh":"..."}]}
//
// A sidecar that cannot verify tokens refuses every request with 503, so a
// readiness probe should take it out of rotation until its keys are in.
// The body names issuers and counts keys; it holds no key material.
type Health struct{}

// CaddyModule returns the Caddy module information.
func (Health) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sidecar_health",
		New: func() caddy.Module { return new(Health) },
	}
}

// report is the health body.
type report struct {
	Status  string              `json:"status"`
	Issuers []sidecar.KeyStatus `json:"issuers"`
}

// ServeHTTP writes the report; it never calls the next handler.
func (Health) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	rep := report{Status: "ok", Issuers: sidecar.KeyStatuses()}
	status := http.StatusOK
	for _, is := range rep.Issuers {
		if !is.Loaded {
			rep.Status, status = "unavailable", http.StatusServiceUnavailable
		}
	}
	body, err := json.Marshal(rep)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}

// Interface guards
var (
	_ caddyhttp.MiddlewareHandler = (*Health)(nil)
)
