package oidcauth

import (
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// errKeysUnavailable means the issuer's keys could not be fetched (and none
// were ever fetched): the request is answered 503 with Retry-After.
var errKeysUnavailable = errors.New("the issuer's signing keys are not available")

// errUnknownKey means no published key of the issuer matches the token's
// kid and algorithm, even after the refresh the rate limit allowed.
var errUnknownKey = errors.New("no published key matches the token")

// keySetConfig is everything that makes two key sets interchangeable; it is
// the usage pool key, so a reload with the same issuer settings keeps the
// keys, the rate limit and the background refresher.
type keySetConfig struct {
	Issuer          string
	JWKSURI         string
	RefreshInterval time.Duration
	MinRefresh      time.Duration
	FetchTimeout    time.Duration
	FetchAttempts   int
	MaxJWKSBytes    int64
	MaxDiscoveryB   int64
}

func (c keySetConfig) poolKey() string {
	return fmt.Sprintf("oidc_auth keyset %q %q %d %d %d %d %d %d", c.Issuer, c.JWKSURI,
		c.RefreshInterval, c.MinRefresh, c.FetchTimeout, c.FetchAttempts, c.MaxJWKSBytes, c.MaxDiscoveryB)
}

// publicKey is one usable verification key of the issuer.
type publicKey struct {
	jwk        jose.JSONWebKey
	thumbprint string       // identifies the key across refreshes
	rsa        *rsaPKCS1Key // an RSA key's precomputed modulus, for RS*
}

// keySnapshot is an immutable view of the issuer's JWKS at one time.
type keySnapshot struct {
	keys      []*publicKey
	fetchedAt time.Time
}

// keySet is the issuer's key set as the sidecar sees it. Unlike go-oidc's
// RemoteKeySet it fetches with timeouts and size caps, refreshes on a TTL in
// the background, keeps the last good keys when a refresh fails, and
// rate-limits refreshes caused by unknown kids (with a negative cache), so
// that no request pattern can make it hammer the IdP.
type keySet struct {
	cfg    keySetConfig
	client *http.Client
	logger *zap.Logger

	mu          sync.Mutex
	snap        *keySnapshot
	jwksURI     string // configured or discovered
	lastAttempt time.Time
	lastErr     error
	inflight    chan struct{} // closed when the running fetch ends
	unknownKids map[string]time.Time
	refresher   bool // background refresher started

	ctx        context.Context
	cancel     context.CancelFunc
	now        func() time.Time
	unregister func() // from sidecar_health's view
}

// maxUnknownKids bounds the negative cache; when full it is cleared, which
// costs at most one extra rate-limited refresh.
const maxUnknownKids = 1024

func newKeySet(cfg keySetConfig, logger *zap.Logger) *keySet {
	ctx, cancel := context.WithCancel(context.Background())
	ks := &keySet{
		cfg:         cfg,
		client:      newFetchClient(cfg.FetchTimeout),
		logger:      logger,
		jwksURI:     cfg.JWKSURI,
		unknownKids: make(map[string]time.Time),
		ctx:         ctx,
		cancel:      cancel,
		now:         time.Now,
	}
	ks.unregister = sidecar.RegisterKeySource(ks)
	return ks
}

// Destruct stops the background refresher; the usage pool calls it when the
// last config using this issuer is unloaded.
func (ks *keySet) Destruct() error {
	ks.cancel()
	ks.unregister()
	return nil
}

// lookup returns the issuer's keys that may verify a token with this kid and
// alg. It fetches only when there are no keys yet, or when the kid is
// unknown and the rate limit allows a refresh. retryAfter is set with
// errKeysUnavailable.
func (ks *keySet) lookup(ctx context.Context, kid, alg string) (keys []*publicKey, retryAfter time.Duration, err error) {
	ks.mu.Lock()
	snap := ks.snap
	ks.mu.Unlock()

	if snap == nil {
		if wait := ks.untilNextAttempt(); wait > 0 {
			return nil, wait, errKeysUnavailable
		}
		snap, err = ks.refresh(ctx)
		if snap == nil {
			if err == nil {
				err = errKeysUnavailable
			}
			return nil, ks.retryAfter(), fmt.Errorf("%w: %v", errKeysUnavailable, err)
		}
	}
	if keys = snap.match(kid, alg); len(keys) > 0 {
		return keys, 0, nil
	}
	if kid == "" || !ks.mayRefreshFor(kid) {
		return ks.unknownKey()
	}
	if snap, _ = ks.refresh(ctx); snap != nil {
		if keys = snap.match(kid, alg); len(keys) > 0 {
			return keys, 0, nil
		}
	}
	ks.rememberUnknown(kid)
	return ks.unknownKey()
}

// unknownKey says why no key matched: errUnknownKey when the last fetch
// succeeded (the issuer does not publish the key), errKeysUnavailable when
// it failed (the key may be new and we cannot tell yet), so that an outage
// during a key rotation is a retryable 503 rather than a 401.
func (ks *keySet) unknownKey() ([]*publicKey, time.Duration, error) {
	ks.mu.Lock()
	lastErr := ks.lastErr
	ks.mu.Unlock()
	if lastErr != nil {
		return nil, ks.retryAfter(), fmt.Errorf("%w: the last fetch failed: %v", errKeysUnavailable, lastErr)
	}
	return nil, 0, errUnknownKey
}

// hasThumbprint reports whether a key is still published; a cached token
// whose key the IdP removed stops being accepted at the next refresh.
func (ks *keySet) hasThumbprint(tp string) bool {
	ks.mu.Lock()
	snap := ks.snap
	ks.mu.Unlock()
	if snap == nil {
		return false
	}
	for _, k := range snap.keys {
		if k.thumbprint == tp {
			return true
		}
	}
	return false
}

// mayRefreshFor decides whether an unknown kid may cause a refresh: not when
// it is negatively cached, and not within MinRefresh of the last attempt.
func (ks *keySet) mayRefreshFor(kid string) bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	now := ks.now()
	if until, ok := ks.unknownKids[kid]; ok && now.Before(until) {
		return false
	}
	if !ks.lastAttempt.IsZero() && now.Sub(ks.lastAttempt) < ks.cfg.MinRefresh {
		ks.rememberUnknownLocked(kid, now)
		return false
	}
	return true
}

