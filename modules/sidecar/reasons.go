package sidecar

// Reason codes are a stable contract: they appear in problem+json bodies, the
// audit log, metrics labels and alert rules. Add new ones; never rename.
const (
	// ReasonOK is the audit log's reason for an allowed request.
	ReasonOK = "ok"

	// oidc_auth
	ReasonTokenMissing        = "token_missing"
	ReasonTokenMalformed      = "token_malformed"
	ReasonTokenInvalid        = "token_invalid"
	ReasonTokenExpired        = "token_expired"
	ReasonTokenNotYetValid    = "token_not_yet_valid"
	ReasonIssuerUnknown       = "issuer_unknown"
	ReasonAudienceMismatch    = "audience_mismatch"
	ReasonAlgorithmNotAllowed = "algorithm_not_allowed"
	ReasonTokenTypeInvalid    = "token_type_invalid"
	ReasonKeysUnavailable     = "keys_unavailable"
	ReasonInsufficientScope   = "insufficient_scope"

	// tenant_guard
	ReasonIdentityMissing           = "identity_missing"
	ReasonTenantMissing             = "tenant_missing"
	ReasonTenantMalformed           = "tenant_malformed"
	ReasonTenantMismatch            = "tenant_mismatch"
	ReasonTenantClaimMissing        = "tenant_claim_missing"
	ReasonTenantUnknown             = "tenant_unknown"
	ReasonTenantSuspended           = "tenant_suspended"
	ReasonIssuerNotAllowedForTenant = "issuer_not_allowed_for_tenant"
	ReasonConnectorDisconnected     = "connector_disconnected"

	// connector_auth (connector_disconnected above is also theirs)
	ReasonConnectorReauthorizationRequired = "connector_reauthorization_required"
	ReasonConnectorTokenUnavailable        = "connector_token_unavailable"

	// scope_trim
	ReasonNoPolicy            = "no_policy"
	ReasonUpgradeRefused      = "upgrade_refused"
	ReasonUpstreamInvalidJSON = "upstream_invalid_json"
	ReasonUpstreamInvalidUTF8 = "upstream_invalid_utf8"
	ReasonUpstreamDuplicate   = "upstream_duplicate_key"
	ReasonUpstreamTooDeep     = "upstream_too_deep"
	ReasonUpstreamTooLarge    = "upstream_too_large"
	ReasonUpstreamNotJSON     = "upstream_not_json"
	ReasonUpstreamEncoding    = "upstream_encoding"
	ReasonUpstreamPartial     = "upstream_partial"
	ReasonUpstreamStream      = "upstream_event_stream"
	ReasonUpstreamError       = "upstream_error"
	// record rules and write allowlists (scope_trim records, request_fields)
	ReasonUpstreamNotRecords   = "upstream_not_records"
	ReasonRecordNotVisible     = "record_not_visible"
	ReasonRecordNotAllowed     = "record_not_allowed"
	ReasonRequestNotJSON       = "request_not_json"
	ReasonRequestTooLarge      = "request_too_large"
	ReasonRequestMalformed     = "request_malformed"
	ReasonWriteFieldNotAllowed = "write_field_not_allowed"
	// ReasonUpstreamRedirectRefused: a 3xx whose Location is not a path on
	// the same route that the endpoint's redirects allow.
	ReasonUpstreamRedirectRefused = "upstream_redirect_refused"

	// audit_log
	ReasonAuditUnavailable = "audit_unavailable"
	ReasonSpoofedHeader    = "spoofed_identity_header"
	// ReasonUpstreamUnavailable: reverse_proxy could not get a response
	// (502, 503, 504). An outage, not an attack: not a security event.
	ReasonUpstreamUnavailable = "upstream_unavailable"
	// ReasonClientClosed: the client went away before the response (499).
	ReasonClientClosed = "client_closed"
	// ReasonHandlerError: a handler failed without a sidecar reason.
	ReasonHandlerError = "handler_error"
)

// securityReasons are refusals that suggest an attack rather than a mistake.
var securityReasons = map[string]bool{
	ReasonTokenInvalid:              true,
	ReasonAlgorithmNotAllowed:       true,
	ReasonTenantMismatch:            true,
	ReasonTenantMalformed:           true,
	ReasonIssuerNotAllowedForTenant: true,
	ReasonSpoofedHeader:             true,
}

// IsSecurityEvent reports whether a refusal with this reason should also be
// raised as a security event. Every upstream_* refusal that scope_trim makes
// counts, because it means the connector sent something the policy cannot
// vouch for; upstream_unavailable is an outage, not an attack.
func IsSecurityEvent(reason string) bool {
	if securityReasons[reason] {
		return true
	}
	return reason != ReasonUpstreamUnavailable && len(reason) > len("upstream_") && reason[:len("upstream_")] == "upstream_"
}
