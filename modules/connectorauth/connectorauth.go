// Package connectorauth implements the connector_auth HTTP handler (module
// http.handlers.connector_auth): the connector receives the tenant's own
// credential for the connected system, never the caller's token.
//
// Each tenant connects an integration through the admin API (module
// admin.api.sidecar_connections), which stores its refresh token or client
// credentials, encrypted, in Caddy's storage. On each request the handler
// checks that the tenant's connection is connected, obtains an access token
// (refreshed once per expiry for all concurrent requests, across replicas
// where the provider rotates refresh tokens), and injects it. A disconnect
// on any replica sharing the storage is refused by every replica within
// two seconds, and cuts the requests in flight on the connection.
package connectorauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/net/http/httpguts"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

func init() {
	caddy.RegisterModule(ConnectorAuth{})
}

// DefaultHeader is the request header the access token goes in.
const DefaultHeader = "Authorization"

// Placeholders tenant_guard publishes, which connector_auth reads: a client
// cannot set them.
const (
	placeholderTenant    = "http.tenant_guard.tenant"
	placeholderConnector = "http.tenant_guard.connector"
)

// ConnectorAuth is the connector_auth handler. It must run after
// tenant_guard, which establishes the request's tenant.
type ConnectorAuth struct {
	// Connector names the connector, as in the tenant registry and the admin
	// API's paths. Required. When tenant_guard on the route names a
	// connector, it must be this one.
	Connector string `json:"connector,omitempty"`

	// TokenURL is the connected system's OAuth 2.0 token endpoint. Required.
	// Placeholders such as {env.CRM_TOKEN_URL} are resolved at load.
	TokenURL string `json:"token_url,omitempty"`

	// RevocationURL is the connected system's token revocation endpoint (RFC
	// 7009). When set, a disconnect revokes the refresh token and the cached
	// access token there. Placeholders allowed.
	RevocationURL string `json:"revocation_url,omitempty"`

	// ClientID is the OAuth client the platform registered with the
	// connected system. Required for the refresh_token grant; for
	// client_credentials, tenants may bring their own instead. Placeholders
	// allowed.
	ClientID string `json:"client_id,omitempty"`

	// ClientSecret is the client's secret. Use a placeholder such as
	// {env.CRM_CLIENT_SECRET}: it is resolved at load and never logged.
	ClientSecret string `json:"client_secret,omitempty"`

	// Grant is how access tokens are obtained: refresh_token (the tenant
	// authorised the platform and its refresh token is stored) or
	// client_credentials (the tenant's own client credentials are stored, or
	// the platform's client is used). Required.
	Grant string `json:"grant,omitempty"`

	// Scopes are requested with the client_credentials grant.
	Scopes []string `json:"scopes,omitempty"`

	// Header is the request header that carries the access token, as
	// `Bearer <token>`. Default: Authorization. The caller's own
	// Authorization header, and every copy of this header the caller sent,
	// are removed first.
	Header string `json:"header,omitempty"`

	// Key encrypts the stored credentials: each tenant's data key is wrapped
	// by it. At least 32 bytes of random secret; use a placeholder such as
	// {env.SIDECAR_CONNECTIONS_KEY}. Required. Every replica sharing the
	// storage needs the same key.
	Key string `json:"key,omitempty"`

	// ClientAuth is how the client authenticates at the token and revocation
	// endpoints: basic (HTTP Basic, the default) or post (in the form body).
	ClientAuth string `json:"client_auth,omitempty"`

	// TokenTimeout bounds one token endpoint request. Default: 10s.
	TokenTimeout caddy.Duration `json:"token_timeout,omitempty"`

	// RevocationTimeout bounds one revocation request. Default: 10s.
	RevocationTimeout caddy.Duration `json:"revocation_timeout,omitempty"`

	// RetryAfter is the Retry-After sent with 502 connector_token_unavailable.
	// Default: 5s.
	RetryAfter caddy.Duration `json:"retry_after,omitempty"`

	// ReusableRefreshTokens says the provider keeps a refresh token valid
	// after use (no rotation). Replicas then refresh without taking the
	// storage lock. Leave it off when unsure: with rotation, two replicas
	// refreshing with one token would lose the connection.
	ReusableRefreshTokens bool `json:"reusable_refresh_tokens,omitempty"`

	headerKey string
	// credentials are Authorization and the token header, under the
	// sidecar's folding rule: no caller copy of either reaches the connector.
	credentials *sidecar.HeaderNames
	conn        *Connector
	mgr         *Manager
	unregister  func()
	logger      *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (ConnectorAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.connector_auth",
		New: func() caddy.Module { return new(ConnectorAuth) },
	}
}

