package auditlog

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names are a contract: deploy/prometheus/sidecar-alerts.yml and
// dashboards use them.
const (
	metricRequests        = "sidecar_requests_total"
	metricWithheld        = "sidecar_fields_withheld_total"
	metricWriteFailures   = "sidecar_audit_write_failures_total"
	metricSecurityEvents  = "sidecar_security_events_total"
	metricRecordsWithheld = "sidecar_records_withheld_total"
	metricAddedLatency    = "sidecar_added_latency_seconds"

	metricCheckpointFailures = "sidecar_audit_checkpoint_failures_total"
)

// metrics are the audit_log counters in Caddy's metrics registry.
type metrics struct {
	requests       *prometheus.CounterVec
	withheld       *prometheus.CounterVec
	writeFailures  prometheus.Counter
	securityEvents *prometheus.CounterVec
	// checkpointFailures counts checkpoints that could not be written.
	checkpointFailures prometheus.Counter
	// recordsWithheld counts records scope_trim's record rules withheld.
	recordsWithheld *prometheus.CounterVec
	// addedLatency is the time the sidecar added to a request: its whole
	// duration up to the record, less the time reverse_proxy spent with
	// the connector (http.reverse_proxy.upstream.duration, which includes
	// reading the connector's body into scope_trim's buffer).
	addedLatency *prometheus.HistogramVec
	tenantLabel  bool
}

func newMetrics(reg prometheus.Registerer, tenantLabel bool) (*metrics, error) {
	reqLabels := []string{"decision", "reason", "connector"}
	withheldLabels := []string{"connector"}
	if tenantLabel {
		reqLabels = append(reqLabels, "tenant")
		withheldLabels = append(withheldLabels, "tenant")
	}
	m := &metrics{tenantLabel: tenantLabel}
	var err error
	if m.requests, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricRequests,
		Help: "Requests the privacy sidecar audited, by decision (allow, deny), reason code and connector.",
	}, reqLabels)); err != nil {
		return nil, err
	}
	if m.withheld, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricWithheld,
		Help: "Response values scope_trim withheld, by connector.",
	}, withheldLabels)); err != nil {
		return nil, err
	}
	if m.writeFailures, err = register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: metricWriteFailures,
		Help: "Audit records that could not be written to the audit output.",
	})); err != nil {
		return nil, err
	}
	if m.securityEvents, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricSecurityEvents,
		Help: "Requests raised as security events, by reason code.",
	}, []string{"reason"})); err != nil {
		return nil, err
	}
	if m.checkpointFailures, err = register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: metricCheckpointFailures,
		Help: "Audit checkpoints that could not be written to the checkpoint output.",
	})); err != nil {
		return nil, err
	}
	if m.recordsWithheld, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricRecordsWithheld,
		Help: "Records scope_trim's record rules withheld from answers, by connector.",
	}, withheldLabels)); err != nil {
		return nil, err
	}
	if m.addedLatency, err = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: metricAddedLatency,
		Help: "Time the sidecar added to a request (its duration less the time spent with the connector), by decision; streamed answers are not observed.",
		// 50 µs to about 1.2 s: a cached allowed request costs a few
		// hundred µs, a key fetch or a large body tens of ms.
		Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 12),
	}, []string{"decision"})); err != nil {
		return nil, err
	}
	return m, nil
}

// register adds c to the registry, or returns the collector already there
// (several audit_log handlers in one config share the counters).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("registering audit_log metrics (every audit_log in a config must use the same metrics_tenant_label setting): %v", err)
}

// observe counts a written (or failed) record. added is the latency the
// sidecar added, or negative when it is not known (a stream).
func (m *metrics) observe(rec *Record, writeErr error, added time.Duration) {
	if writeErr != nil {
		m.writeFailures.Inc()
	}
	if m.tenantLabel {
		m.requests.WithLabelValues(rec.Decision, rec.Reason, rec.Connector, rec.Tenant).Inc()
		if rec.FieldsRemoved > 0 {
			m.withheld.WithLabelValues(rec.Connector, rec.Tenant).Add(float64(rec.FieldsRemoved))
		}
		if rec.RecordsWithheld > 0 {
			m.recordsWithheld.WithLabelValues(rec.Connector, rec.Tenant).Add(float64(rec.RecordsWithheld))
		}
	} else {
		m.requests.WithLabelValues(rec.Decision, rec.Reason, rec.Connector).Inc()
		if rec.FieldsRemoved > 0 {
			m.withheld.WithLabelValues(rec.Connector).Add(float64(rec.FieldsRemoved))
		}
		if rec.RecordsWithheld > 0 {
			m.recordsWithheld.WithLabelValues(rec.Connector).Add(float64(rec.RecordsWithheld))
		}
	}
	if added >= 0 {
		m.addedLatency.WithLabelValues(rec.Decision).Observe(added.Seconds())
	}
	if rec.SecurityEvent != "" {
		m.securityEvents.WithLabelValues(rec.SecurityEvent).Inc()
	}
}
