package oidcauth

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"errors"

	"filippo.io/bigmod"
)

// rsaPKCS1Key verifies RSASSA-PKCS1-v1_5 signatures (RS256, RS384, RS512)
// with the Montgomery constants of the issuer's modulus computed once, when
// the key set is fetched.
//
// Go's crypto/rsa.VerifyPKCS1v15 rebuilds them from the *rsa.PublicKey on
// every call (crypto/rsa/rsa.go fipsPublicKey -> bigmod.NewModulus, which
// computes R² mod N) and offers no way to keep them for a public key
// (golang/go#63516): about 30% of an RS256 check, and of a cache miss. This
// type does what crypto/internal/fips140/rsa's verifyPKCS1v15 does, in the
// same order and with the same arithmetic (filippo.io/bigmod is the exported
// copy of the standard library's crypto/internal/fips140/bigmod), keeping
// the *bigmod.Modulus: s^e mod N, then a byte-for-byte comparison with the
// one encoding RFC 8017 9.2 allows for the digest. There is no parsing of
// the decrypted block to get wrong (the source of Bleichenbacher's 2006
// forgeries); TestRSAPKCS1KeyAgreesWithCryptoRSA and FuzzRSAPKCS1Key hold it
// to crypto/rsa's answers.
type rsaPKCS1Key struct {
	n    *bigmod.Modulus
	e    uint
	size int // bytes of the modulus, and of every valid signature
}

// errRSAVerification is the only error verify returns: which check failed
// is of no use to a caller and of some use to an attacker.
var errRSAVerification = errors.New("RSA signature does not verify")

// newRSAPKCS1Key precomputes pub's modulus. It refuses the keys crypto/rsa
// refuses to verify with (crypto/internal/fips140/rsa.checkPublicKey): an
// even modulus, an exponent that is even, below 3 or above 2³¹-1. parseJWKS
// has already bounded the modulus to 2048-8192 bits.
func newRSAPKCS1Key(pub *rsa.PublicKey) (*rsaPKCS1Key, error) {
	if pub == nil || pub.N == nil || pub.N.Sign() <= 0 || pub.N.Bit(0) == 0 {
		return nil, errors.New("RSA modulus is missing or even")
	}
	if pub.E < 3 || pub.E&1 == 0 || pub.E > 1<<31-1 {
		return nil, errors.New("RSA public exponent is out of range")
	}
	n, err := bigmod.NewModulus(pub.N.Bytes())
	if err != nil {
		return nil, err
	}
	return &rsaPKCS1Key{n: n, e: uint(pub.E), size: n.Size()}, nil
}

// verify reports whether sig is a PKCS #1 v1.5 signature of the digest
// hashed, made with hash, by the key's private half. Signatures are public,
// so the variable-time exponentiation leaks nothing secret (crypto/rsa uses
// the same ExpShortVarTime).
func (k *rsaPKCS1Key) verify(hash crypto.Hash, hashed, sig []byte) error {
	prefix, ok := digestInfoPrefixes[hash]
	if !ok || len(hashed) != hash.Size() {
		return errRSAVerification
	}
	// RFC 8017 8.2.2 step 1: a signature is exactly as long as the modulus.
	if len(sig) != k.size {
		return errRSAVerification
	}
	// Step 2.1 (RSAVP1): s must be below N; SetBytes refuses s >= N.
	s, err := bigmod.NewNat().SetBytes(sig, k.n)
	if err != nil {
		return errRSAVerification
	}
	em := bigmod.NewNat().ExpShortVarTime(s, k.e, k.n).Bytes(k.n)
	// Steps 3 and 4: EM' = 0x00 || 0x01 || PS (0xff...) || 0x00 || T, with
	// T = DigestInfo(hash) || hashed and PS at least 8 bytes.
	tLen := len(prefix) + len(hashed)
	if k.size < tLen+11 {
		return errRSAVerification
	}
	expected := make([]byte, k.size)
	expected[1] = 0x01
	for i := 2; i < k.size-tLen-1; i++ {
		expected[i] = 0xff
	}
	copy(expected[k.size-tLen:], prefix)
	copy(expected[k.size-len(hashed):], hashed)
	if !bytes.Equal(em, expected) {
		return errRSAVerification
	}
	return nil
}

// digestInfoPrefixes are the DER encodings of DigestInfo up to the digest
// (RFC 8017 9.2 note 1), for the hashes of RS256, RS384 and RS512; the same
// bytes as crypto/internal/fips140/rsa's hashPrefixes.
var digestInfoPrefixes = map[crypto.Hash][]byte{
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}