// Provision resolves the placeholders, opens the connections of Caddy's
// storage and makes the connector known to the admin API.
func (m *ConnectorAuth) Provision(ctx caddy.Context) error {
	m.logger = ctx.Logger()
	if m.Header == "" {
		m.Header = DefaultHeader
	}
	m.headerKey = http.CanonicalHeaderKey(m.Header)
	m.credentials = sidecar.NewHeaderNames("Authorization", m.headerKey)
	if err := m.checkConfig(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	resolve := func(field, v string, required bool) (string, error) {
		out, err := repl.ReplaceOrErr(v, true, true)
		if err != nil {
			return "", fmt.Errorf("%s: %v (set the environment variable it names)", field, err)
		}
		if required && out == "" {
			return "", fmt.Errorf("%s is empty", field)
		}
		return out, nil
	}
	s := Settings{
		Name: m.Connector, Grant: m.Grant, Scopes: m.Scopes, ClientAuth: m.ClientAuth,
		TokenTimeout: time.Duration(m.TokenTimeout), RevocationTimeout: time.Duration(m.RevocationTimeout),
		RetryAfter: time.Duration(m.RetryAfter), ReusableRefreshTokens: m.ReusableRefreshTokens,
	}
	var err error
	if s.TokenURL, err = resolve("token_url", m.TokenURL, true); err != nil {
		return err
	}
	if s.RevocationURL, err = resolve("revocation_url", m.RevocationURL, false); err != nil {
		return err
	}
	if s.ClientID, err = resolve("client_id", m.ClientID, false); err != nil {
		return err
	}
	if s.ClientSecret, err = resolve("client_secret", m.ClientSecret, false); err != nil {
		return err
	}
	if s.Key, err = resolve("key", m.Key, true); err != nil {
		return err
	}
	if m.mgr, err = OpenManager(ctx); err != nil {
		return fmt.Errorf("opening the connections in storage: %v", err)
	}
	if m.conn, err = NewConnector(s, m.mgr, m.logger); err != nil {
		return err
	}
	if err := RegisterMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	m.unregister = Register(m.conn)
	if m.headerKey != "Authorization" {
		// Caddy's logs (reverse_proxy's error log writes the proxied
		// request) redact Authorization but no other header
		// (internal/logmarshalers.go, LoggableHTTPHeader)
		m.logger.Warn("the access token goes in a header Caddy's logs do not redact: add `request>headers>"+m.headerKey+" delete` to the log format filter",
			zap.String("header", m.headerKey))
	}
	return nil
}

// Validate checks what can be checked without resolving placeholders.
func (m *ConnectorAuth) Validate() error { return m.checkConfig() }

func (m *ConnectorAuth) checkConfig() error {
	switch {
	case m.Connector == "":
		return errors.New("connector is required: the connector's name, as in the tenant registry")
	case !ValidName(m.Connector):
		return fmt.Errorf("connector %q may contain only letters, digits, '-', '_' and '.', and may not start with '.'", m.Connector)
	case m.Key == "":
		return errors.New("key is required (e.g. `key {env.SIDECAR_CONNECTIONS_KEY}`): it encrypts the stored credentials")
	case m.TokenURL == "":
		return errors.New("token_url is required: the connected system's token endpoint")
	}
	switch m.Grant {
	case GrantRefreshToken, GrantClientCredentials:
	default:
		return fmt.Errorf("grant must be refresh_token or client_credentials, not %q", m.Grant)
	}
	if m.Header != "" && !httpguts.ValidHeaderFieldName(m.Header) {
		return fmt.Errorf("header %q is not a valid header field name", m.Header)
	}
	for _, d := range []caddy.Duration{m.TokenTimeout, m.RevocationTimeout, m.RetryAfter} {
		if d < 0 {
			return errors.New("token_timeout, revocation_timeout and retry_after must not be negative")
		}
	}
	return nil
}

// Cleanup withdraws the connector from the admin API and releases the
// storage's connections.
func (m *ConnectorAuth) Cleanup() error {
	if m.unregister != nil {
		m.unregister()
	}
	if m.mgr != nil {
		return m.mgr.Release()
	}
	return nil
}

// ServeHTTP injects the tenant's access token, or refuses the request when
// the connection cannot be used. A request whose connection is disconnected
// while it is in flight is cut.
func (m *ConnectorAuth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	d := sidecar.DecisionFrom(r)
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if r.Method == http.MethodConnect || r.Header.Get("Upgrade") != "" ||
		httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade") {
		// an upgraded connection is outside the response writer: it could
		// not be cut on a disconnect
		return m.refuse(w, r, http.StatusBadRequest, sidecar.ReasonUpgradeRefused,
			"connection upgrades are not allowed on a route with connector_auth: they could not be cut on a disconnect")
	}
	var tenant, guardConnector string
	if repl != nil {
		tenant, _ = repl.GetString(placeholderTenant)
		guardConnector, _ = repl.GetString(placeholderConnector)
	}
	if tenant == "" {
		return m.refuse(w, r, http.StatusInternalServerError, sidecar.ReasonIdentityMissing,
			"no verified tenant reached connector_auth; tenant_guard must run before it on this route")
	}
	if guardConnector != "" && guardConnector != m.Connector {
		return m.refuse(w, r, http.StatusInternalServerError, sidecar.ReasonHandlerError,
			"tenant_guard and connector_auth name different connectors on this route")
	}
	if d != nil && d.Connector == "" {
		d.Connector = m.Connector
	}
	m.removeCallerCredentials(r, d)

	var requestID string
	if repl != nil {
		requestID, _ = repl.GetString("http.request.uuid")
	}
	lease, err := m.conn.Acquire(r.Context(), tenant, requestID)
	if err != nil {
		var refusal *Refusal
		if !errors.As(err, &refusal) {
			return caddyhttp.Error(499, err) // the client went away while waiting
		}
		if refusal.RetryAfter > 0 {
			w.Header().Set("Retry-After", retryAfter(refusal.RetryAfter))
		}
		if refusal.SecurityEvent && d != nil {
			d.SecurityEvent = refusal.Reason
		}
		return m.refuse(w, r, refusal.Status, refusal.Reason, refusal.Detail)
	}
	r.Header[m.headerKey] = lease.Header
	d.AddVerifiedHeader(m.headerKey) // scope_trim's request_headers allowlist forwards it

	ctx, cancel := context.WithCancelCause(r.Context())
	stop := context.AfterFunc(lease.Live, func() { cancel(context.Cause(lease.Live)) })
	cw := &connWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, ctx: ctx, lease: lease}
	defer func() {
		// also when next panics (reverse_proxy aborts a stream it could not
		// finish): the audit record must say what cut the request
		stop()
		by := interruptedBy(context.Cause(ctx))
		cancel(nil)
		if by != "" && d != nil {
			status, reason, _ := interruption(by)
			d.Interrupt(by, status, reason)
		}
	}()
	err = next.ServeHTTP(cw, r.WithContext(ctx))
	if by := interruptedBy(context.Cause(ctx)); by != "" {
		if !cw.sent {
			// nothing reached the client: refuse in place of the answer
			status, reason, detail := interruption(by)
			if by == sidecar.InterruptedByUnconfirmed {
				w.Header().Set("Retry-After", retryAfter(m.conn.RetryAfter))
			}
			return m.refuse(w, r, status, reason, detail)
		}
		if err == nil {
			// the answer is under way: only an aborted connection tells the
			// client that it is incomplete
			panic(http.ErrAbortHandler)
		}
	}
	return err
}

