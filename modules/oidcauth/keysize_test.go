package oidcauth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// rsaJWK returns an RSA public JWK whose modulus has exactly bits bits. The
// modulus is random, not a product of two primes: the size checks look at
// its length only, and generating real 8192-bit keys takes tens of seconds.
func rsaJWK(t *testing.T, kid string, bits int) string {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(bits-1)))
	if err != nil {
		t.Fatal(err)
	}
	n.SetBit(n, bits-1, 1).SetBit(n, 0, 1)
	if n.BitLen() != bits {
		t.Fatalf("modulus of %d bits, want %d", n.BitLen(), bits)
	}
	return fmt.Sprintf(`{"kty":"RSA","kid":%q,"alg":"RS256","use":"sig","n":%q,"e":"AQAB"}`,
		kid, base64.RawURLEncoding.EncodeToString(n.Bytes()))
}

// Fact: go-jose v4.1.9 refuses to parse an RSA JWK whose modulus is longer
// than MaxRSAModulusBits (4096) with ErrUnsupportedKeyType (jwk.go,
// rsaPublicKey). So an 8192-bit key in a JWKS is never a usable key here,
// whatever oidc_auth's own limit says.
func TestFactJOSERefusesRSAModuliOver4096(t *testing.T) {
	if jose.MaxRSAModulusBits != 4096 {
		t.Fatalf("go-jose's MaxRSAModulusBits is %d; it was 4096 in v4.1.9 (jwk.go). Re-check maxRSABits and docs/oidc_auth.md", jose.MaxRSAModulusBits)
	}
	for bits, wantErr := range map[int]bool{2048: false, 4096: false, 4097: true, 8192: true} {
		var k jose.JSONWebKey
		err := k.UnmarshalJSON([]byte(rsaJWK(t, "k", bits)))
		if wantErr && !errors.Is(err, jose.ErrUnsupportedKeyType) {
			t.Errorf("%d-bit modulus: err = %v, want ErrUnsupportedKeyType", bits, err)
		}
		if !wantErr && err != nil {
			t.Errorf("%d-bit modulus: %v", bits, err)
		}
	}
}

// TestParseJWKSKeepsRSAKeysOf2048To4096Bits: shorter and longer RSA keys are
// skipped, and a set that holds only a key over 4096 bits has no usable key,
// which the key set reports as a failed fetch (the issuer's keys stay
// unavailable: 503 keys_unavailable).
func TestParseJWKSKeepsRSAKeysOf2048To4096Bits(t *testing.T) {
	var entries []string
	for _, bits := range []int{1024, 2047, 2048, 3072, 4096, 4097, 8192} {
		entries = append(entries, rsaJWK(t, fmt.Sprintf("rsa-%d", bits), bits))
	}
	keys, err := parseJWKS([]byte(`{"keys":[` + strings.Join(entries, ",") + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, k := range keys {
		kept = append(kept, k.jwk.KeyID)
	}
	if got := strings.Join(kept, ","); got != "rsa-2048,rsa-3072,rsa-4096" {
		t.Fatalf("kept %s, want rsa-2048,rsa-3072,rsa-4096", got)
	}

	_, err = parseJWKS([]byte(`{"keys":[` + rsaJWK(t, "rsa-8192", 8192) + `]}`))
	if err == nil || !strings.Contains(err.Error(), "no usable signature key") {
		t.Fatalf("a JWKS holding only an 8192-bit key: err = %v, want \"JWKS holds no usable signature key\"", err)
	}
}
