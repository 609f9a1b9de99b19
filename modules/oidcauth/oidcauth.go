// Package oidcauth implements the oidc_auth HTTP handler (module
// http.handlers.oidc_auth): it admits a request only with a bearer token
// that one of the configured OpenID Connect issuers signed, for one of that
// issuer's audiences, and hands the verified identity to the next handlers.
//
// Cheap checks (size, shape, algorithm, issuer, type, times, audience) run
// before any key is needed, so malformed or foreign tokens never cause a key
// fetch. The token is parsed once; its signature is then verified over the
// segments as received with the issuer's own keys (go-jose's key types,
// crypto/* primitives, RSA moduli precomputed per key), which this package
// fetches with timeouts, size caps, a TTL, background refresh and a rate
// limit on unknown kids.
package oidcauth

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

func init() {
	caddy.RegisterModule(OIDCAuth{})
}

// keySets holds every issuer's key set across config reloads.
var keySets = caddy.NewUsagePool()

// Defaults. They are documented on the fields that use them.
const (
	defaultLeeway          = 30 * time.Second
	defaultMaxTokenSize    = 16 << 10
	defaultCacheSize       = 10000 // see tokenCache for how it was chosen
	defaultCacheTTL        = 5 * time.Minute
	defaultRealm           = "privacy-sidecar"
	defaultRolesClaim      = "roles"
	defaultRefreshInterval = 15 * time.Minute
	defaultMinRefresh      = 30 * time.Second
	defaultFetchTimeout    = 5 * time.Second
	defaultFetchAttempts   = 2
	defaultMaxJWKSBytes    = 1 << 20
	defaultMaxDiscoveryB   = 256 << 10
	maxLeeway              = 10 * time.Minute
)

// OIDCAuth admits requests that carry a valid OIDC access token
// (`Authorization: Bearer <JWT>`) and refuses the others with 401, 403 or
// 503 and a problem+json body. On success the verified identity is in the
// request context (for tenant_guard, scope_trim, audit_log) and in
// placeholders, client-sent identity headers have been removed, and the
// Authorization header is removed unless forward_token is set.
type OIDCAuth struct {
	// Issuers are the trusted token issuers. The token's (unverified) `iss`
	// selects one; its keys alone can verify the token. At least one.
	Issuers []*Issuer `json:"issuers,omitempty"`

	// Algorithms is the allowlist of JWS algorithms. Asymmetric only:
	// RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA.
	// `none` and HS* are configuration errors. Default: all of these.
	Algorithms []string `json:"algorithms,omitempty"`

	// Leeway is the clock skew allowed on `exp`, `nbf` and `iat`.
	// Default 30s, at most 10m.
	Leeway caddy.Duration `json:"leeway,omitempty"`

	// RequireScope lists scopes the token must all carry; otherwise 403
	// insufficient_scope.
	RequireScope []string `json:"require_scope,omitempty"`

	// ForwardHeaders maps an upstream header name to a claim path
	// ("sub", "org.id", "https://example.com/tenant"). Client-sent headers
	// of these names are always removed first; the header is set only when
	// the verified token has the claim.
	ForwardHeaders map[string]string `json:"forward_headers,omitempty"`

	// ForwardToken keeps the Authorization header for the upstream. By
	// default it is removed, so the upstream never sees the token.
	ForwardToken bool `json:"forward_token,omitempty"`

	// TokenType, when set, is the required JOSE `typ` header, compared
	// case-insensitively with "application/" optional. Use "at+jwt" to
	// accept only RFC 9068 access tokens and refuse ID tokens.
	TokenType string `json:"token_type,omitempty"`

	// ReservedHeaders are header names removed from every request in
	// addition to the built-in list (X-Auth-*, X-User*, X-Forwarded-User,
	// X-Remote-User, ...). A trailing `*` matches a prefix. Matching ignores
	// case and reads `_` and `.` as `-`.
	ReservedHeaders []string `json:"reserved_headers,omitempty"`

	// ScopeClaim is the claim path that holds scopes (a space-delimited
	// string or an array). Default: `scope`, then `scp`.
	ScopeClaim string `json:"scope_claim,omitempty"`

	// RolesClaim is the claim path that holds roles (string or array).
	// Default `roles`.
	RolesClaim string `json:"roles_claim,omitempty"`

	// Realm is the realm of the WWW-Authenticate challenge. Default
	// "privacy-sidecar".
	Realm string `json:"realm,omitempty"`

	// MaxTokenSize is the largest Authorization header value accepted, in
	// bytes. Default 16384.
	MaxTokenSize int `json:"max_token_size,omitempty"`

	// CacheSize bounds the verified-token cache (entries). Default 10000;
	// -1 disables the cache.
	CacheSize int `json:"cache_size,omitempty"`

	// CacheTTL is the longest a verified token is cached; an entry also
	// ends at the token's exp. Default 5m.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`

	issuers   map[string]*issuer
	algs      map[string]bool
	tokenType string
	reserved  *sidecar.HeaderNames
	cache     *tokenCache
	logger    *zap.Logger
}

