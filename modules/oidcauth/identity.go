package oidcauth

import (
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// newIdentity builds the identity from verified claims. Numbers in Claims
// are json.Number, so large integer ids stay exact.
func (m *OIDCAuth) newIdentity(t *preToken, iss *issuer) *sidecar.Identity {
	id := &sidecar.Identity{
		Issuer:    iss.cfg.Issuer,
		Audiences: t.aud,
		Expiry:    t.exp,
		Claims:    t.claims,
	}
	id.Subject, _ = t.claims["sub"].(string)
	if azp, ok := t.claims["azp"].(string); ok && azp != "" {
		id.ClientID = azp
	} else {
		id.ClientID, _ = t.claims["client_id"].(string)
	}
	if m.ScopeClaim != "" {
		v, _ := id.Claim(m.ScopeClaim)
		id.Scopes = stringList(v, true)
	} else {
		id.Scopes = stringList(t.claims["scope"], true)
		if len(id.Scopes) == 0 {
			id.Scopes = stringList(t.claims["scp"], true)
		}
	}
	if v, ok := id.Claim(m.RolesClaim); ok {
		id.Roles = stringList(v, false)
	}
	return id
}

// stringList reads a claim that is either a string (split on spaces when
// spaceDelimited, as RFC 8693 "scope" is) or an array of strings. Anything
// else yields nothing, so a malformed claim grants nothing.
func stringList(v any, spaceDelimited bool) []string {
	switch x := v.(type) {
	case string:
		if spaceDelimited {
			return strings.Fields(x)
		}
		if x == "" {
			return nil
		}
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// missingScopes returns the required scopes the identity lacks.
func (m *OIDCAuth) missingScopes(id *sidecar.Identity) []string {
	var missing []string
	for _, s := range m.RequireScope {
		if !id.HasScope(s) {
			missing = append(missing, s)
		}
	}
	return missing
}

// claimPlaceholderPrefix is the namespace of {oidc.claim.<path>}.
const claimPlaceholderPrefix = "oidc.claim."

// placeholders publishes a verified identity to the rest of the route as
// one replacer provider, built once per identity and kept with it in the
// token cache: a cached request then costs one append instead of eight map
// writes and four string joins. Values are personal data: they are meant
// for headers and routing, and a log format that prints them is the
// operator's choice.
type placeholders struct {
	id                              *sidecar.Identity
	audience, scopes, roles, expiry string
	replace                         caddy.ReplacerFunc
}

func newPlaceholders(id *sidecar.Identity) *placeholders {
	p := &placeholders{
		id:       id,
		audience: strings.Join(id.Audiences, ","),
		scopes:   strings.Join(id.Scopes, " "),
		roles:    strings.Join(id.Roles, ","),
		expiry:   id.Expiry.UTC().Format(time.RFC3339),
	}
	p.replace = p.lookup // bound once, so that publishing it allocates nothing
	return p
}

func (p *placeholders) lookup(key string) (any, bool) {
	switch key {
	case "http.auth.user.id", "oidc.subject":
		return p.id.Subject, true
	case "oidc.issuer":
		return p.id.Issuer, true
	case "oidc.client_id":
		return p.id.ClientID, true
	case "oidc.audience":
		return p.audience, true
	case "oidc.scopes":
		return p.scopes, true
	case "oidc.roles":
		return p.roles, true
	case "oidc.expiry":
		return p.expiry, true
	}
	path, ok := strings.CutPrefix(key, claimPlaceholderPrefix)
	if !ok {
		return nil, false
	}
	v, ok := p.id.Claim(path)
	if !ok {
		return nil, false
	}
	s, ok := headerValue(v)
	return s, ok
}

// publish makes the placeholders available to the rest of the request.
func (p *placeholders) publish(repl *caddy.Replacer) {
	if repl != nil {
		repl.Map(p.replace)
	}
}
