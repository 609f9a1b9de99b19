// Package sidecar holds what the privacy sidecar's Caddy modules pass to each
// other within one request: the verified identity that oidc_auth establishes,
// the decision record that tenant_guard and scope_trim add to and audit_log
// writes, the stable reason codes, and the problem+json refusal that every
// module returns.
//
// Nothing here is a Caddy module. Values travel in the request context, never
// in headers, so a client cannot forge them.
package sidecar