// Issuer is one trusted token issuer.
type Issuer struct {
	// Issuer is the issuer identifier, exactly as in the tokens' `iss` and
	// the discovery document. Accepts {env.*} placeholders.
	Issuer string `json:"issuer,omitempty"`

	// Audiences are the accepted `aud` values; a token must name at least
	// one. Required. Accepts {env.*} placeholders.
	Audiences []string `json:"audiences,omitempty"`

	// JWKSURI skips discovery and fetches keys from this URL. Accepts
	// {env.*} placeholders.
	JWKSURI string `json:"jwks_uri,omitempty"`

	// RefreshInterval is how often the keys are refetched in the
	// background; a key the issuer removed stops verifying within it.
	// Default 15m.
	RefreshInterval caddy.Duration `json:"refresh_interval,omitempty"`

	// MinRefreshInterval is the least time between two fetches caused by
	// requests (unknown kid, or keys not yet available); it is also the
	// Retry-After of a 503. Default 30s.
	MinRefreshInterval caddy.Duration `json:"min_refresh_interval,omitempty"`

	// FetchTimeout limits each discovery or JWKS request. Default 5s.
	FetchTimeout caddy.Duration `json:"fetch_timeout,omitempty"`

	// FetchAttempts is how many times one fetch is tried. Default 2.
	FetchAttempts int `json:"fetch_attempts,omitempty"`

	// MaxJWKSSize caps the JWKS body in bytes. Default 1 MiB.
	MaxJWKSSize int64 `json:"max_jwks_size,omitempty"`

	// MaxDiscoverySize caps the discovery document in bytes. Default 256 KiB.
	MaxDiscoverySize int64 `json:"max_discovery_size,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (OIDCAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.oidc_auth",
		New: func() caddy.Module { return new(OIDCAuth) },
	}
}

// Provision sets defaults and takes a key set per issuer from the usage
// pool. It fetches nothing: keys are fetched on first use, so the sidecar
// starts while an IdP is down.
func (m *OIDCAuth) Provision(ctx caddy.Context) error {
	m.logger = ctx.Logger()
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering oidc_auth metrics: %w", err)
	}
	repl := caddy.NewReplacer()
	if m.Leeway == 0 {
		m.Leeway = caddy.Duration(defaultLeeway)
	}
	if len(m.Algorithms) == 0 {
		for alg := range asymmetricAlgs {
			m.Algorithms = append(m.Algorithms, alg)
		}
		slices.Sort(m.Algorithms)
	}
	m.algs = make(map[string]bool)
	for _, a := range m.Algorithms {
		m.algs[a] = true
	}
	if m.MaxTokenSize == 0 {
		m.MaxTokenSize = defaultMaxTokenSize
	}
	if m.CacheSize == 0 {
		m.CacheSize = defaultCacheSize
	}
	if m.CacheTTL == 0 {
		m.CacheTTL = caddy.Duration(defaultCacheTTL)
	}
	if m.Realm == "" {
		m.Realm = defaultRealm
	}
	if m.RolesClaim == "" {
		m.RolesClaim = defaultRolesClaim
	}
	m.tokenType = normaliseTyp(m.TokenType)
	m.cache = newTokenCache(m.CacheSize)

	reserved := slices.Concat(defaultReservedHeaders, m.ReservedHeaders)
	for name := range m.ForwardHeaders {
		reserved = append(reserved, name)
	}
	m.reserved = sidecar.NewHeaderNames(reserved...)

	m.issuers = make(map[string]*issuer)
	for _, ic := range m.Issuers {
		if ic == nil {
			return errors.New("an issuer entry is empty; remove it or give it an issuer URL")
		}
		ic.Issuer = repl.ReplaceKnown(ic.Issuer, "")
		ic.JWKSURI = repl.ReplaceKnown(ic.JWKSURI, "")
		for i, a := range ic.Audiences {
			ic.Audiences[i] = repl.ReplaceKnown(a, "")
		}
		setIssuerDefaults(ic)
		if err := validateIssuer(ic); err != nil {
			return err
		}
		if _, dup := m.issuers[ic.Issuer]; dup {
			return fmt.Errorf("issuer %q is configured twice; merge its audiences into one issuer block", ic.Issuer)
		}
		if err := m.provisionIssuer(ic); err != nil {
			return err
		}
	}
	return nil
}

// Validate refuses configurations that could admit forged or unintended
// tokens.
func (m *OIDCAuth) Validate() error {
	if len(m.Issuers) == 0 {
		return errors.New("no issuer configured; add `issuer <url> { audience <aud> }`")
	}
	for _, a := range m.Algorithms {
		if err := checkAlgorithm(a); err != nil {
			return err
		}
	}
	if m.Leeway < 0 || time.Duration(m.Leeway) > maxLeeway {
		return fmt.Errorf("leeway %s is out of range; use 0 to %s", time.Duration(m.Leeway), maxLeeway)
	}
	for name, claim := range m.ForwardHeaders {
		if err := checkForwardHeader(name, claim); err != nil {
			return err
		}
	}
	if m.MaxTokenSize < 0 {
		return errors.New("max_token_size must be positive")
	}
	for _, s := range m.RequireScope {
		if s == "" || strings.ContainsAny(s, " \t\"\\") {
			return fmt.Errorf("require_scope %q is not a valid scope token", s)
		}
	}
	return nil
}

// Cleanup releases this config's hold on the issuers' key sets; a key set
// used by the next config survives the reload.
func (m *OIDCAuth) Cleanup() error {
	for _, iss := range m.issuers {
		_, _ = keySets.Delete(iss.poolKey)
	}
	return nil
}

// ServeHTTP removes client-sent identity headers, then admits the request
// only with a verified token.
func (m *OIDCAuth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	r, _ = sidecar.WithDecision(r) // when oidc_auth is the first sidecar handler
	m.reserved.Scrub(r)

	raw, status, err := m.extractToken(r)
	if err != nil {
		return m.refuse(w, r, status, err)
	}
	now := time.Now()
	var id *sidecar.Identity
	var published *placeholders
	ck := tokenCacheKey(raw)
	if e, ok := m.cache.get(ck, now); ok && e.issuer.keys.hasThumbprint(e.thumbprint) {
		cacheHits.Inc()
		id, published = e.identity, e.published
	} else {
		cacheMisses.Inc()
		t, err := parseToken(raw)
		if err != nil {
			return m.refuse(w, r, http.StatusUnauthorized, err)
		}
		iss, err := m.precheck(t, now)
		if err != nil {
			return m.refuse(w, r, http.StatusUnauthorized, err)
		}
		id, published, err = m.verify(w, r, iss, t, ck, now)
		if err != nil || id == nil {
			return err
		}
	}

	if missing := m.missingScopes(id); len(missing) > 0 {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error="insufficient_scope", scope=%q`,
			m.Realm, strings.Join(m.RequireScope, " ")))
		return m.deny(w, r, http.StatusForbidden, sidecar.ReasonInsufficientScope, "the token lacks a required scope")
	}

	r = sidecar.WithIdentity(r, id)
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	published.publish(repl)
	m.forwardHeaders(r, id)
	if m.ForwardToken {
		sidecar.DecisionFrom(r).AddVerifiedHeader("Authorization")
	} else {
		r.Header.Del("Authorization")
	}
	allowed.Inc()
	return next.ServeHTTP(w, r)
}

