package sidecar

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// KeyStatus is what a health check reports about one issuer's signing keys.
type KeyStatus struct {
	// Issuer is the issuer's identifier.
	Issuer string `json:"issuer"`
	// Loaded is true once the issuer's keys were fetched at least once; the
	// last good keys stay loaded while later refreshes fail.
	Loaded bool `json:"keys_loaded"`
	// Keys is how many usable keys are loaded.
	Keys int `json:"keys"`
	// LastRefresh is when the keys were last fetched successfully.
	LastRefresh time.Time `json:"last_refresh,omitzero"`
	// LastError says why the last fetch failed, if it did.
	LastError string `json:"last_error,omitempty"`
}

// KeySource is anything that holds an issuer's keys: oidc_auth's key sets.
type KeySource interface {
	KeyStatus() KeyStatus
}

var keySources = struct {
	sync.Mutex
	m map[KeySource]struct{}
}{m: make(map[KeySource]struct{})}

// RegisterKeySource makes src visible to health checks until the returned
// function is called. Key sets outlive config reloads, so they register
// when created and unregister when destroyed.
func RegisterKeySource(src KeySource) (unregister func()) {
	keySources.Lock()
	keySources.m[src] = struct{}{}
	keySources.Unlock()
	return func() {
		keySources.Lock()
		delete(keySources.m, src)
		keySources.Unlock()
	}
}

// KeyStatuses reports every registered key source, sorted by issuer.
func KeyStatuses() []KeyStatus {
	keySources.Lock()
	out := make([]KeyStatus, 0, len(keySources.m))
	for src := range keySources.m {
		out = append(out, src.KeyStatus())
	}
	keySources.Unlock()
	slices.SortFunc(out, func(a, b KeyStatus) int { return strings.Compare(a.Issuer, b.Issuer) })
	return out
}
