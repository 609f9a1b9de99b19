package oidcauth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// preToken is a bearer token split and decoded but NOT verified. Its fields
// only decide which checks run next; nothing in it is trusted until the
// signature has been verified by the issuer's own keys.
type preToken struct {
	alg string
	kid string
	typ string

	unsigned     bool   // empty signature segment
	signingInput string // the header and payload segments as received, which the signature covers
	signature    []byte // decoded signature segment
	payload      []byte // decoded payload segment
	claims       map[string]any
	iss          string
	aud          []string
	exp          time.Time
	hasExp       bool
	nbf          time.Time
	hasNbf       bool
	iat          time.Time
	hasIat       bool
}

// parseError is a pre-check failure with its reason code. The message is for
// debug logs only and never contains any part of the token.
type parseError struct {
	reason string
	msg    string
}

func (e *parseError) Error() string { return e.reason + ": " + e.msg }

func malformed(msg string) error { return &parseError{reason: sidecar.ReasonTokenMalformed, msg: msg} }

// maxHeaderBytes caps the decoded JOSE header; real headers are < 1 KiB.
const maxHeaderBytes = 4 << 10

// parseToken splits a compact JWS into its three base64url segments and
// decodes the header and the payload, without any key. It refuses JWE
// (five segments), unsecured tokens and anything that is not plain JSON. It
// does no I/O, so a malformed token never causes a key fetch.
func parseToken(raw string) (*preToken, error) {
	if raw == "" {
		return nil, malformed("empty token")
	}
	first := strings.IndexByte(raw, '.')
	if first < 0 {
		return nil, malformed("not a compact JWS: no '.'")
	}
	second := strings.IndexByte(raw[first+1:], '.')
	if second < 0 {
		return nil, malformed("not a compact JWS: two segments")
	}
	second += first + 1
	if strings.IndexByte(raw[second+1:], '.') >= 0 {
		return nil, malformed("not a compact JWS: more than three segments")
	}
	hSeg, pSeg, sSeg := raw[:first], raw[first+1:second], raw[second+1:]
	// An empty signature is left to precheck, so that an unsecured token
	// (alg "none") is reported as the algorithm problem it is.
	if hSeg == "" || pSeg == "" {
		return nil, malformed("empty segment")
	}
	if len(hSeg) > base64.RawURLEncoding.EncodedLen(maxHeaderBytes) {
		return nil, malformed("header too large")
	}
	hdr, err := base64.RawURLEncoding.Strict().DecodeString(hSeg)
	if err != nil {
		return nil, malformed("header is not base64url")
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(sSeg)
	if err != nil {
		return nil, malformed("signature is not base64url")
	}
	payload, err := base64.RawURLEncoding.Strict().DecodeString(pSeg)
	if err != nil {
		return nil, malformed("payload is not base64url")
	}
	t := &preToken{payload: payload, signingInput: raw[:second], signature: sig, unsigned: sSeg == ""}
	if err := t.decodeHeader(hdr); err != nil {
		return nil, err
	}
	if err := t.decodeClaims(payload); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *preToken) decodeHeader(hdr []byte) error {
	var h map[string]any
	if err := strictUnmarshal(hdr, &h); err != nil || h == nil {
		return malformed("header is not a JSON object")
	}
	var ok bool
	if t.alg, ok = stringMember(h, "alg"); !ok || t.alg == "" {
		return malformed("header has no string alg")
	}
	if _, present := h["kid"]; present {
		if t.kid, ok = stringMember(h, "kid"); !ok {
			return malformed("header kid is not a string")
		}
	}
	if _, present := h["typ"]; present {
		if t.typ, ok = stringMember(h, "typ"); !ok {
			return malformed("header typ is not a string")
		}
	}
	// We implement no JWS extension: a token that requires one must be
	// refused (RFC 7515 4.1.11). "b64": false would change what is signed.
	if _, present := h["crit"]; present {
		return &parseError{reason: sidecar.ReasonTokenInvalid, msg: "header has crit extensions"}
	}
	if _, present := h["b64"]; present {
		return &parseError{reason: sidecar.ReasonTokenInvalid, msg: "header has b64"}
	}
	// jku, x5u, x5c and jwk are ignored on purpose: keys come only from
	// the issuer's configured key set.
	return nil
}

func (t *preToken) decodeClaims(payload []byte) error {
	if err := strictUnmarshal(payload, &t.claims); err != nil || t.claims == nil {
		return malformed("payload is not a JSON object")
	}
	if v, present := t.claims["iss"]; present {
		s, ok := v.(string)
		if !ok {
			return malformed("iss is not a string")
		}
		t.iss = s
	}
	switch v := t.claims["aud"].(type) {
	case nil:
	case string:
		t.aud = []string{v}
	case []any:
		for _, a := range v {
			s, ok := a.(string)
			if !ok {
				return malformed("aud holds a non-string")
			}
			t.aud = append(t.aud, s)
		}
	default:
		return malformed("aud is neither a string nor an array")
	}
	var err error
	if t.exp, t.hasExp, err = numericDate(t.claims, "exp"); err != nil {
		return err
	}
	if t.nbf, t.hasNbf, err = numericDate(t.claims, "nbf"); err != nil {
		return err
	}
	if t.iat, t.hasIat, err = numericDate(t.claims, "iat"); err != nil {
		return err
	}
	return nil
}

// numericDate reads an RFC 7519 NumericDate. Unlike go-oidc it refuses a
// date given as a JSON string: a number is what the RFC requires.
func numericDate(claims map[string]any, name string) (time.Time, bool, error) {
	v, present := claims[name]
	if !present {
		return time.Time{}, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false, malformed(name + " is not a number")
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, false, malformed(name + " is out of range")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// maxJSONDepth bounds nesting in a token's header and payload; real claims
// nest two or three levels.
const maxJSONDepth = 32

// strictUnmarshal decodes one JSON object, keeping numbers exact. It refuses
// invalid UTF-8, trailing data, nesting deeper than maxJSONDepth and
// duplicate keys at any level: encoding/json keeps the last duplicate and
// gjson-style readers the first, so a claim that two parsers could read
// differently ("iss" twice, or "iss" and "i\u0073s") is not a claim we can
// vouch for, least of all when the token is forwarded upstream.
func strictUnmarshal(data []byte, v *map[string]any) error {
	if !utf8.Valid(data) {
		return errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	if *v == nil {
		return errors.New("not a JSON object")
	}
	// encoding/json has validated the document, so gjson's leniency with
	// invalid JSON does not matter here.
	return checkJSONShape(gjson.ParseBytes(data), 0)
}

// checkJSONShape walks a valid JSON value and refuses duplicate object keys
// (compared after unescaping) and excessive depth.
func checkJSONShape(r gjson.Result, depth int) error {
	if depth > maxJSONDepth {
		return errors.New("nested too deeply")
	}
	var err error
	switch {
	case r.IsObject():
		seen := make(map[string]struct{})
		r.ForEach(func(k, val gjson.Result) bool {
			key := k.String()
			if _, dup := seen[key]; dup {
				err = errors.New("duplicate key")
				return false
			}
			seen[key] = struct{}{}
			err = checkJSONShape(val, depth+1)
			return err == nil
		})
	case r.IsArray():
		r.ForEach(func(_, val gjson.Result) bool {
			err = checkJSONShape(val, depth+1)
			return err == nil
		})
	}
	return err
}

// stringMember returns the string value of a header member and whether it
// is a JSON string.
func stringMember(h map[string]any, name string) (string, bool) {
	s, ok := h[name].(string)
	return s, ok
}
