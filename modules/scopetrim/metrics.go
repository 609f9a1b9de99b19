package scopetrim

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// headersRemovedTotal is process-wide, as oidc_auth's collectors are: each
// config load registers it in its own registry, and several scope_trim
// handlers share it.
var headersRemovedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "sidecar",
	Subsystem: "scope_trim",
	Name:      "response_headers_removed_total",
	Help:      "Upstream response headers that scope_trim's response header allowlist kept from the client, by policy (connector@version).",
}, []string{"policy"})

// registerMetrics adds the collector to reg; AlreadyRegisteredError for the
// same collector is expected when a config has several scope_trim handlers.
func registerMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	if err := reg.Register(headersRemovedTotal); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) && are.ExistingCollector == headersRemovedTotal {
			return nil
		}
		return err
	}
	return nil
}
