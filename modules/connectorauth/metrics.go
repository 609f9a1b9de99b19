package connectorauth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Metric names are a contract: dashboards and alerts use them.
const (
	metricRefreshes   = "sidecar_connector_token_refreshes_total"
	metricFailures    = "sidecar_connector_token_refresh_failures_total"
	metricRevocations = "sidecar_connector_revocations_total"
	metricConnections = "sidecar_connections"
)

// metrics are process-wide: the managers and connectors that update them
// outlive config reloads; each config registers them in its registry.
var metrics = struct {
	refreshes   *prometheus.CounterVec
	failures    *prometheus.CounterVec
	revocations *prometheus.CounterVec
	connections *prometheus.GaugeVec
}{
	refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricRefreshes,
		Help: "Access tokens connector_auth obtained from a connected system's token endpoint, by connector.",
	}, []string{"connector"}),
	failures: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricFailures,
		Help: "Refreshes that did not give an access token, by connector and reason code (connector_reauthorization_required, connector_token_unavailable).",
	}, []string{"connector", "reason"}),
	revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricRevocations,
		Help: "Token revocations at a connected system's revocation endpoint (RFC 7009), by connector and result (ok, error).",
	}, []string{"connector", "result"}),
	connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: metricConnections,
		Help: "Connections in storage, by connector and state (connected, disconnected, reauthorization_required), counted every 30 s and after changes.",
	}, []string{"connector", "state"}),
}

// RegisterMetrics adds the connection metrics to a config's registry.
func RegisterMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{metrics.refreshes, metrics.failures, metrics.revocations, metrics.connections} {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return fmt.Errorf("registering connector_auth metrics: %v", err)
		}
	}
	return nil
}

// How often the connections gauge is recounted from storage: every
// countEvery, and after a change but not more than once per countMinGap.
const (
	countEvery  = 30 * time.Second
	countMinGap = 5 * time.Second
)

// updateStateGauge recounts the connections by state when it is due.
// The poller calls it; it runs on the poller's goroutine only.
func updateStateGauge(m *Manager) {
	now := time.Now()
	due := now.Sub(m.countedAt) >= countEvery || (m.countDirty.Load() && now.Sub(m.countedAt) >= countMinGap)
	if !due {
		return
	}
	m.countedAt = now
	m.countDirty.Store(false)
	ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	counts, err := m.countStates(ctx)
	if err != nil {
		m.logger.Warn("cannot count connections for the metrics", zap.Error(err))
		return
	}
	metrics.connections.Reset()
	for name, byState := range counts {
		for _, state := range []string{StateConnected, StateDisconnected, StateReauthorizationRequired} {
			metrics.connections.WithLabelValues(name, state).Set(float64(byState[state]))
		}
	}
}

// countStates counts the stored connections of every connector configured
// on this manager, by state.
func (m *Manager) countStates(ctx context.Context) (map[string]map[string]int, error) {
	st := m.store()
	counts := map[string]map[string]int{}
	for _, name := range Names() {
		if lookupOn(m, name) != nil {
			counts[name] = map[string]int{}
		}
	}
	tenants, err := st.tenants(ctx)
	if err != nil {
		return nil, err
	}
	for _, tenant := range tenants {
		names, err := st.connectorsOf(ctx, tenant)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			byState, ok := counts[name]
			if !ok {
				continue
			}
			c := lookupOn(m, name)
			if c == nil {
				continue
			}
			conn, mk, err := st.load(ctx, c.keys, tenant, name)
			if err != nil {
				continue // unreadable with this key: not counted
			}
			byState[effectiveState(conn, mk)]++
		}
	}
	return counts, nil
}