func (ks *keySet) rememberUnknown(kid string) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.rememberUnknownLocked(kid, ks.now())
}

func (ks *keySet) rememberUnknownLocked(kid string, now time.Time) {
	if len(ks.unknownKids) >= maxUnknownKids {
		clear(ks.unknownKids)
	}
	ks.unknownKids[kid] = now.Add(ks.cfg.MinRefresh)
}

// untilNextAttempt is how long the rate limit forbids another fetch after a
// failed one.
func (ks *keySet) untilNextAttempt() time.Duration {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.lastAttempt.IsZero() || ks.lastErr == nil {
		return 0
	}
	return ks.cfg.MinRefresh - ks.now().Sub(ks.lastAttempt)
}

func (ks *keySet) retryAfter() time.Duration {
	if d := ks.untilNextAttempt(); d > 0 {
		return d
	}
	return ks.cfg.MinRefresh
}

// refresh fetches the key set once for all concurrent callers and returns
// the current snapshot (the last good one when the fetch failed).
func (ks *keySet) refresh(ctx context.Context) (*keySnapshot, error) {
	ks.mu.Lock()
	wait := ks.inflight
	if wait == nil {
		wait = make(chan struct{})
		ks.inflight = wait
		ks.lastAttempt = ks.now()
		go ks.runFetch(wait)
	}
	ks.mu.Unlock()

	select {
	case <-wait:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.snap, ks.lastErr
}

// runFetch runs detached from any request, so a client that disconnects
// cannot abort a fetch other requests wait for.
func (ks *keySet) runFetch(done chan struct{}) {
	ctx, cancel := context.WithTimeout(ks.ctx, time.Duration(ks.cfg.FetchAttempts)*(ks.cfg.FetchTimeout+fetchBackoff))
	defer cancel()
	keys, err := ks.fetchKeys(ctx)

	ks.mu.Lock()
	ks.lastErr = err
	if err == nil {
		ks.snap = &keySnapshot{keys: keys, fetchedAt: ks.now()}
		clear(ks.unknownKids) // a new key set may hold what was unknown
		if !ks.refresher {
			ks.refresher = true
			go ks.refreshLoop()
		}
	}
	ks.inflight = nil
	ks.mu.Unlock()
	close(done)

	if err != nil {
		ks.logger.Warn("fetching the issuer's keys failed; the last good keys stay in use",
			zap.String("issuer", ks.cfg.Issuer), zap.Error(err))
	} else {
		ks.logger.Debug("fetched the issuer's keys", zap.String("issuer", ks.cfg.Issuer), zap.Int("keys", len(keys)))
	}
}

// refreshLoop refreshes the keys every RefreshInterval, so that a key the IdP
// removed stops verifying within that interval even when no token misses.
func (ks *keySet) refreshLoop() {
	ticker := time.NewTicker(ks.cfg.RefreshInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ks.ctx.Done():
			return
		case <-ticker.C:
			_, _ = ks.refresh(ks.ctx)
		}
	}
}

// match returns the keys that may verify a token with kid and alg: the key
// with that kid, or, for a token without kid, every key that fits the alg.
func (s *keySnapshot) match(kid, alg string) []*publicKey {
	var out []*publicKey
	for _, k := range s.keys {
		if kid != "" && k.jwk.KeyID != kid {
			continue
		}
		if k.jwk.Algorithm != "" && k.jwk.Algorithm != alg {
			continue
		}
		if !keyFitsAlg(k.jwk.Key, alg) {
			continue
		}
		out = append(out, k)
	}
	return out
}

// newPublicKey prepares a key for verification: its thumbprint, and for an
// RSA key its modulus in the form every verification needs (computed once
// per fetch instead of once per token, see rsaPKCS1Key). An RSA key that
// crypto/rsa would refuse to verify with is refused here.
func newPublicKey(jwk jose.JSONWebKey) (*publicKey, error) {
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	k := &publicKey{jwk: jwk, thumbprint: base64.RawURLEncoding.EncodeToString(tp)}
	if pub, ok := jwk.Key.(*rsa.PublicKey); ok {
		if k.rsa, err = newRSAPKCS1Key(pub); err != nil {
			return nil, err
		}
	}
	return k, nil
}
