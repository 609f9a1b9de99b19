package oidcauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// fakeClock is a settable clock for the key set's rate limit.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func testKeySetConfig(issuer string) keySetConfig {
	return keySetConfig{
		Issuer:          issuer,
		RefreshInterval: time.Hour,
		MinRefresh:      30 * time.Second,
		FetchTimeout:    2 * time.Second,
		FetchAttempts:   2,
		MaxJWKSBytes:    defaultMaxJWKSBytes,
		MaxDiscoveryB:   defaultMaxDiscoveryB,
	}
}

func newTestKeySet(t *testing.T, cfg keySetConfig) (*keySet, *fakeClock) {
	t.Helper()
	ks := newKeySet(cfg, zap.NewNop())
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	ks.now = clock.Now
	t.Cleanup(func() { _ = ks.Destruct() })
	return ks, clock
}

func TestKeySetUnknownKidsAreRateLimited(t *testing.T) {
	iss := startIssuer(t)
	ks, clock := newTestKeySet(t, testKeySetConfig(iss.URL))
	ctx := context.Background()
	if _, _, err := ks.lookup(ctx, "rs256-2", "RS256"); err != nil {
		t.Fatalf("known kid: %v", err)
	}
	if n := iss.JWKSFetches(); n != 1 {
		t.Fatalf("%d JWKS fetches for the first lookup, want 1", n)
	}
	if n := iss.DiscoveryFetches(); n != 1 {
		t.Fatalf("%d discovery fetches, want 1", n)
	}
	for i := 0; i < 1000; i++ {
		if _, _, err := ks.lookup(ctx, fmt.Sprintf("random-%d", i), "RS256"); !errors.Is(err, errUnknownKey) {
			t.Fatalf("random kid: %v, want errUnknownKey", err)
		}
	}
	if n := iss.JWKSFetches(); n != 1 {
		t.Fatalf("1,000 unknown kids within the minimum interval caused %d fetches in total, want 1", n)
	}
	clock.Advance(31 * time.Second)
	for i := 0; i < 1000; i++ {
		_, _, _ = ks.lookup(ctx, fmt.Sprintf("again-%d", i), "RS256")
	}
	if n := iss.JWKSFetches(); n != 2 {
		t.Fatalf("after the interval, 1,000 unknown kids caused %d fetches in total, want 2", n)
	}
	// The negative cache: the same unknown kid after another interval still
	// costs at most one fetch, then is remembered.
	clock.Advance(31 * time.Second)
	for i := 0; i < 10; i++ {
		_, _, _ = ks.lookup(ctx, "stubborn", "RS256")
	}
	if n := iss.JWKSFetches(); n != 3 {
		t.Fatalf("a repeated unknown kid caused %d fetches in total, want 3", n)
	}
	if n := iss.DiscoveryFetches(); n != 1 {
		t.Fatalf("discovery was fetched %d times; the JWKS URI is kept after the first", n)
	}
}

func TestKeySetNewKidIsPickedUpOnMiss(t *testing.T) {
	iss := startIssuer(t)
	ks, clock := newTestKeySet(t, testKeySetConfig(iss.URL))
	ctx := context.Background()
	if _, _, err := ks.lookup(ctx, "rs256-2", "RS256"); err != nil {
		t.Fatal(err)
	}
	k, err := iss.Rotate("ES256")
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * time.Second)
	keys, _, err := ks.lookup(ctx, k.ID, "ES256")
	if err != nil || len(keys) != 1 || keys[0].jwk.KeyID != k.ID {
		t.Fatalf("rotated key not found: %v", err)
	}
}

