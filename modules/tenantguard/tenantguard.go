// Package tenantguard implements the tenant_guard HTTP handler (module
// http.handlers.tenant_guard): one tenant per request, proven by the verified
// token and never chosen by the client.
//
// It reads the identity that oidc_auth verified, takes the tenant from a
// claim, requires the tenant header to state exactly that tenant, removes
// every disguised copy of the header, and checks the tenant, its issuer and
// the route's connector against an optional tenant registry. The upstream
// always receives exactly one tenant header, equal to the token's tenant.
package tenantguard

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

func init() {
	caddy.RegisterModule(TenantGuard{})
}

// Defaults for the config fields.
const (
	DefaultClaim  = "tenant_id"
	DefaultHeader = "X-Tenant-ID"
)

// Placeholders the handler publishes for later handlers and the access log.
const (
	PlaceholderTenant         = "tenant.id"
	PlaceholderGuardTenant    = "http.tenant_guard.tenant"
	PlaceholderGuardConnector = "http.tenant_guard.connector"
	placeholderOpen           = "{"
)

// Refusal details: fixed texts, so that no client value or token content is
// ever echoed back.
const (
	identityMissingDetail       = "no verified identity reached tenant_guard; oidc_auth must run before it on this route"
	tenantClaimMissingDetail    = "the token carries no usable tenant claim"
	tenantMissingDetail         = "the request must state its tenant in the tenant header"
	tenantMalformedDetail       = "the tenant header must appear once with one value made of letters, digits, '-', '_' or '.'"
	tenantMismatchDetail        = "the tenant header does not name the token's tenant"
	routeTenantMismatchDetail   = "the route's tenant is not the token's tenant"
	tenantUnknownDetail         = "the token's tenant is not in the tenant registry"
	tenantSuspendedDetail       = "the token's tenant is suspended"
	issuerNotAllowedDetail      = "the token's issuer may not speak for this tenant"
	connectorDisconnectedDetail = "this connector is not connected for the token's tenant"
)

// TenantGuard is the tenant_guard handler. It must run after oidc_auth.
type TenantGuard struct {
	// Claim is where the tenant is in the verified token: a top-level claim
	// name, a dot-separated path into nested objects ("org.id"), or a claim
	// name that itself contains dots, such as a URL-named claim
	// ("https://example.com/tenant"); an exact key wins over a path.
	// The claim must be a string in the tenant id safe set (or an integer).
	// Default: tenant_id.
	Claim string `json:"claim,omitempty"`

	// Header is the request header that states the tenant. The request must
	// carry it exactly once, equal to the token's tenant; every disguised
	// copy (other case, or '_' or '.' for '-') is removed before the upstream.
	// Default: X-Tenant-ID.
	Header string `json:"header,omitempty"`

	// RouteTenant, when set, is the tenant the route names, usually a
	// placeholder such as {http.request.host.labels.2} or
	// {http.request.uri.path.1}. It must equal the token's tenant; a value
	// that expands to nothing is a mismatch. Placeholders allowed.
	RouteTenant string `json:"route_tenant,omitempty"`

	// Tenants is the tenant registry: a JSON file, or a directory whose
	// *.json files (except *.schema.json) are read together. It is loaded
	// once when the config is loaded; edit it and run `caddy reload`.
	// {env.*} placeholders allowed.
	Tenants string `json:"tenants,omitempty"`

	// TenantsDigest is written by the Caddyfile adapter: the registry's
	// SHA-256 when the Caddyfile was adapted. It only marks the config as
	// changed when the registry changed, so that `caddy reload` applies a
	// registry edit; it is not checked. With JSON configs, reload with
	// `caddy reload --force` (or the admin API's Cache-Control: must-revalidate).
	TenantsDigest string `json:"tenants_digest,omitempty"`

	// Connector is the connector this route serves. With a registry, it must
	// be listed as connected for the tenant. Placeholders allowed.
	Connector string `json:"connector,omitempty"`

	// Inject sets the tenant header from the token when the request does not
	// carry it, instead of refusing with tenant_missing. A header that is
	// present is still checked.
	Inject bool `json:"inject,omitempty"`

	headerKey        string               // canonical form of Header
	tenantHeader     *sidecar.HeaderNames // Header under the folding rule
	connectorDynamic bool
	registry         *Registry
	logger           *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (TenantGuard) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.tenant_guard",
		New: func() caddy.Module { return new(TenantGuard) },
	}
}