// verify resolves the issuer's keys and checks the signature; it writes the
// refusal itself and returns a nil identity when it refused.
func (m *OIDCAuth) verify(w http.ResponseWriter, r *http.Request, iss *issuer, t *preToken, ck cacheKey, now time.Time) (*sidecar.Identity, *placeholders, error) {
	keys, retryAfter, err := iss.keys.lookup(r.Context(), t.kid, t.alg)
	if errors.Is(err, errKeysUnavailable) {
		secs := int(retryAfter.Round(time.Second) / time.Second)
		w.Header().Set("Retry-After", fmt.Sprint(max(secs, 1)))
		m.debug("issuer keys unavailable", sidecar.ReasonKeysUnavailable, iss.cfg.Issuer, err)
		return nil, nil, m.deny(w, r, http.StatusServiceUnavailable, sidecar.ReasonKeysUnavailable, "the issuer's signing keys are not available yet; retry later")
	}
	if err != nil {
		return nil, nil, m.refuse(w, r, http.StatusUnauthorized, &parseError{reason: sidecar.ReasonTokenInvalid, msg: err.Error()})
	}
	used, err := verifySignature(t, keys)
	if err != nil {
		return nil, nil, m.refuse(w, r, http.StatusUnauthorized, err)
	}
	id := m.newIdentity(t, iss)
	expires := now.Add(time.Duration(m.CacheTTL))
	if t.exp.Before(expires) {
		expires = t.exp
	}
	published := newPlaceholders(id)
	m.cache.put(&cacheEntry{key: ck, issuer: iss, identity: id, published: published, thumbprint: used.thumbprint, expires: expires})
	return id, published, nil
}

