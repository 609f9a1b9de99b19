package oidcauth

import (
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// refuse answers a failed check: 401 with a Bearer challenge (no error code
// when there was no token, RFC 6750 3.1), or 400 for a malformed request.
func (m *OIDCAuth) refuse(w http.ResponseWriter, r *http.Request, status int, err error) error {
	var pe *parseError
	if !errors.As(err, &pe) {
		pe = &parseError{reason: sidecar.ReasonTokenInvalid, msg: "unexpected verification error"}
	}
	switch {
	case pe.reason == sidecar.ReasonTokenMissing:
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q`, m.Realm))
	case status == http.StatusBadRequest:
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error="invalid_request"`, m.Realm))
	default:
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error="invalid_token"`, m.Realm))
	}
	m.debug("request refused", pe.reason, "", errors.New(pe.msg))
	return m.deny(w, r, status, pe.reason, reasonDetail[pe.reason])
}

func (m *OIDCAuth) deny(w http.ResponseWriter, r *http.Request, status int, reason, detail string) error {
	metrics.decisions.WithLabelValues("deny", reason).Inc()
	return sidecar.Refuse(w, r, status, reason, detail)
}

func (m *OIDCAuth) debug(msg, reason, issuer string, err error) {
	if c := m.logger.Check(zapcore.DebugLevel, msg); c != nil {
		fields := []zap.Field{zap.String("reason", reason), zap.Error(err)}
		if issuer != "" {
			fields = append(fields, zap.String("issuer", issuer))
		}
		c.Write(fields...)
	}
}

// reasonDetail is the problem+json detail per reason: what the client can
// fix, never which signature check failed.
var reasonDetail = map[string]string{
	sidecar.ReasonTokenMissing:        "send an access token as `Authorization: Bearer <token>`",
	sidecar.ReasonTokenMalformed:      "the bearer token is not a well-formed signed JWT of acceptable size, in exactly one Authorization header",
	sidecar.ReasonTokenInvalid:        "the bearer token could not be verified",
	sidecar.ReasonTokenExpired:        "the bearer token has expired",
	sidecar.ReasonTokenNotYetValid:    "the bearer token is not valid yet",
	sidecar.ReasonIssuerUnknown:       "the bearer token's issuer is not trusted here",
	sidecar.ReasonAudienceMismatch:    "the bearer token is not intended for this service",
	sidecar.ReasonAlgorithmNotAllowed: "the bearer token's signature algorithm is not allowed",
	sidecar.ReasonTokenTypeInvalid:    "the bearer token is not an access token of the required type",
}
