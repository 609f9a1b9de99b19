package auditlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Checkpoint keys are Ed25519 (RFC 8032) key pairs. `privacy-sidecar audit
// keygen` writes them as one line each, a type prefix and the standard
// base64 of the 32-byte seed or public key, so that a key in an environment
// variable is one word and a public key is never mistaken for a private
// one. PEM keys (PKCS #8 private, PKIX public, as `openssl genpkey
// -algorithm ed25519` writes them) are accepted too.
const (
	privateKeyPrefix = "AUDIT-CHECKPOINT-PRIVATE-KEY:"
	publicKeyPrefix  = "AUDIT-CHECKPOINT-PUBLIC-KEY:"
)

// generateCheckpointKey returns a new key pair in the one-line format.
func generateCheckpointKey() (private, public string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	return privateKeyPrefix + base64.StdEncoding.EncodeToString(priv.Seed()),
		publicKeyPrefix + base64.StdEncoding.EncodeToString(pub), nil
}

// parsePrivateKey reads a checkpoint signing key. Errors never quote it.
func parsePrivateKey(text string) (ed25519.PrivateKey, error) {
	text = strings.TrimSpace(text)
	switch {
	case strings.HasPrefix(text, privateKeyPrefix):
		seed, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(text, privateKeyPrefix))
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, errors.New("the checkpoint key is not a 32-byte base64 Ed25519 seed after its prefix; make one with `privacy-sidecar audit keygen`")
		}
		return ed25519.NewKeyFromSeed(seed), nil
	case strings.HasPrefix(text, publicKeyPrefix):
		return nil, errors.New("checkpoint_key holds the public key; give it the private key (AUDIT-CHECKPOINT-PRIVATE-KEY:...) and auditors the public one")
	case strings.HasPrefix(text, "-----BEGIN"):
		block, _ := pem.Decode([]byte(text))
		if block == nil {
			return nil, errors.New("the checkpoint key is not valid PEM")
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("the checkpoint key is not a PKCS #8 private key: %v", err)
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, errors.New("the checkpoint key is not an Ed25519 key")
		}
		return priv, nil
	}
	return nil, errors.New("the checkpoint key is neither AUDIT-CHECKPOINT-PRIVATE-KEY:... nor PEM; make one with `privacy-sidecar audit keygen`")
}

// parsePublicKey reads a verification key: the key itself, or the name of
// a file holding it.
func parsePublicKey(arg string) (ed25519.PublicKey, error) {
	text := strings.TrimSpace(arg)
	if !strings.HasPrefix(text, publicKeyPrefix) && !strings.HasPrefix(text, "-----BEGIN") {
		data, err := os.ReadFile(arg)
		if err != nil {
			return nil, fmt.Errorf("--public-key %q is neither a key (AUDIT-CHECKPOINT-PUBLIC-KEY:...) nor a readable file: %v", arg, err)
		}
		text = strings.TrimSpace(string(data))
	}
	switch {
	case strings.HasPrefix(text, publicKeyPrefix):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(text, publicKeyPrefix))
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return nil, errors.New("the public key is not 32 bytes of base64 after its prefix")
		}
		return ed25519.PublicKey(raw), nil
	case strings.HasPrefix(text, privateKeyPrefix):
		return nil, errors.New("that is the private checkpoint key; verification takes the public key (AUDIT-CHECKPOINT-PUBLIC-KEY:...)")
	case strings.HasPrefix(text, "-----BEGIN"):
		block, _ := pem.Decode([]byte(text))
		if block == nil {
			return nil, errors.New("the public key is not valid PEM")
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("the public key is not a PKIX public key: %v", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, errors.New("the public key is not an Ed25519 key")
		}
		return pub, nil
	}
	return nil, errors.New("not a checkpoint public key")
}

// keyID names a public key in checkpoints: the first 8 bytes of its
// SHA-256, in hex.
func keyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}
