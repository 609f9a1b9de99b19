package sidecar

import (
	"context"
	"net/http"
	"slices"
	"time"
)

// Identity is a verified bearer token's subject and claims. Only oidc_auth
// creates one, after the token's signature and claims have been checked.
type Identity struct {
	// Subject is the token's `sub` claim.
	Subject string
	// Issuer is the token's `iss` claim, exactly as configured.
	Issuer string
	// Audiences are the token's `aud` values.
	Audiences []string
	// ClientID is the OAuth client the token was issued to (`azp` or `client_id`).
	ClientID string
	// Scopes are the token's scopes (`scope` space-delimited, or `scp` array).
	Scopes []string
	// Roles are the token's roles, read from the configured claim path.
	Roles []string
	// Expiry is the token's `exp`.
	Expiry time.Time
	// Claims is the whole decoded payload. Treat it as read-only: the same
	// map may be shared by every request that presents the same token.
	Claims map[string]any
}

// HasScope reports whether the identity carries the scope exactly.
func (id *Identity) HasScope(scope string) bool {
	return id != nil && slices.Contains(id.Scopes, scope)
}

// Claim returns the claim at a dot-separated path ("org.id"), or at the exact
// key when the key itself contains dots (URL-named claims such as
// "https://example.com/tenant").
func (id *Identity) Claim(path string) (any, bool) {
	if id == nil || id.Claims == nil || path == "" {
		return nil, false
	}
	if v, ok := id.Claims[path]; ok {
		return v, true
	}
	var cur any = id.Claims
	for len(path) > 0 {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		key := path
		rest := ""
		for i := 0; i < len(path); i++ {
			if path[i] == '.' {
				key, rest = path[:i], path[i+1:]
				break
			}
		}
		if v, ok := obj[path]; ok { // the remaining path may itself be a key
			return v, true
		}
		cur, ok = obj[key]
		if !ok {
			return nil, false
		}
		path = rest
	}
	return cur, true
}

type identityKey struct{}

// WithIdentity returns r carrying the verified identity for later handlers.
// The identity goes into the request's decision record when there is one
// (oidc_auth always makes one): a second request copy and context value on
// every request cost more than the lookup saves.
func WithIdentity(r *http.Request, id *Identity) *http.Request {
	if d := DecisionFrom(r); d != nil {
		d.Identity = id
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
}

// IdentityFrom returns the verified identity that oidc_auth put in the
// request, or nil when there is none (oidc_auth missing or misordered).
func IdentityFrom(r *http.Request) *Identity {
	if d := DecisionFrom(r); d != nil && d.Identity != nil {
		return d.Identity
	}
	id, _ := r.Context().Value(identityKey{}).(*Identity)
	return id
}
