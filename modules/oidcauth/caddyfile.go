package oidcauth

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("oidc_auth", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("oidc_auth", httpcaddyfile.Before, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(OIDCAuth)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	oidc_auth {
//		issuer <url> {
//			audience <aud> [<aud>...]
//			jwks_uri <url>
//			refresh_interval <duration>
//			min_refresh_interval <duration>
//			fetch_timeout <duration>
//			fetch_attempts <n>
//			max_jwks_size <bytes>
//			max_discovery_size <bytes>
//		}
//		algorithms <alg> [<alg>...]
//		leeway <duration>
//		require_scope <scope> [<scope>...]
//		forward_header <header> <claim-path>
//		forward_token
//		token_type <typ>
//		reserved_header <name|prefix*> [...]
//		scope_claim <claim-path>
//		roles_claim <claim-path>
//		realm <realm>
//		max_token_size <bytes>
//		cache_size <n>
//		cache_ttl <duration>
//	}
//
// issuer may repeat; require_scope, forward_header and reserved_header may
// repeat and add up. Every other subdirective may appear once.
func (m *OIDCAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		switch sub {
		case "issuer", "require_scope", "forward_header", "reserved_header":
		default:
			if seen[sub] {
				return sidecar.RepeatedSubdirective(d)
			}
		}
		seen[sub] = true
		switch sub {
		case "issuer":
			ic, err := parseIssuer(d)
			if err != nil {
				return err
			}
			for _, other := range m.Issuers {
				if other.Issuer == ic.Issuer {
					return d.Errf("issuer %q is configured twice; merge its audiences into one block", ic.Issuer)
				}
			}
			m.Issuers = append(m.Issuers, ic)
		case "algorithms":
			m.Algorithms = d.RemainingArgs()
			if len(m.Algorithms) == 0 {
				return d.ArgErr()
			}
			for _, a := range m.Algorithms {
				if err := checkAlgorithm(a); err != nil {
					return d.Err(err.Error())
				}
			}
		case "leeway":
			dur, err := parseDurationArg(d)
			if err != nil {
				return err
			}
			m.Leeway = dur
		case "require_scope":
			scopes := d.RemainingArgs()
			if len(scopes) == 0 {
				return d.ArgErr()
			}
			m.RequireScope = append(m.RequireScope, scopes...)
		case "forward_header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.ArgErr()
			}
			if err := checkForwardHeader(args[0], args[1]); err != nil {
				return d.Err(err.Error())
			}
			if m.ForwardHeaders == nil {
				m.ForwardHeaders = make(map[string]string)
			}
			if _, dup := m.ForwardHeaders[args[0]]; dup {
				return d.Errf("forward_header %s is given twice; give it once", args[0])
			}
			m.ForwardHeaders[args[0]] = args[1]
		case "forward_token":
			if d.NextArg() {
				return d.ArgErr()
			}
			m.ForwardToken = true
		case "token_type":
			if !d.AllArgs(&m.TokenType) {
				return d.ArgErr()
			}
		case "reserved_header":
			names := d.RemainingArgs()
			if len(names) == 0 {
				return d.ArgErr()
			}
			m.ReservedHeaders = append(m.ReservedHeaders, names...)
		case "scope_claim":
			if !d.AllArgs(&m.ScopeClaim) {
				return d.ArgErr()
			}
		case "roles_claim":
			if !d.AllArgs(&m.RolesClaim) {
				return d.ArgErr()
			}
		case "realm":
			if !d.AllArgs(&m.Realm) {
				return d.ArgErr()
			}
		case "max_token_size":
			n, err := parseIntArg(d)
			if err != nil {
				return err
			}
			m.MaxTokenSize = int(n)
		case "cache_size":
			n, err := parseIntArg(d)
			if err != nil {
				return err
			}
			m.CacheSize = int(n)
		case "cache_ttl":
			dur, err := parseDurationArg(d)
			if err != nil {
				return err
			}
			m.CacheTTL = dur
		default:
			return d.Errf("unrecognized subdirective '%s'", sub)
		}
	}
	// A bare `oidc_auth` adapts (directive order tests use it) but fails
	// Validate: no issuer means no token can be verified.
	return nil
}

// parseIssuer parses `issuer <url> { ... }`.
func parseIssuer(d *caddyfile.Dispenser) (*Issuer, error) {
	ic := new(Issuer)
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	ic.Issuer = d.Val()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return nil, sidecar.RepeatedSubdirective(d)
		}
		seen[sub] = true
		var err error
		switch sub {
		case "audience":
			ic.Audiences = d.RemainingArgs()
			if len(ic.Audiences) == 0 {
				return nil, d.ArgErr()
			}
		case "jwks_uri":
			if !d.AllArgs(&ic.JWKSURI) {
				return nil, d.ArgErr()
			}
		case "refresh_interval":
			ic.RefreshInterval, err = parseDurationArg(d)
		case "min_refresh_interval":
			ic.MinRefreshInterval, err = parseDurationArg(d)
		case "fetch_timeout":
			ic.FetchTimeout, err = parseDurationArg(d)
		case "fetch_attempts":
			var n int64
			n, err = parseIntArg(d)
			ic.FetchAttempts = int(n)
		case "max_jwks_size":
			ic.MaxJWKSSize, err = parseIntArg(d)
		case "max_discovery_size":
			ic.MaxDiscoverySize, err = parseIntArg(d)
		default:
			return nil, d.Errf("unrecognized issuer subdirective '%s'", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(ic.Audiences) == 0 {
		return nil, d.Errf("issuer %q has no audience; add `audience <your-api>` to its block", ic.Issuer)
	}
	return ic, nil
}

func parseDurationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return 0, d.Errf("%s: invalid duration %q: %v", d.Val(), s, err)
	}
	if dur < 0 {
		return 0, d.Errf("%s: duration %q must not be negative", d.Val(), s)
	}
	return caddy.Duration(dur), nil
}

func parseIntArg(d *caddyfile.Dispenser) (int64, error) {
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < -1 {
		return 0, d.Errf("%s: %q is not a valid number", d.Val(), s)
	}
	return n, nil
}
