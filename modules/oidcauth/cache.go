package oidcauth

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// tokenCache remembers verified tokens so that a client repeating one token
// costs a hash instead of a signature check. It is bounded (least recently
// used entries go first), keyed by the SHA-256 of the token (the token
// itself is never kept) and bound to the issuer whose key verified it, and
// an entry expires no later than the token's exp and its maximum age.
//
// The hash alone is the map key so that a hit needs no parsing at all; it
// already commits to the issuer, because the hashed bytes include the
// payload's iss. The entry keeps the issuer so a hit is still checked
// against that issuer's current keys.
//
// A token string variant (malleated signature, different base64 padding
// bits) simply misses and is verified: keying on the string is safe.
//
// The default size, 10,000 entries, comes from the load harness's users mode
// (docs/performance-tokens.md): with 10,000 users whose requests follow a
// Zipf law (s = 1.1), 10,000 entries left only first sightings as misses
// (94.5% hits), 5,000 entries 93.0%, 2,500 87.2%, 1,000 78.1%. An entry costs
// about 3.3 KiB of RSS, so a full cache about 33 MiB, against 60-90 µs of CPU
// per miss; and entries end at cache_ttl, so only users active within it
// occupy one. Least recently used goes first: heavy users stay resident.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	entries map[cacheKey]*list.Element
	order   *list.List // front = most recently used
}

type cacheKey [sha256.Size]byte

type cacheEntry struct {
	key        cacheKey
	issuer     *issuer
	identity   *sidecar.Identity
	published  *placeholders // the identity's placeholders, built once
	thumbprint string        // the key that verified the token
	expires    time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[cacheKey]*list.Element), order: list.New()}
}

// tokenBytes holds a token's bytes while they are hashed: converting the
// string would allocate a copy of the token on every request.
var tokenBytes = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func tokenCacheKey(token string) cacheKey {
	bp := tokenBytes.Get().(*[]byte)
	b := append((*bp)[:0], token...)
	key := sha256.Sum256(b)
	clear(b) // the pool keeps no token
	*bp = b[:0]
	tokenBytes.Put(bp)
	return key
}

// get returns the cached entry for key if it has not expired at now.
func (c *tokenCache) get(key cacheKey, now time.Time) (*cacheEntry, bool) {
	if c == nil || c.max <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.entries, key)
		return nil, false
	}
	c.order.MoveToFront(el)
	return e, true
}

// put stores an entry, evicting the least recently used one when full.
func (c *tokenCache) put(e *cacheEntry) {
	if c == nil || c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.key]; ok {
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	for c.order.Len() >= c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
	c.entries[e.key] = c.order.PushFront(e)
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
