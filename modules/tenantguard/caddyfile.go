package tenantguard

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("tenant_guard", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("tenant_guard", httpcaddyfile.After, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(TenantGuard)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	tenant_guard [<matcher>] {
//		claim        <name|dot.path|https://url-named/claim>   # default tenant_id
//		header       <field>                                   # default X-Tenant-ID
//		route_tenant <value with placeholders>
//		tenants      <file or directory>
//		connector    <name with placeholders>
//		inject
//	}
//
// The block may be omitted to take every default. When tenants names a
// readable registry, the adapter records its digest (tenants_digest) so that
// editing the registry and running `caddy reload` applies the edit. Each subdirective may
// appear once; placeholders stay unexpanded until a request is served.
func (m *TenantGuard) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return sidecar.RepeatedSubdirective(d)
		}
		seen[sub] = true
		var target *string
		switch sub {
		case "claim":
			target = &m.Claim
		case "header":
			target = &m.Header
		case "route_tenant":
			target = &m.RouteTenant
		case "tenants":
			target = &m.Tenants
		case "connector":
			target = &m.Connector
		case "inject":
			if d.NextArg() {
				return d.ArgErr()
			}
			m.Inject = true
			continue
		default:
			return d.Errf("unrecognized subdirective '%s'", sub)
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		*target = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	if m.Tenants != "" {
		// A registry that cannot be read yet is reported by Provision, with
		// its reason; the digest only exists to make edits reloadable.
		m.TenantsDigest, _ = RegistryDigest(caddy.NewReplacer().ReplaceKnown(m.Tenants, ""))
	}
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*TenantGuard)(nil)
