// Package scopetrim implements the scope_trim HTTP handler (module
// http.handlers.scope_trim): it lets through to the client only the response
// fields that the caller's scopes allow, as declared by per-connector policy
// files, and refuses every response it cannot judge.
//
// The handler sits before reverse_proxy. It selects the policy endpoint for
// the request, refuses the request when the caller's scopes allow nothing
// there, prepares the proxied request (identity encoding, no ranges), and
// buffers the upstream's answer up to max_body. The body is then rebuilt in
// one pass from the allowed paths: the output is an allowlist by
// construction, never the input with keys deleted.
package scopetrim

import (
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

func init() {
	caddy.RegisterModule(ScopeTrim{})
}

// Placeholders scope_trim publishes for later handlers and logs.
const (
	// PlaceholderPolicy is the policy that applies (connector@version).
	PlaceholderPolicy = "http.scope_trim.policy"
	// PlaceholderEndpoint is the matched endpoint's path pattern.
	PlaceholderEndpoint = "http.scope_trim.endpoint"
	// PlaceholderFieldsRemoved is how many values the response lost.
	PlaceholderFieldsRemoved = "http.scope_trim.fields_removed"
)

// DefaultMaxBody is the largest upstream body trimmed unless configured.
const DefaultMaxBody = 16 << 20

// minHashKey is the shortest hash key accepted, in bytes.
const minHashKey = 16

// ScopeTrim removes from JSON responses every field the caller's scopes do
// not allow. It needs oidc_auth before it (the caller's scopes and roles) and
// uses the tenant that tenant_guard established, when there is one, to key
// the "hash" transform.
type ScopeTrim struct {
	// Policies is a policy file, or a directory whose *.json policy files
	// are loaded in name order (*.schema.json and JSON files that are not
	// policies, such as a tenant registry, are skipped). Placeholders
	// such as {env.POLICY_DIR} are expanded at provision. Required.
	Policies string `json:"policies,omitempty"`

	// PoliciesDigest is written by the Caddyfile adapter: the SHA-256 of the
	// policy files when the Caddyfile was adapted. It only marks the config
	// as changed when a policy changed, so that `caddy reload` applies a
	// policy edit (Caddy skips a reload whose config is unchanged); it is not
	// checked. With JSON configs, use `caddy reload --force`.
	PoliciesDigest string `json:"policies_digest,omitempty"`

	// MaxBody is the largest upstream body, in bytes, that is trimmed, after
	// decoding gzip or zstd; a larger body is refused (502
	// upstream_too_large) as soon as it passes the limit, and for NDJSON it
	// bounds each record. Default 16 MiB.
	MaxBody int64 `json:"max_body,omitempty"`

	// MaxDepth is how deeply objects and arrays may nest in an upstream
	// body; a deeper one is refused (502 upstream_too_deep). Default 64.
	MaxDepth int `json:"max_depth,omitempty"`

	// HashKey is the secret from which the per-tenant HMAC-SHA256 keys of
	// the "hash" transform are derived, at least 16 bytes. Required when a
	// policy uses "hash". Use a placeholder such as
	// {env.SCOPE_TRIM_HASH_KEY} rather than writing the key in the config.
	HashKey string `json:"hash_key,omitempty"`

	// RequestHeaders, when set (even empty), is an allowlist of request
	// headers for every endpoint, in addition to the policies' own: only
	// the listed names, the verified identity and tenant headers, Accept,
	// Accept-Encoding, Content-Type, Content-Length, traceparent and
	// tracestate reach the upstream. Exact names, compared
	// case-insensitively. Without it (and without request_headers in the
	// policy), every request header reaches the upstream except the method
	// and URL override headers, which never do.
	RequestHeaders []string `json:"request_headers,omitzero"`

	endpoints []*endpoint
	published map[*endpoint]caddy.ReplacerFunc // each endpoint's placeholders
	hashKey   []byte
	usesHash  bool
	tenants   *sync.Map // tenant -> derived hash key
	pool      *sync.Pool
	bodies    *sync.Pool // *[]byte: upstream body buffers reused across responses
	logger    *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (ScopeTrim) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.scope_trim",
		New: func() caddy.Module { return new(ScopeTrim) },
	}
}

