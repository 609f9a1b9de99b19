package oidcauth

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// metrics are process-wide collectors: key sets outlive a config load, so
// their counters cannot belong to one. Each load registers them in its own
// registry (Caddy gives every config a new one).
var metrics = struct {
	decisions  *prometheus.CounterVec
	keyFetches *prometheus.CounterVec
	cache      *prometheus.CounterVec
}{
	decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "sidecar",
		Subsystem: "oidc_auth",
		Name:      "decisions_total",
		Help:      "Requests decided by oidc_auth, by result (allow, deny) and reason code.",
	}, []string{"result", "reason"}),
	keyFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "sidecar",
		Subsystem: "oidc_auth",
		Name:      "key_fetches_total",
		Help:      "Discovery and JWKS requests to issuers, by issuer, kind (discovery, jwks) and result (ok, error, invalid).",
	}, []string{"issuer", "kind", "result"}),
	cache: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "sidecar",
		Subsystem: "oidc_auth",
		Name:      "token_cache_total",
		Help:      "Verified-token cache lookups, by result (hit, miss).",
	}, []string{"result"}),
}

// The counters every request touches, resolved once: a label lookup hashes
// its values on each call.
var (
	cacheHits   = metrics.cache.WithLabelValues("hit")
	cacheMisses = metrics.cache.WithLabelValues("miss")
	allowed     = metrics.decisions.WithLabelValues("allow", sidecar.ReasonOK)
)

// registerMetrics adds the collectors to reg. Several oidc_auth handlers in
// one config share them, so AlreadyRegisteredError for the same collector is
// expected; anything else is a real conflict.
func registerMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{metrics.decisions, metrics.keyFetches, metrics.cache} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) && are.ExistingCollector == c {
				continue
			}
			return err
		}
	}
	return nil
}
