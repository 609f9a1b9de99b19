// Command privacy-sidecar is Caddy with the Alysio privacy modules built in.
// It takes every Caddy command and flag unchanged (run, adapt, validate, fmt,
// list-modules, version, ...) and adds the sidecar's own (audit verify, audit
// forget, demo).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/alysio/privacy-sidecar"
	_ "github.com/alysio/privacy-sidecar/internal/demo"
)

func main() {
	caddycmd.Main()
}