func (m *ConnectorAuth) refuse(w http.ResponseWriter, r *http.Request, status int, reason, detail string) error {
	if ce := m.logger.Check(zapcore.DebugLevel, "connector_auth refused the request"); ce != nil {
		ce.Write(zap.String("reason", reason), zap.Int("status", status))
	}
	return sidecar.Refuse(w, r, status, reason, detail)
}

// removeCallerCredentials removes the caller's Authorization header and
// every header that names the token header, in any spelling, from the
// headers and trailers, and the Connection tokens that name either: the
// connector receives only the tenant's token, which reverse_proxy would
// otherwise strip when the client names it in Connection (RFC 9110 7.6.1,
// reverseproxy.go removeConnectionHeaders), also on a route without
// scope_trim.
func (m *ConnectorAuth) removeCallerCredentials(r *http.Request, d *sidecar.Decision) {
	for name := range r.Header {
		if !m.credentials.Matches(name) {
			continue
		}
		if name != "Authorization" && name != m.headerKey {
			d.AddSpoofedHeader(name) // a disguised copy, not the caller's own header
		}
		delete(r.Header, name)
	}
	m.credentials.CleanConnection(r.Header, d)
	m.credentials.ScrubTrailers(r)
}

// retryAfter is d in whole seconds, rounded up, for Retry-After.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}

// interruptedBy names what cut a request, from its context's cause; ""
// when nothing did (the client went away, or the request finished).
func interruptedBy(cause error) string {
	switch {
	case errors.Is(cause, ErrDisconnected):
		return sidecar.InterruptedByDisconnect
	case errors.Is(cause, ErrUnconfirmed):
		return sidecar.InterruptedByUnconfirmed
	}
	return ""
}

// interruption is the refusal that stands for a cut request.
func interruption(by string) (status int, reason, detail string) {
	if by == sidecar.InterruptedByDisconnect {
		return http.StatusForbidden, sidecar.ReasonConnectorDisconnected,
			"the tenant disconnected this connector while the request was in flight"
	}
	return http.StatusBadGateway, sidecar.ReasonConnectorTokenUnavailable,
		"the connection's state could not be confirmed from storage; retry later"
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ConnectorAuth)(nil)
	_ caddy.Validator             = (*ConnectorAuth)(nil)
	_ caddy.CleanerUpper          = (*ConnectorAuth)(nil)
	_ caddyhttp.MiddlewareHandler = (*ConnectorAuth)(nil)
)
