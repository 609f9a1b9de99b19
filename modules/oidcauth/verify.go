package oidcauth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// issuer is one configured issuer at run time.
type issuer struct {
	cfg       *Issuer
	audiences []string
	keys      *keySet
	poolKey   string
	verifier  *oidc.IDTokenVerifier
}

// resolvedKeys carries the keys that lookup chose for one request into
// VerifySignature, and brings back the key that verified the signature.
type resolvedKeys struct {
	keys []*publicKey
	used *publicKey
}

type resolvedKeysCtxKey struct{}

// verifyingKeySet is the oidc.KeySet handed to go-oidc's verifier. It never
// fetches: the handler resolves keys (with rate limits and a 503 when none
// are available) before calling Verify, because go-oidc flattens KeySet
// errors into strings and the handler must tell "keys unavailable" from
// "bad signature".
type verifyingKeySet struct {
	algs []jose.SignatureAlgorithm
}

// VerifySignature implements oidc.KeySet.
func (v verifyingKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	rk, _ := ctx.Value(resolvedKeysCtxKey{}).(*resolvedKeys)
	if rk == nil || len(rk.keys) == 0 {
		return nil, errUnknownKey
	}
	jws, err := jose.ParseSigned(jwt, v.algs)
	if err != nil {
		return nil, err
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must carry exactly one signature")
	}
	for _, k := range rk.keys {
		if payload, err := jws.Verify(&k.jwk); err == nil {
			rk.used = k
			return payload, nil
		}
	}
	return nil, errors.New("signature does not verify")
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

// verify checks the signature with the issuer's keys through go-oidc's
// verifier, which re-checks iss and exp on the verified payload. It returns
// the verified payload and the key that verified it.
func (iss *issuer) verify(ctx context.Context, raw string, keys []*publicKey) ([]byte, *publicKey, error) {
	rk := &resolvedKeys{keys: keys}
	tok, err := iss.verifier.Verify(context.WithValue(ctx, resolvedKeysCtxKey{}, rk), raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			return nil, nil, &parseError{reason: sidecar.ReasonTokenExpired, msg: "exp has passed"}
		}
		return nil, nil, &parseError{reason: sidecar.ReasonTokenInvalid, msg: "signature or claims did not verify"}
	}
	if rk.used == nil {
		return nil, nil, &parseError{reason: sidecar.ReasonTokenInvalid, msg: "no key verified the token"}
	}
	var payload rawJSON
	if err := tok.Claims(&payload); err != nil {
		return nil, nil, fmt.Errorf("reading verified claims: %w", err)
	}
	return payload, rk.used, nil
}

// rawJSON keeps the verified payload bytes as they are.
type rawJSON []byte

func (r *rawJSON) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}