func TestKeySetUnavailableThenRecovers(t *testing.T) {
	iss := startIssuer(t)
	iss.SetMode(devidp.Down, 0)
	ks, clock := newTestKeySet(t, testKeySetConfig(iss.URL))
	ctx := context.Background()
	_, retry, err := ks.lookup(ctx, "rs256-2", "RS256")
	if !errors.Is(err, errKeysUnavailable) || retry <= 0 {
		t.Fatalf("lookup while down: %v, retry %v; want errKeysUnavailable with a retry delay", err, retry)
	}
	fetches := iss.DiscoveryFetches()
	if fetches != 2 {
		t.Fatalf("%d discovery attempts, want 2 (fetch_attempts)", fetches)
	}
	// Within the interval no request may cause another fetch.
	for i := 0; i < 50; i++ {
		if _, _, err := ks.lookup(ctx, "rs256-2", "RS256"); !errors.Is(err, errKeysUnavailable) {
			t.Fatalf("lookup %d: %v", i, err)
		}
	}
	if n := iss.DiscoveryFetches(); n != fetches {
		t.Fatalf("requests during the outage caused %d more fetches", n-fetches)
	}
	iss.SetMode(devidp.Up, 0)
	clock.Advance(31 * time.Second)
	if _, _, err := ks.lookup(ctx, "rs256-2", "RS256"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestKeySetKeepsLastGoodKeys(t *testing.T) {
	iss := startIssuer(t)
	ks, clock := newTestKeySet(t, testKeySetConfig(iss.URL))
	ctx := context.Background()
	if _, _, err := ks.lookup(ctx, "rs256-2", "RS256"); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []devidp.Mode{devidp.Garbage, devidp.Huge, devidp.Down} {
		iss.SetMode(mode, 0)
		clock.Advance(time.Minute)
		snap, err := ks.refresh(ctx)
		if err == nil {
			t.Fatalf("mode %d: refresh succeeded", mode)
		}
		if strings.Contains(err.Error(), "this is not a key set") || strings.Contains(err.Error(), "AAAAAAAA") {
			t.Fatalf("the error quotes the body: %v", err)
		}
		if snap == nil || len(snap.match("rs256-2", "RS256")) != 1 {
			t.Fatalf("mode %d: the last good keys were dropped", mode)
		}
		if _, _, err := ks.lookup(ctx, "rs256-2", "RS256"); err != nil {
			t.Fatalf("mode %d: lookup with last good keys: %v", mode, err)
		}
	}
}

func TestKeySetBackgroundRefreshDropsRemovedKey(t *testing.T) {
	iss := startIssuer(t)
	cfg := testKeySetConfig(iss.URL)
	cfg.RefreshInterval = 50 * time.Millisecond
	ks, _ := newTestKeySet(t, cfg)
	ctx := context.Background()
	keys, _, err := ks.lookup(ctx, "rs256-2", "RS256")
	if err != nil {
		t.Fatal(err)
	}
	tp := keys[0].thumbprint
	iss.RemoveKey("rs256-2")
	deadline := time.Now().Add(10 * time.Second)
	for ks.hasThumbprint(tp) {
		if time.Now().After(deadline) {
			t.Fatal("the removed key is still in use after many refresh intervals")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestKeySetConcurrentMissesShareOneFetch(t *testing.T) {
	var fetches atomic.Int64
	release := make(chan struct{})
	iss := startIssuer(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		<-release
		resp, err := http.Get(iss.JWKSURL())
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	cfg := testKeySetConfig(iss.URL)
	cfg.JWKSURI = srv.URL
	ks, _ := newTestKeySet(t, cfg)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = ks.lookup(context.Background(), "rs256-2", "RS256")
		}()
	}
	time.Sleep(100 * time.Millisecond) // let the goroutines queue on the fetch
	close(release)
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Fatalf("20 concurrent lookups caused %d fetches, want 1", n)
	}
	if iss.DiscoveryFetches() != 0 {
		t.Fatal("discovery ran although jwks_uri was configured")
	}
}

func TestKeySetRefusesBadDocuments(t *testing.T) {
	cases := map[string]struct {
		discovery string
		jwks      string
		ctype     string
		want      string
	}{
		"issuer mismatch":     {discovery: `{"issuer":"https://evil.example","jwks_uri":"%s/jwks"}`, want: "names issuer"},
		"no jwks_uri":         {discovery: `{"issuer":"%s"}`, want: "no jwks_uri"},
		"html":                {discovery: `{"issuer":"%[1]s","jwks_uri":"%[1]s/jwks"}`, jwks: "<html>", ctype: "text/html", want: "not JSON"},
		"only symmetric":      {discovery: `{"issuer":"%[1]s","jwks_uri":"%[1]s/jwks"}`, jwks: `{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}`, want: "no usable"},
		"empty set":           {discovery: `{"issuer":"%[1]s","jwks_uri":"%[1]s/jwks"}`, jwks: `{"keys":[]}`, want: "no usable"},
		"oversized jwks":      {discovery: `{"issuer":"%[1]s","jwks_uri":"%[1]s/jwks"}`, jwks: `{"keys":[],"pad":"` + strings.Repeat("x", 70000) + `"}`, want: "limit"},
		"oversized discovery": {discovery: `{"issuer":"%[1]s","pad":"` + strings.Repeat("x", 40000) + `"}`, want: "limit"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var base string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ct := c.ctype
				if ct == "" {
					ct = "application/json"
				}
				w.Header().Set("Content-Type", ct)
				if r.URL.Path == "/jwks" {
					_, _ = w.Write([]byte(c.jwks))
					return
				}
				_, _ = fmt.Fprintf(w, c.discovery, base)
			}))
			t.Cleanup(srv.Close)
			base = srv.URL
			cfg := testKeySetConfig(base)
			cfg.MaxJWKSBytes = 65536
			cfg.MaxDiscoveryB = 32768
			ks, _ := newTestKeySet(t, cfg)
			_, _, err := ks.lookup(context.Background(), "k", "RS256")
			if !errors.Is(err, errKeysUnavailable) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want errKeysUnavailable mentioning %q", err, c.want)
			}
		})
	}
}

