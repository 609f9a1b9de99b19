package oidcauth

import (
	"slices"
	"strings"
	"time"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// issuer is one configured issuer at run time.
type issuer struct {
	cfg       *Issuer
	audiences []string
	keys      *keySet
	poolKey   string
}

// precheck runs every check that needs no key, in the order that gives the
// most useful reason code, and returns the issuer the token claims. A token
// that fails here never causes a key fetch.
func (m *OIDCAuth) precheck(t *preToken, now time.Time) (*issuer, error) {
	if !m.algs[t.alg] {
		return nil, &parseError{reason: sidecar.ReasonAlgorithmNotAllowed, msg: "algorithm not in the allowlist"}
	}
	if t.unsigned {
		return nil, malformed("empty signature")
	}
	iss, ok := m.issuers[t.iss]
	if !ok {
		return nil, &parseError{reason: sidecar.ReasonIssuerUnknown, msg: "issuer not configured"}
	}
	if m.tokenType != "" && normaliseTyp(t.typ) != m.tokenType {
		return nil, &parseError{reason: sidecar.ReasonTokenTypeInvalid, msg: "typ header does not match token_type"}
	}
	if err := m.checkTimes(t, now); err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(t.aud, func(a string) bool { return slices.Contains(iss.audiences, a) }) {
		return nil, &parseError{reason: sidecar.ReasonAudienceMismatch, msg: "no configured audience in aud"}
	}
	return iss, nil
}

// checkTimes applies exp (required), nbf and iat with the configured leeway.
func (m *OIDCAuth) checkTimes(t *preToken, now time.Time) error {
	leeway := time.Duration(m.Leeway)
	if !t.hasExp {
		return &parseError{reason: sidecar.ReasonTokenInvalid, msg: "exp is missing"}
	}
	if !now.Before(t.exp.Add(leeway)) {
		return &parseError{reason: sidecar.ReasonTokenExpired, msg: "exp has passed"}
	}
	if t.hasNbf && now.Add(leeway).Before(t.nbf) {
		return &parseError{reason: sidecar.ReasonTokenNotYetValid, msg: "nbf is in the future"}
	}
	if t.hasIat && now.Add(leeway).Before(t.iat) {
		return &parseError{reason: sidecar.ReasonTokenNotYetValid, msg: "iat is in the future"}
	}
	return nil
}

// normaliseTyp compares media types as RFC 7515 4.1.9 says: case-insensitive,
// with "application/" optional.
func normaliseTyp(typ string) string {
	typ = strings.ToLower(strings.TrimSpace(typ))
	return strings.TrimPrefix(typ, "application/")
}