// Provision loads and compiles the policies and resolves the hash key.
func (m *ScopeTrim) Provision(ctx caddy.Context) error {
	m.logger = ctx.Logger()
	if m.MaxBody == 0 {
		m.MaxBody = DefaultMaxBody
	}
	if m.MaxDepth == 0 {
		m.MaxDepth = DefaultMaxDepth
	}
	repl := caddy.NewReplacer()
	path := repl.ReplaceKnown(m.Policies, "")
	if strings.TrimSpace(path) == "" {
		return fmt.Errorf("policies is required: name a policy file or a directory of policy files")
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	eps, files, err := loadPolicies(path, m.MaxDepth)
	if err != nil {
		return err
	}
	if m.RequestHeaders != nil {
		for _, e := range eps {
			if err := e.headers.allowRequest(m.RequestHeaders); err != nil {
				return err
			}
		}
	}
	m.endpoints = eps
	m.published = make(map[*endpoint]caddy.ReplacerFunc, len(eps))
	for _, e := range eps {
		m.usesHash = m.usesHash || e.usesHash
		m.published[e] = endpointPlaceholders(e.policy.name(), e.path)
	}
	if m.HashKey != "" {
		m.hashKey = []byte(repl.ReplaceKnown(m.HashKey, ""))
	}
	if m.usesHash && len(m.hashKey) == 0 {
		return fmt.Errorf("a policy uses the hash transform but hash_key is not set (or its placeholder is empty); set hash_key {env.SCOPE_TRIM_HASH_KEY}")
	}
	maxDepth := m.MaxDepth
	m.tenants = new(sync.Map)
	m.bodies = new(sync.Pool)
	m.pool = &sync.Pool{New: func() any { return &trimmer{scanner: scanner{maxDepth: maxDepth}} }}
	m.logger.Info("policies loaded", zap.Strings("files", files), zap.Int("endpoints", len(eps)))
	return nil
}

// Validate checks the configuration.
func (m *ScopeTrim) Validate() error {
	if m.MaxBody < 0 {
		return fmt.Errorf("max_body must be positive")
	}
	if m.MaxDepth < 0 || m.MaxDepth > 10000 {
		return fmt.Errorf("max_depth must be between 1 and 10000")
	}
	if len(m.hashKey) > 0 && len(m.hashKey) < minHashKey {
		return fmt.Errorf("hash_key is %d bytes; use at least %d random bytes", len(m.hashKey), minHashKey)
	}
	return nil
}

// ServeHTTP selects the endpoint, refuses what the caller may not see, and
// trims what the upstream answers.
func (m *ScopeTrim) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	r, d := sidecar.WithDecision(r) // when scope_trim is the first sidecar handler
	scrubOverrides(r)
	if r.Method == http.MethodConnect || r.Header.Get("Upgrade") != "" ||
		httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade") {
		return sidecar.Refuse(w, r, http.StatusBadRequest, sidecar.ReasonUpgradeRefused,
			"connection upgrades are not allowed on a trimmed route: the response could not be trimmed")
	}
	id := sidecar.IdentityFrom(r)
	if id == nil {
		return sidecar.Refuse(w, r, http.StatusInternalServerError, sidecar.ReasonIdentityMissing,
			"no verified identity: oidc_auth must run before scope_trim")
	}
	ep := m.selectEndpoint(r)
	if ep == nil {
		return sidecar.Refuse(w, r, http.StatusForbidden, sidecar.ReasonNoPolicy,
			"no policy endpoint matches "+r.Method+" on this path")
	}
	d.Policy, d.Endpoint = ep.policy.name(), ep.path
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(m.published[ep])
	}
	mask := ep.scopeMask(id.Scopes, id.Roles)
	if ep.root.below&mask == 0 {
		return sidecar.Refuse(w, r, http.StatusForbidden, sidecar.ReasonInsufficientScope,
			"the token's scopes and roles allow no field of this endpoint")
	}
	up := prepareUpstreamRequest(r, ep)
	if done, err := m.judgeRequest(w, r, up, ep, mask); done {
		return err
	}
	tw := newTrimWriter(m, w, r, ep, mask)
	defer tw.releaseBody()
	err, aborted := callNext(tw, up, next)
	return tw.finish(err, aborted)
}

// endpointPlaceholders publishes the endpoint's policy and path: built once
// per endpoint, so that a request costs no map writes for them.
func endpointPlaceholders(policy, path string) caddy.ReplacerFunc {
	return func(key string) (any, bool) {
		switch key {
		case PlaceholderPolicy:
			return policy, true
		case PlaceholderEndpoint:
			return path, true
		}
		return nil, false
	}
}

// selectEndpoint returns the first endpoint matching the request, or nil.
// A path with dot segments matches nothing, because the upstream may resolve
// it to a resource other than the one the pattern names.
func (m *ScopeTrim) selectEndpoint(r *http.Request) *endpoint {
	p := r.URL.Path
	if hasDotSegment(p) {
		return nil
	}
	for _, e := range m.endpoints {
		if e.matches(r.Method, p) {
			return e
		}
	}
	return nil
}

func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return strings.Contains(p, "//") || strings.Contains(p, "\\")
}

// callNext runs the rest of the chain. reverse_proxy reports an error while
// copying a body (ours included: the size cap, a refused content type) by
// panicking with http.ErrAbortHandler; as long as nothing was sent to the
// client the refusal can still be written, so that panic is turned into
// aborted=true. Any other panic, or one after headers were sent, goes on.
func callNext(tw *trimWriter, r *http.Request, next caddyhttp.Handler) (err error, aborted bool) {
	defer func() {
		if v := recover(); v != nil {
			if tw.stream != nil {
				tw.stream.settle() // tw.sent may be written by a decoder goroutine
			}
			if v == http.ErrAbortHandler && !tw.sent {
				aborted = true
				return
			}
			if tw.stream != nil && tw.sent {
				tw.stream.recordAbort()
			}
			panic(v)
		}
	}()
	return next.ServeHTTP(tw, r), false
}

// hasherFor returns a hasher keyed for the tenant ("" without tenant_guard).
func (m *ScopeTrim) hasherFor(tenant string) *hasher {
	if len(m.hashKey) == 0 {
		return nil
	}
	k, ok := m.tenants.Load(tenant)
	if !ok {
		k, _ = m.tenants.LoadOrStore(tenant, tenantKey(m.hashKey, tenant))
	}
	return newHasher(k.([]byte))
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ScopeTrim)(nil)
	_ caddy.Validator             = (*ScopeTrim)(nil)
	_ caddyhttp.MiddlewareHandler = (*ScopeTrim)(nil)
)