// Provision sets defaults and loads the tenant registry.
func (m *TenantGuard) Provision(ctx caddy.Context) error {
	m.logger = ctx.Logger()
	if m.Claim == "" {
		m.Claim = DefaultClaim
	}
	if m.Header == "" {
		m.Header = DefaultHeader
	}
	m.headerKey = http.CanonicalHeaderKey(m.Header)
	m.tenantHeader = sidecar.NewHeaderNames(m.headerKey)
	m.connectorDynamic = strings.Contains(m.Connector, placeholderOpen)
	if m.Tenants != "" {
		path := caddy.NewReplacer().ReplaceKnown(m.Tenants, "")
		reg, err := LoadRegistry(path)
		if err != nil {
			return err
		}
		m.registry = reg
		m.logger.Info("tenant registry loaded", zap.String("path", path), zap.Int("tenants", reg.Len()))
	}
	return nil
}

// Validate refuses a configuration that could not guard anything.
func (m *TenantGuard) Validate() error {
	if err := validHeaderName(m.Header); err != nil {
		return err
	}
	if strings.TrimSpace(m.Claim) != m.Claim || strings.HasPrefix(m.Claim, ".") || strings.HasSuffix(m.Claim, ".") {
		return fmt.Errorf("claim %q is not a claim name or dot-separated path; write it like tenant_id or org.id", m.Claim)
	}
	if m.Connector != "" && !m.connectorDynamic && !ValidTenantID(m.Connector) {
		return fmt.Errorf("connector %q may contain only letters, digits, '-', '_' and '.'", m.Connector)
	}
	return nil
}

// ServeHTTP lets the request through only when its tenant is the token's.
func (m *TenantGuard) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	r, decision := sidecar.WithDecision(r) // when tenant_guard is the first sidecar handler
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)

	connector := m.Connector
	if m.connectorDynamic {
		connector = expand(repl, connector)
	}
	decision.Connector = connector

	// Disguised copies go first, so that they never reach the upstream and
	// are recorded even when the request is refused for another reason.
	scrubDisguised(r.Header, m.headerKey, m.tenantHeader, decision)
	m.tenantHeader.CleanConnection(r.Header, decision)
	m.tenantHeader.ScrubTrailers(r)

	id := sidecar.IdentityFrom(r)
	if id == nil {
		return m.refuse(w, r, http.StatusInternalServerError, sidecar.ReasonIdentityMissing, identityMissingDetail)
	}
	tenant, ok := tenantFromIdentity(id, m.Claim)
	if !ok {
		return m.refuse(w, r, http.StatusForbidden, sidecar.ReasonTenantClaimMissing, tenantClaimMissingDetail)
	}
	decision.Tenant = tenant

	switch checkTenantHeader(r.Header[m.headerKey], tenant) {
	case headerMissing:
		if !m.Inject {
			return m.refuse(w, r, http.StatusBadRequest, sidecar.ReasonTenantMissing, tenantMissingDetail)
		}
		r.Header[m.headerKey] = []string{tenant}
	case headerMalformed:
		return m.refuse(w, r, http.StatusBadRequest, sidecar.ReasonTenantMalformed, tenantMalformedDetail)
	case headerMismatch:
		return m.refuse(w, r, http.StatusForbidden, sidecar.ReasonTenantMismatch, tenantMismatchDetail)
	}

	decision.AddVerifiedHeader(m.headerKey) // checked equal to the token's tenant, or injected

	if m.RouteTenant != "" && expand(repl, m.RouteTenant) != tenant {
		return m.refuse(w, r, http.StatusForbidden, sidecar.ReasonTenantMismatch, routeTenantMismatchDetail)
	}

	if m.registry != nil {
		if status, reason, detail := m.registry.check(tenant, id.Issuer, connector, m.Connector != ""); reason != "" {
			return m.refuse(w, r, status, reason, detail)
		}
	}

	if repl != nil {
		// one provider instead of three map writes: each write may grow
		// the replacer's map, which every later Set then pays for
		repl.Map(func(key string) (any, bool) {
			switch key {
			case PlaceholderTenant, PlaceholderGuardTenant:
				return tenant, true
			case PlaceholderGuardConnector:
				return connector, true
			}
			return nil, false
		})
	}
	return next.ServeHTTP(w, r)
}

func (m *TenantGuard) refuse(w http.ResponseWriter, r *http.Request, status int, reason, detail string) error {
	if ce := m.logger.Check(zapcore.DebugLevel, "tenant_guard refused the request"); ce != nil {
		ce.Write(zap.String("reason", reason), zap.Int("status", status))
	}
	return sidecar.Refuse(w, r, status, reason, detail)
}

// expand resolves placeholders; unknown ones become empty, so that a value
// that cannot be judged never equals a tenant or names a connector.
func expand(repl *caddy.Replacer, s string) string {
	if !strings.Contains(s, placeholderOpen) {
		return s
	}
	if repl == nil {
		return ""
	}
	return repl.ReplaceAll(s, "")
}

// Interface guards
var (
	_ caddy.Provisioner           = (*TenantGuard)(nil)
	_ caddy.Validator             = (*TenantGuard)(nil)
	_ caddyhttp.MiddlewareHandler = (*TenantGuard)(nil)
)
