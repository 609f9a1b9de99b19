package oidcauth

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

func TestTokenCacheBoundedAndExpiring(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newTokenCache(3)
	for i := 0; i < 5; i++ {
		c.put(&cacheEntry{key: tokenCacheKey(fmt.Sprint(i)), identity: &sidecar.Identity{Subject: fmt.Sprint(i)}, expires: now.Add(time.Minute)})
	}
	if c.len() != 3 {
		t.Fatalf("cache holds %d entries, want the bound 3", c.len())
	}
	if _, ok := c.get(tokenCacheKey("0"), now); ok {
		t.Fatal("the oldest entry survived eviction")
	}
	if e, ok := c.get(tokenCacheKey("4"), now); !ok || e.identity.Subject != "4" {
		t.Fatal("the newest entry is missing")
	}
	if _, ok := c.get(tokenCacheKey("4"), now.Add(time.Minute)); ok {
		t.Fatal("an entry outlived its expiry")
	}
	if c.len() != 2 {
		t.Fatalf("the expired entry was not dropped: %d entries", c.len())
	}
	// Recently used entries survive eviction.
	_, _ = c.get(tokenCacheKey("2"), now)
	c.put(&cacheEntry{key: tokenCacheKey("5"), expires: now.Add(time.Minute)})
	c.put(&cacheEntry{key: tokenCacheKey("6"), expires: now.Add(time.Minute)})
	if _, ok := c.get(tokenCacheKey("2"), now); !ok {
		t.Fatal("a recently used entry was evicted first")
	}
}

func TestTokenCacheDisabled(t *testing.T) {
	c := newTokenCache(-1)
	c.put(&cacheEntry{key: tokenCacheKey("t"), expires: time.Now().Add(time.Hour)})
	if _, ok := c.get(tokenCacheKey("t"), time.Now()); ok {
		t.Fatal("a disabled cache returned an entry")
	}
}

// TestCachedEntryNeverOutlivesExp: the handler caps an entry at the token's
// exp even when cache_ttl is longer.
func TestCachedEntryNeverOutlivesExp(t *testing.T) {
	iss := startIssuer(t)
	m := newHandler(t, iss, func(m *OIDCAuth) { m.CacheTTL = caddyDuration(time.Hour) })
	exp := time.Now().Add(90 * time.Second).Truncate(time.Second)
	tok := iss.MustMint(iss.AccessClaims("u", "connector-api", map[string]any{"exp": exp.Unix()}))
	if s := serve(t, m, tok); s.next.called != 1 {
		t.Fatalf("refused: %s", s.resp.Body)
	}
	e, ok := m.cache.get(tokenCacheKey(tok), time.Now())
	if !ok {
		t.Fatal("the verified token was not cached")
	}
	if !e.expires.Equal(exp) {
		t.Fatalf("entry expires %v, want the token's exp %v", e.expires, exp)
	}
}

// TestTokenCacheKeyAllocatesNothing: the key is computed on every request,
// and is the SHA-256 of the token's bytes.
func TestTokenCacheKeyAllocatesNothing(t *testing.T) {
	token := strings.Repeat("eyJhbGciOiJSUzI1NiJ9.", 40)
	if tokenCacheKey(token) != cacheKey(sha256.Sum256([]byte(token))) {
		t.Fatal("the cache key is not the SHA-256 of the token")
	}
	if avg := testing.AllocsPerRun(200, func() { tokenCacheKey(token) }); avg >= 1 {
		t.Fatalf("tokenCacheKey allocates %.2f times per call", avg)
	}
}
