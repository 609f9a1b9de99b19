package oidcauth

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"math/big"
	"sync"
	"testing"
)

// testRSAKey is one 2048-bit key for the tests of this file (generating
// one costs about 100 ms).
var testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// rawSign returns em^d mod N: a "signature" whose verification decrypts to
// em, whatever em holds, so that tests can present any encoded block.
func rawSign(priv *rsa.PrivateKey, em []byte) []byte {
	m := new(big.Int).SetBytes(em)
	s := new(big.Int).Exp(m, priv.D, priv.N)
	return s.FillBytes(make([]byte, priv.Size()))
}

// pkcs1Block builds 0x00 0x01 PS 0x00 prefix digest over k bytes.
func pkcs1Block(k int, prefix, digest []byte) []byte {
	em := make([]byte, k)
	em[1] = 1
	for i := 2; i < k-len(prefix)-len(digest)-1; i++ {
		em[i] = 0xff
	}
	copy(em[k-len(prefix)-len(digest):], prefix)
	copy(em[k-len(digest):], digest)
	return em
}

// TestRSAPKCS1KeyAgreesWithCryptoRSA presents valid signatures and every
// kind of invalid one to the precomputed key and to crypto/rsa: both must
// give the same verdict, and the forgeries must be refused.
func TestRSAPKCS1KeyAgreesWithCryptoRSA(t *testing.T) {
	priv := testRSAKey()
	k, err := newRSAPKCS1Key(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	msg := []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0")
	d256 := sha256.Sum256(msg)
	d384 := sha512.Sum384(msg)
	d512 := sha512.Sum512(msg)
	digests := map[crypto.Hash][]byte{crypto.SHA256: d256[:], crypto.SHA384: d384[:], crypto.SHA512: d512[:]}
	sign := func(key *rsa.PrivateKey, h crypto.Hash) []byte {
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, h, digests[h])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	valid := sign(priv, crypto.SHA256)
	n := priv.N.FillBytes(make([]byte, priv.Size()))
	nMinus1 := new(big.Int).Sub(priv.N, big.NewInt(1)).FillBytes(make([]byte, priv.Size()))
	prefix := digestInfoPrefixes[crypto.SHA256]
	sha1Prefix := []byte{0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14}
	k256 := priv.Size()

	type tc struct {
		name   string
		hash   crypto.Hash
		digest []byte
		sig    []byte
		want   bool
	}
	cases := []tc{
		{"RS256", crypto.SHA256, d256[:], valid, true},
		{"RS384", crypto.SHA384, d384[:], sign(priv, crypto.SHA384), true},
		{"RS512", crypto.SHA512, d512[:], sign(priv, crypto.SHA512), true},
		{"another key", crypto.SHA256, d256[:], sign(other, crypto.SHA256), false},
		{"signed as SHA-384, checked as SHA-256", crypto.SHA256, d256[:], sign(priv, crypto.SHA384), false},
		{"another digest", crypto.SHA256, make([]byte, 32), valid, false},
		{"digest of the wrong length", crypto.SHA256, d256[:31], valid, false},
		{"SHA-1 is no JWS hash", crypto.SHA1, d256[:20], valid, false},
		{"leading zero byte added", crypto.SHA256, d256[:], append([]byte{0}, valid...), false},
		{"first byte dropped", crypto.SHA256, d256[:], valid[1:], false},
		{"empty", crypto.SHA256, d256[:], nil, false},
		{"zero", crypto.SHA256, d256[:], make([]byte, k256), false},
		{"one", crypto.SHA256, d256[:], append(make([]byte, k256-1), 1), false},
		{"N-1", crypto.SHA256, d256[:], nMinus1, false},
		{"N", crypto.SHA256, d256[:], n, false},
		{"all ones", crypto.SHA256, d256[:], bytes.Repeat([]byte{0xff}, k256), false},
		// Forgeries that only a lenient parser of the decrypted block
		// would accept (Bleichenbacher 2006 and its variants).
		{"garbage after the digest", crypto.SHA256, d256[:], rawSign(priv, append(pkcs1Block(k256-8, prefix, d256[:]), 1, 2, 3, 4, 5, 6, 7, 8)), false},
		{"padding too short", crypto.SHA256, d256[:], rawSign(priv, append(append([]byte{0, 1, 0xff, 0}, prefix...), append(d256[:], make([]byte, k256-4-len(prefix)-32)...)...)), false},
		{"zero inside the padding", crypto.SHA256, d256[:], rawSign(priv, func() []byte {
			em := pkcs1Block(k256, prefix, d256[:])
			em[20] = 0
			return em
		}()), false},
		{"block type 2", crypto.SHA256, d256[:], rawSign(priv, func() []byte {
			em := pkcs1Block(k256, prefix, d256[:])
			em[1] = 2
			return em
		}()), false},
		{"no DigestInfo", crypto.SHA256, d256[:], rawSign(priv, pkcs1Block(k256, nil, d256[:])), false},
		{"SHA-1 DigestInfo around a SHA-256 digest", crypto.SHA256, d256[:], rawSign(priv, pkcs1Block(k256, sha1Prefix, d256[:])), false},
		{"DigestInfo length field altered", crypto.SHA256, d256[:], rawSign(priv, pkcs1Block(k256, append([]byte{0x30, 0x32}, prefix[2:]...), d256[:])), false},
		{"the correct block, raw-signed", crypto.SHA256, d256[:], rawSign(priv, pkcs1Block(k256, prefix, d256[:])), true},
	}
	for i := 0; i < len(valid); i += 17 {
		flipped := bytes.Clone(valid)
		flipped[i] ^= 0x40
		cases = append(cases, tc{fmt.Sprintf("bit flipped in byte %d", i), crypto.SHA256, d256[:], flipped, false})
	}
	for _, c := range cases {
		got := k.verify(c.hash, c.digest, c.sig) == nil
		std := rsa.VerifyPKCS1v15(&priv.PublicKey, c.hash, c.digest, c.sig) == nil
		if got != c.want || std != c.want {
			t.Errorf("%s: precomputed key %v, crypto/rsa %v, want %v", c.name, got, std, c.want)
		}
	}
}

// TestNewRSAPKCS1KeyRefusesWhatCryptoRSARefuses: keys crypto/rsa would not
// verify with never get a precomputed form (parseJWKS then skips them).
func TestNewRSAPKCS1KeyRefusesWhatCryptoRSARefuses(t *testing.T) {
	good := testRSAKey().PublicKey
	even := new(big.Int).Add(good.N, big.NewInt(1))
	for name, pub := range map[string]*rsa.PublicKey{
		"even modulus":  {N: even, E: good.E},
		"exponent 1":    {N: good.N, E: 1},
		"even exponent": {N: good.N, E: 65536},
		"exponent 2^31": {N: good.N, E: 1 << 31},
		"no modulus":    {E: good.E},
		"nil":           nil,
	} {
		if _, err := newRSAPKCS1Key(pub); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := newRSAPKCS1Key(&rsa.PublicKey{N: good.N, E: 3}); err != nil {
		t.Errorf("exponent 3 refused: %v", err)
	}
}

// FuzzRSAPKCS1Key makes the decrypted block itself the fuzzer's input (the
// block is raw-signed with the private key), so that every byte of the
// encoding check is exercised, and requires the precomputed key and
// crypto/rsa to agree on it.
func FuzzRSAPKCS1Key(f *testing.F) {
	priv := testRSAKey()
	k, err := newRSAPKCS1Key(&priv.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	digest := sha256.Sum256([]byte("a.b"))
	size := priv.Size()
	f.Add(pkcs1Block(size, digestInfoPrefixes[crypto.SHA256], digest[:]), uint8(0))
	f.Add(pkcs1Block(size, digestInfoPrefixes[crypto.SHA512], digest[:]), uint8(2))
	f.Add(pkcs1Block(size, nil, digest[:]), uint8(0))
	f.Add([]byte{0, 1, 0xff, 0}, uint8(1))
	hashes := []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}
	f.Fuzz(func(t *testing.T, em []byte, h uint8) {
		if len(em) > size {
			em = em[:size]
		}
		block := make([]byte, size)
		copy(block[size-len(em):], em)
		block[0] = 0 // below N, so the block survives s^e mod N unchanged
		hash := hashes[int(h)%len(hashes)]
		d := hash.New()
		d.Write([]byte("a.b"))
		hashed := d.Sum(nil)
		if hash == crypto.SHA256 && bytes.HasSuffix(block, digest[:]) {
			hashed = digest[:]
		}
		sig := rawSign(priv, block)
		got := k.verify(hash, hashed, sig) == nil
		std := rsa.VerifyPKCS1v15(&priv.PublicKey, hash, hashed, sig) == nil
		if got != std {
			t.Fatalf("precomputed key %v, crypto/rsa %v, for block %x", got, std, block)
		}
	})
}
