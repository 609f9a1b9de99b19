package oidcauth

import (
	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// maxStatusError bounds the fetch error a health report repeats.
const maxStatusError = 200

// KeyStatus reports the key set to sidecar_health. While no keys were ever
// loaded it also starts a fetch in the background, when the rate limit
// allows one, so that a readiness probe warms the keys before the first
// request needs them. It never blocks on the network.
func (ks *keySet) KeyStatus() sidecar.KeyStatus {
	ks.mu.Lock()
	st := sidecar.KeyStatus{Issuer: ks.cfg.Issuer}
	if ks.snap != nil {
		st.Keys = len(ks.snap.keys)
		st.Loaded = st.Keys > 0
		st.LastRefresh = ks.snap.fetchedAt
	}
	if ks.lastErr != nil {
		st.LastError = ks.lastErr.Error()
		if len(st.LastError) > maxStatusError {
			st.LastError = st.LastError[:maxStatusError] + "..."
		}
	}
	warm := ks.snap == nil && ks.inflight == nil
	ks.mu.Unlock()
	if warm && ks.untilNextAttempt() <= 0 {
		go ks.refresh(ks.ctx) //nolint:errcheck // the outcome shows in the next report
	}
	return st
}

// Interface guards
var _ sidecar.KeySource = (*keySet)(nil)
