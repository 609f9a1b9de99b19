// Command privacy-sidecar is Caddy with the Alysio privacy modules built in.
// It takes every Caddy command and flag unchanged (run, adapt, validate, fmt,
// list-modules, version, ...) and adds the sidecar's own (audit verify, audit
// forget, demo).
//
// The demo command, with its development OIDC issuer and sample connector,
// is compiled in unless the build sets the nodemo tag (demo.go), as the
// Dockerfile and CI's static build do: a production binary cannot mint
// tokens.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/alysio/privacy-sidecar"
)

func main() {
	caddycmd.Main()
}
