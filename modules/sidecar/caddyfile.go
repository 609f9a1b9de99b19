package sidecar

import "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

// RepeatedSubdirective is every module's refusal of a subdirective that a
// block gives a second time (the dispenser's current token), in one wording.
func RepeatedSubdirective(d *caddyfile.Dispenser) error {
	return d.Errf("subdirective '%s' is given twice; give it once", d.Val())
}
