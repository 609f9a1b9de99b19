package main

import (
	"context"
	"crypto"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// rawVerifyResult is go-oidc's IDTokenVerifier.Verify of the fresh tokens,
// run in this process while no load runs: the baseline a token-cache miss
// is compared with in the same run.
type rawVerifyResult struct {
	Verifies int64
	CPU      time.Duration // this process's user+system CPU meanwhile
}

// PerVerify is the CPU time of one Verify.
func (r rawVerifyResult) PerVerify() time.Duration {
	if r.Verifies == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Verifies)
}

// rawVerify verifies the fresh pool's tokens in turn for d on every core,
// with the issuer's RS256 key in memory (no fetch) and the same audience,
// as a service using go-oidc directly would, and measures the CPU it took.
func (b *bench) rawVerify(ctx context.Context, d time.Duration) (rawVerifyResult, error) {
	keys := &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{b.iss.KeyFor("RS256").Signer.Public()}}
	v := oidc.NewVerifier(b.iss.URL, keys, &oidc.Config{ClientID: benchAudience, SupportedSigningAlgs: []string{"RS256"}})
	pool := b.fresh.tokens
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	cpu0, err := processCPU(os.Getpid())
	if err != nil {
		return rawVerifyResult{}, err
	}
	var (
		count    atomic.Int64
		next     atomic.Uint64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				tok := pool[(next.Add(1)-1)%uint64(len(pool))]
				if _, err := v.Verify(context.Background(), tok); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("go-oidc rejected a fresh token: %w", err) })
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	cpu1, err := processCPU(os.Getpid())
	if err != nil {
		return rawVerifyResult{}, err
	}
	return rawVerifyResult{Verifies: count.Load(), CPU: cpu1 - cpu0}, firstErr
}
