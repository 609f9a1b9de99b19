package scopetrim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"unicode/utf8"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// RedactMarker replaces every value a "redact" grant covers.
const RedactMarker = "[redacted]"

// maskKeep is how many trailing characters "mask" keeps.
const maskKeep = 4

// hasher computes the "hash" transform: HMAC-SHA256 under a key derived for
// one tenant from the configured hash key, so the same value hashes
// differently for two tenants and nobody without the key can confirm a guess.
type hasher struct {
	mac hash.Hash
	sum [sha256.Size]byte
}

// tenantKey derives the per-tenant HMAC key from the configured key.
func tenantKey(master []byte, tenant string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("alysio scope_trim hash v1\x00"))
	m.Write([]byte(tenant))
	return m.Sum(nil)
}

func newHasher(key []byte) *hasher { return &hasher{mac: hmac.New(sha256.New, key)} }

func (h *hasher) appendHex(dst, value []byte) []byte {
	h.mac.Reset()
	h.mac.Write(value)
	sum := h.mac.Sum(h.sum[:0])
	return hex.AppendEncode(dst, sum)
}

// transformScalar writes the transformed form of the scalar at t.pos. null
// stays null under every transform: it carries no value to protect. mask and
// hash work on a string's unescaped value and on a number's text; a masked
// boolean is "****" and a hashed one the hash of "true" or "false".
func (t *trimmer) transformScalar(tf transform) {
	start := t.pos
	if !t.scalar() {
		return
	}
	raw := t.src[start:t.pos]
	if raw[0] == 'n' || tf == tfNull {
		t.out = append(t.out, "null"...)
		return
	}
	if tf == tfRedact {
		t.out = append(t.out, '"')
		t.out = append(t.out, RedactMarker...)
		t.out = append(t.out, '"')
		return
	}
	if tf == tfMask && (raw[0] == 't' || raw[0] == 'f') {
		t.out = append(t.out, `"****"`...) // a masked boolean reveals nothing
		return
	}
	value := raw
	if raw[0] == '"' {
		t.scratch = unescape(t.scratch[:0], raw[1:len(raw)-1])
		value = t.scratch
	}
	switch tf {
	case tfHash:
		if t.hash == nil { // provisioning refuses a hash policy without a key
			t.fail(sidecar.ReasonUpstreamError, "hash transform without a key")
			return
		}
		t.out = append(t.out, '"')
		t.out = t.hash.appendHex(t.out, value)
		t.out = append(t.out, '"')
	case tfMask:
		t.out = appendJSONString(t.out, mask(value))
	}
}

// mask keeps the last maskKeep characters behind a fixed "****", so the
// output does not reveal the value's length. Values of maskKeep characters
// or fewer are masked entirely. Masking twice changes nothing.
func mask(v []byte) []byte {
	n := utf8.RuneCount(v)
	out := []byte("****")
	if n <= maskKeep {
		return out
	}
	i := len(v)
	for k := 0; k < maskKeep; k++ {
		_, size := utf8.DecodeLastRune(v[:i])
		i -= size
	}
	return append(out, v[i:]...)
}

// appendJSONString appends s (valid UTF-8) as a JSON string.
func appendJSONString(dst, s []byte) []byte {
	const hexdigits = "0123456789abcdef"
	dst = append(dst, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexdigits[c>>4], hexdigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
