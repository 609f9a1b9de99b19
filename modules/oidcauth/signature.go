package oidcauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"math/big"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// errBadSignature means a key did not verify the token's signature.
var errBadSignature = errors.New("signature does not verify")

// errSignatureInvalid is the refusal when no candidate key verified it.
var errSignatureInvalid = &parseError{reason: sidecar.ReasonTokenInvalid, msg: "signature does not verify"}

// verifySignature checks the token's JWS signature (RFC 7515 5.2) over its
// signing input, the header and payload segments exactly as received, with
// each candidate key until one verifies it, and returns that key. The
// candidates come from keySnapshot.match, so each fits the token's alg.
//
// parseToken has already decoded the three segments (strict base64url) and
// the claims checked before any key was looked up are those of the payload
// segment this signature covers, so nothing is parsed twice: go-oidc's
// IDTokenVerifier.Verify would parse the token again with go-jose (twice
// with a KeySet that cannot see go-oidc's parsed copy, oidc/jwks.go), copy
// it rune by rune to strip whitespace (go-jose encoding.go stripWhitespace),
// unmarshal the header again to rebuild the signing input (go-jose jws.go
// computeAuthData) and unmarshal the claims twice more. The per-algorithm
// checks are go-jose's (asymmetric.go verifyPayload): the same hashes, the
// same signature sizes, the same curves.
func verifySignature(t *preToken, keys []*publicKey) (*publicKey, error) {
	hash, ok := jwsHash(t.alg)
	if !ok {
		return nil, errSignatureInvalid
	}
	input := []byte(t.signingInput)
	var digest []byte
	if hash != 0 {
		h := hash.New()
		h.Write(input)
		digest = h.Sum(nil)
	}
	for _, k := range keys {
		if k.verify(t.alg, hash, input, digest, t.signature) == nil {
			return k, nil
		}
	}
	return nil, errSignatureInvalid
}

// verify checks one key against the token.
func (k *publicKey) verify(alg string, hash crypto.Hash, input, digest, sig []byte) error {
	switch pub := k.jwk.Key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512":
			if k.rsa == nil { // newPublicKey makes one for every RSA key
				return errBadSignature
			}
			return k.rsa.verify(hash, digest, sig)
		case "PS256", "PS384", "PS512":
			// nil options: the salt length is read from the signature,
			// as go-jose does.
			return rsa.VerifyPSS(pub, hash, digest, sig, nil)
		}
	case *ecdsa.PublicKey:
		curve, size := ecdsaCurve(alg)
		if curve == nil || pub.Curve != curve || len(sig) != 2*size {
			return errBadSignature
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(pub, digest, r, s) {
			return errBadSignature
		}
		return nil
	case ed25519.PublicKey:
		if alg == "EdDSA" && ed25519.Verify(pub, input, sig) {
			return nil
		}
		return errBadSignature
	}
	return errBadSignature
}

// ecdsaCurve is the curve of an ES* algorithm and the size in bytes of each
// of R and S in its signature (RFC 7518 3.4).
func ecdsaCurve(alg string) (elliptic.Curve, int) {
	switch alg {
	case "ES256":
		return elliptic.P256(), 32
	case "ES384":
		return elliptic.P384(), 48
	case "ES512":
		return elliptic.P521(), 66
	}
	return nil, 0
}

// jwsHash is the digest of an allowed algorithm (RFC 7518 3.1); EdDSA signs
// the message itself (RFC 8037 3.1) and has none.
func jwsHash(alg string) (crypto.Hash, bool) {
	switch alg {
	case "RS256", "PS256", "ES256":
		return crypto.SHA256, true
	case "RS384", "PS384", "ES384":
		return crypto.SHA384, true
	case "RS512", "PS512", "ES512":
		return crypto.SHA512, true
	case "EdDSA":
		return 0, true
	}
	return 0, false
}
