package scopetrim

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("scope_trim", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("scope_trim", httpcaddyfile.After, "encode")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(ScopeTrim)
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	// A policy that cannot be read now is refused at provision with its
	// reason; the digest only exists to make policy edits reloadable.
	m.PoliciesDigest, _ = policiesDigest(caddy.NewReplacer().ReplaceKnown(m.Policies, ""))
	return m, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	scope_trim {
//		policies  <file or directory>
//		max_body  <size>
//		max_depth <n>
//		hash_key  <secret>
//		request_headers [<name>...]
//	}
//
// request_headers turns on the request header allowlist for every endpoint:
// only the names listed (none is allowed: the default set alone) and the
// default set reach the upstream.
//
// The policies path is given in the block only: an inline argument starting
// with "/" would be read by the Caddyfile as a path matcher. Placeholders (such as {env.SCOPE_TRIM_HASH_KEY}) are kept as written and
// expanded at provision.
func (m *ScopeTrim) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		return d.Errf("scope_trim takes no arguments; name the policies in its block: policies <file or directory>")
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return sidecar.RepeatedSubdirective(d)
		}
		seen[name] = true
		if name == "request_headers" {
			m.RequestHeaders = append([]string{}, d.RemainingArgs()...) // non-nil: on, even empty
			continue
		}
		var arg string
		if !d.Args(&arg) || d.NextArg() {
			return d.ArgErr()
		}
		switch name {
		case "policies":
			m.Policies = arg
		case "max_body":
			size, err := humanize.ParseBytes(arg)
			if err != nil || size == 0 || size > 1<<40 {
				return d.Errf("max_body '%s' is not a size such as 16MiB", arg)
			}
			m.MaxBody = int64(size)
		case "max_depth":
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 || n > 10000 {
				return d.Errf("max_depth '%s' is not a number between 1 and 10000", arg)
			}
			m.MaxDepth = n
		case "hash_key":
			m.HashKey = arg
		default:
			return d.Errf("unrecognized subdirective '%s'", name)
		}
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*ScopeTrim)(nil)
)
