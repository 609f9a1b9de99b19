package connectorauth

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("connector_auth", parseCaddyfile)
	// tenant_guard is ordered right after basic_auth; forward_auth follows
	// basic_auth in Caddy's order, so this puts connector_auth after
	// tenant_guard whatever order the plugins register in, and before
	// scope_trim (after encode) and reverse_proxy. A directive can only be
	// ordered against a standard one (httpcaddyfile.RegisterDirectiveOrder).
	httpcaddyfile.RegisterDirectiveOrder("connector_auth", httpcaddyfile.After, "forward_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(ConnectorAuth)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	connector_auth [<matcher>] {
//		connector               <name>
//		token_url               <url>
//		revocation_url          <url>
//		client_id               <id>
//		client_secret           <secret>
//		grant                   refresh_token|client_credentials
//		scopes                  <scope...>
//		header                  <field>            # default Authorization
//		key                     <secret>           # e.g. {env.SIDECAR_CONNECTIONS_KEY}
//		client_auth             basic|post         # default basic
//		token_timeout           <duration>         # default 10s
//		revocation_timeout      <duration>         # default 10s
//		retry_after             <duration>         # default 5s
//		reusable_refresh_tokens
//	}
//
// Each subdirective may appear once; placeholders stay unexpanded until the
// config is loaded.
func (m *ConnectorAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
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
		var duration *caddy.Duration
		switch sub {
		case "connector":
			target = &m.Connector
		case "token_url":
			target = &m.TokenURL
		case "revocation_url":
			target = &m.RevocationURL
		case "client_id":
			target = &m.ClientID
		case "client_secret":
			target = &m.ClientSecret
		case "grant":
			target = &m.Grant
		case "header":
			target = &m.Header
		case "key":
			target = &m.Key
		case "client_auth":
			target = &m.ClientAuth
		case "token_timeout":
			duration = &m.TokenTimeout
		case "revocation_timeout":
			duration = &m.RevocationTimeout
		case "retry_after":
			duration = &m.RetryAfter
		case "scopes":
			m.Scopes = d.RemainingArgs()
			if len(m.Scopes) == 0 {
				return d.ArgErr()
			}
			continue
		case "reusable_refresh_tokens":
			if d.NextArg() {
				return d.ArgErr()
			}
			m.ReusableRefreshTokens = true
			continue
		default:
			return d.Errf("unrecognized subdirective '%s'", sub)
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		if duration != nil {
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return d.Errf("%s: %v", sub, err)
			}
			*duration = caddy.Duration(dur)
		} else {
			*target = d.Val()
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*ConnectorAuth)(nil)
