// Package sidecar holds what the privacy sidecar's Caddy modules pass to each
// other within one request and what they share: the verified identity that
// oidc_auth establishes, the decision record that the first sidecar handler
// creates, the others add to and audit_log writes, the stable reason codes,
// the problem+json refusal that every module returns, and the toolkit for
// header names (one folding rule, the Connection and trailer cleaners).
//
// Nothing here is a Caddy module. Values travel in the request context, never
// in headers, so a client cannot forge them.
package sidecar
