package connectorauth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// MinKeyLength is the shortest `key` accepted, in bytes. The key is
// stretched with HKDF, which adds no entropy: it must be a random secret
// (`openssl rand -base64 32`), not a password.
const MinKeyLength = 32

// dataKeySize is AES-256's key size.
const dataKeySize = 32

// keyring holds the key-encryption key derived from a connector's `key`.
// It never leaves memory: storage holds only data keys wrapped by it.
type keyring struct {
	kek [dataKeySize]byte
	// id names the key in storage without revealing it, so that a wrapped
	// data key is unwrapped only with the key that wrapped it.
	id string
}

// newKeyring derives the key-encryption key and its id from secret.
func newKeyring(secret string) (*keyring, error) {
	if len(secret) < MinKeyLength {
		return nil, fmt.Errorf("the connections key is %d bytes long; use a random secret of at least %d bytes, e.g. `openssl rand -base64 32`", len(secret), MinKeyLength)
	}
	kek, err := hkdf.Key(sha256.New, []byte(secret), []byte(hkdfSalt), "key-encryption key", dataKeySize)
	if err != nil {
		return nil, err
	}
	id, err := hkdf.Key(sha256.New, []byte(secret), []byte(hkdfSalt), "key id", 8)
	if err != nil {
		return nil, err
	}
	k := &keyring{id: hex.EncodeToString(id)}
	copy(k.kek[:], kek)
	return k, nil
}

const hkdfSalt = "alysio privacy-sidecar connections v1"

// newDataKey makes a random per-tenant data key.
func newDataKey() ([]byte, error) {
	k := make([]byte, dataKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, nil
}

// wrap encrypts a tenant's data key with the key-encryption key. The
// tenant is bound as additional data: a wrapped key copied to another
// tenant does not unwrap.
func (k *keyring) wrap(tenant string, dataKey []byte) ([]byte, error) {
	return seal(k.kek[:], dataKey, wrapAAD(tenant, k.id))
}

func (k *keyring) unwrap(tenant string, wrapped []byte) ([]byte, error) {
	dk, err := open(k.kek[:], wrapped, wrapAAD(tenant, k.id))
	if err != nil {
		return nil, fmt.Errorf("the tenant's data key does not unwrap with this key: the stored key was written with another `key`, or changed: %w", ErrUnreadable)
	}
	if len(dk) != dataKeySize {
		return nil, fmt.Errorf("the tenant's data key has the wrong size: %w", ErrUnreadable)
	}
	return dk, nil
}

func wrapAAD(tenant, keyID string) []byte {
	return []byte("sidecar connection data key\x00" + tenant + "\x00" + keyID)
}

// seal encrypts plaintext with AES-256-GCM under key and returns
// nonce || ciphertext || tag. A random 96-bit nonce per message: a data key
// encrypts a few records per connect and refresh, far below GCM's limit of
// 2^32 messages per key with random nonces (NIST SP 800-38D, 8.3).
func seal(key, plaintext, aad []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return aead.Seal(out, out, plaintext, aad), nil
}

// open reverses seal; any change to the ciphertext, nonce, key or
// additional data is an error.
func open(key, sealed, aad []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("ciphertext too short")
	}
	n := aead.NonceSize()
	return aead.Open(nil, sealed[:n], sealed[n:], aad)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