func TestKeySetFetchTimeout(t *testing.T) {
	iss := startIssuer(t)
	iss.SetMode(devidp.Slow, 3*time.Second)
	cfg := testKeySetConfig(iss.URL)
	cfg.FetchTimeout = 200 * time.Millisecond
	cfg.FetchAttempts = 1
	ks, _ := newTestKeySet(t, cfg)
	if _, _, err := ks.lookup(context.Background(), "rs256-2", "RS256"); !errors.Is(err, errKeysUnavailable) {
		t.Fatalf("slow IdP: %v, want errKeysUnavailable", err)
	}
}

func TestParseJWKSSkipsUnusableKeys(t *testing.T) {
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	iss := startIssuer(t)
	good := iss.KeyFor("ES256")
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: weak.Public(), KeyID: "weak", Algorithm: "RS256", Use: "sig"},
		{Key: []byte("secret"), KeyID: "hmac", Algorithm: "HS256"},
		{Key: good.Signer.Public(), KeyID: "enc", Algorithm: "ES256", Use: "enc"},
		{Key: good.Signer.Public(), KeyID: "good", Algorithm: "ES256", Use: "sig"},
		{Key: good.Signer, KeyID: "private", Algorithm: "ES256"},
	}}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.jwk.KeyID)
		if !k.jwk.IsPublic() {
			t.Fatalf("key %s kept its private part", k.jwk.KeyID)
		}
	}
	if got := strings.Join(ids, ","); got != "good,private" {
		t.Fatalf("kept keys %s, want good,private (the private key reduced to its public half)", got)
	}
}

// TestKeySetUnknownKidDuringOutage: while the last fetch failed, an unknown
// kid may be a new key we cannot see yet: 503, not 401. Known kids keep
// verifying with the last good keys.
func TestKeySetUnknownKidDuringOutage(t *testing.T) {
	iss := startIssuer(t)
	ks, clock := newTestKeySet(t, testKeySetConfig(iss.URL))
	ctx := context.Background()
	if _, _, err := ks.lookup(ctx, "rs256-2", "RS256"); err != nil {
		t.Fatal(err)
	}
	iss.SetMode(devidp.Down, 0)
	clock.Advance(time.Minute)
	_, retry, err := ks.lookup(ctx, "rotated-in", "RS256")
	if !errors.Is(err, errKeysUnavailable) || retry <= 0 {
		t.Fatalf("unknown kid during an outage: %v (retry %v), want errKeysUnavailable with a delay", err, retry)
	}
	if _, _, err := ks.lookup(ctx, "another-new", "RS256"); !errors.Is(err, errKeysUnavailable) {
		t.Fatalf("rate-limited unknown kid during an outage: %v, want errKeysUnavailable", err)
	}
	if _, _, err := ks.lookup(ctx, "rs256-2", "RS256"); err != nil {
		t.Fatalf("known kid during an outage: %v", err)
	}
	iss.SetMode(devidp.Up, 0)
	clock.Advance(time.Minute)
	if _, _, err := ks.lookup(ctx, "still-unknown", "RS256"); !errors.Is(err, errUnknownKey) {
		t.Fatalf("unknown kid after recovery: %v, want errUnknownKey", err)
	}
}
