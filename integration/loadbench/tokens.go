package main

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// Claims every benchmark token carries: the audience, tenant and scopes the
// bench Caddyfiles expect.
const (
	benchAudience = "connector-api"
	benchTenant   = "acme"
	// contacts:all releases every record of the page (policies/crm.json's
	// rule "true"), so the harness trims the whole page as it did before
	// record rules
	benchScopes = "contacts:read contacts:pii contacts:all"
)

// mintToken signs one access token for the bench tenant, valid for the
// whole run.
func mintToken(iss *devidp.Issuer, subject string, valid time.Duration) (string, error) {
	claims := iss.AccessClaims(subject, benchAudience, devidp.Claims{
		"scope":     benchScopes,
		"tenant_id": benchTenant,
		"exp":       time.Now().Add(valid).Unix(),
	})
	return iss.Mint(claims)
}

// mintPool signs n distinct tokens (distinct subjects and jti) on every
// core, so that minting is not part of the measurement.
func mintPool(iss *devidp.Issuer, prefix string, n int, valid time.Duration) ([]string, error) {
	tokens := make([]string, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				tok, err := mintToken(iss, fmt.Sprintf("%s%06d", prefix, i), valid)
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				tokens[i] = tok
			}
		}()
	}
	wg.Wait()
	return tokens, firstErr
}

// rotation hands out the pool's tokens in turn. With more tokens than the
// sidecar's least-recently-used token cache holds, every token has been
// evicted by the time it comes round again, so every request misses.
type rotation struct {
	tokens []string
	next   atomic.Uint64
}

func (r *rotation) token() string {
	i := r.next.Add(1) - 1
	return r.tokens[i%uint64(len(r.tokens))]
}