// extractToken returns the bearer token of the one Authorization header
// (RFC 6750 2.1). The query string and the body are never read.
func (m *OIDCAuth) extractToken(r *http.Request) (string, int, error) {
	values := r.Header.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", http.StatusUnauthorized, &parseError{reason: sidecar.ReasonTokenMissing, msg: "no Authorization header"}
	case len(values) > 1:
		return "", http.StatusBadRequest, &parseError{reason: sidecar.ReasonTokenMalformed, msg: "more than one Authorization header"}
	}
	v := values[0]
	if len(v) > m.MaxTokenSize {
		return "", http.StatusUnauthorized, &parseError{reason: sidecar.ReasonTokenMalformed, msg: "token exceeds max_token_size"}
	}
	scheme, token, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", http.StatusUnauthorized, &parseError{reason: sidecar.ReasonTokenMissing, msg: "Authorization is not a Bearer credential"}
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || strings.ContainsAny(token, " \t,") {
		return "", http.StatusUnauthorized, &parseError{reason: sidecar.ReasonTokenMalformed, msg: "bearer credential is not one b64token"}
	}
	return token, 0, nil
}

// forwardHeaders sets the configured headers from verified claims, and notes
// them in the decision record as verified (scope_trim's request_headers
// always forwards those).
func (m *OIDCAuth) forwardHeaders(r *http.Request, id *sidecar.Identity) {
	dec := sidecar.DecisionFrom(r)
	for name, path := range m.ForwardHeaders {
		v, ok := id.Claim(path)
		if !ok {
			continue
		}
		s, ok := headerValue(v)
		if !ok {
			if c := m.logger.Check(zapcore.WarnLevel, "claim not forwarded: value unsafe for a header"); c != nil {
				c.Write(zap.String("header", name), zap.String("claim", path))
			}
			continue
		}
		key := http.CanonicalHeaderKey(name)
		r.Header[key] = []string{s}
		dec.AddVerifiedHeader(key)
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*OIDCAuth)(nil)
	_ caddy.Validator             = (*OIDCAuth)(nil)
	_ caddy.CleanerUpper          = (*OIDCAuth)(nil)
	_ caddyhttp.MiddlewareHandler = (*OIDCAuth)(nil)
	_ caddyfile.Unmarshaler       = (*OIDCAuth)(nil)
)
