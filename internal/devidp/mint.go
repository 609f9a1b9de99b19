package devidp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// Claims are a token's payload.
type Claims map[string]any

// Directory holds the profile claims the issuer adds to the tokens of its
// demo subjects, as an identity provider adds attributes from its user
// directory: the CRM user each one is (crm_user_id) and the CRM users whose
// records their team shares (crm_team), which policies/crm.json's record
// rules read. Subjects not listed get no such claims.
var Directory = map[string]Claims{
	"rep-12": {"crm_user_id": "u_17", "crm_team": []string{"u_17", "u_18"}, "name": "Sam Rep"},
	"rep-31": {"crm_user_id": "u_22", "crm_team": []string{"u_22"}, "name": "Kim Rep"},
}

// AccessClaims returns the usual claims of an access token for subject and
// audience, valid from now for ten minutes, with the subject's Directory
// claims and then extra merged over them.
func (iss *Issuer) AccessClaims(subject, audience string, extra Claims) Claims {
	now := time.Now()
	c := Claims{
		"iss":       iss.URL,
		"sub":       subject,
		"aud":       audience,
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(10 * time.Minute).Unix(),
		"client_id": "demo-client",
		"jti":       fmt.Sprintf("%x", randomBytes(8)),
	}
	for k, v := range Directory[subject] {
		c[k] = v
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// Header are a token's JOSE header fields beyond what Mint sets.
type Header map[string]any

// Mint signs claims with the signing key, typ "at+jwt".
func (iss *Issuer) Mint(claims Claims) (string, error) {
	return iss.MintWith(iss.Key(""), Header{"typ": "at+jwt"}, claims)
}

// MustMint is Mint for tests and demos; it panics on error.
func (iss *Issuer) MustMint(claims Claims) string {
	tok, err := iss.Mint(claims)
	if err != nil {
		panic(err)
	}
	return tok
}

// MintWith signs claims with key, with header fields merged over
// {"alg": key.Algorithm, "kid": key.ID}. A header "alg" or "kid" overrides
// what is written without changing how the token is signed, so that tests can
// build tokens that lie about their key.
func (iss *Issuer) MintWith(key *Key, header Header, claims Claims) (string, error) {
	if key == nil {
		return "", fmt.Errorf("devidp: no key to sign with")
	}
	h := Header{"alg": key.Algorithm, "kid": key.ID}
	for k, v := range header {
		if v == nil {
			delete(h, k)
			continue
		}
		h[k] = v
	}
	signingInput, err := encodeParts(h, claims)
	if err != nil {
		return "", err
	}
	sig, err := sign(key, []byte(signingInput))
	if err != nil {
		return "", err
	}
	return signingInput + "." + b64(sig), nil
}

// Unsigned returns a token with alg "none" and an empty signature.
func Unsigned(claims Claims) string {
	in, _ := encodeParts(Header{"alg": "none", "typ": "at+jwt"}, claims)
	return in + "."
}

// SignHMAC returns a token signed with HMAC-SHA256 under secret, as an
// attacker would sign one with a public key's bytes as the secret.
func SignHMAC(header Header, claims Claims, secret []byte) string {
	h := Header{"alg": "HS256", "typ": "at+jwt"}
	for k, v := range header {
		h[k] = v
	}
	in, _ := encodeParts(h, claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(in))
	return in + "." + b64(mac.Sum(nil))
}

func encodeParts(header Header, claims Claims) (string, error) {
	hj, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("devidp: encoding header: %w", err)
	}
	cj, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("devidp: encoding claims: %w", err)
	}
	return b64(hj) + "." + b64(cj), nil
}

func sign(key *Key, input []byte) ([]byte, error) {
	digest := sha256.Sum256(input)
	switch k := key.Signer.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			return nil, err
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out, nil
	default:
		return key.Signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
