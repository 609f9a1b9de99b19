// Package auditlog implements the audit_log HTTP handler (module
// http.handlers.audit_log): one tamper-evident, pseudonymous JSON record for
// every request, written after the response through one of Caddy's log
// writers, plus request metrics and security events.
//
// It is the outermost sidecar handler. It puts the decision record into the
// request, lets the other handlers fill it in, and writes it when they are
// done, whether they allowed the request, refused it or failed.
package auditlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/logging"
	"go.uber.org/zap"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

func init() {
	caddy.RegisterModule(AuditLog{})
}

// AuditLog writes one audit record per request. The record format is
// documented on Record and in docs/audit_log.md.
type AuditLog struct {
	// OutputRaw is where records go: one of Caddy's log writer modules
	// (namespace caddy.logging.writers: file, stderr, stdout, net). Required.
	// Use a destination of its own: other lines in it break verification.
	OutputRaw json.RawMessage `json:"output,omitempty" caddy:"namespace=caddy.logging.writers inline_key=output"`

	// PseudonymKey is the secret from which the per-tenant pseudonym keys
	// are derived, at least 16 bytes. Accepts placeholders such as
	// {env.AUDIT_KEY}, resolved when the config loads. Required unless
	// PseudonymizeOff is set. Changing it changes every pseudonym.
	PseudonymKey string `json:"pseudonym_key,omitempty"`

	// PseudonymizeOff writes subjects and client IDs in clear. For
	// development only: the log then holds personal data.
	PseudonymizeOff bool `json:"pseudonymize_off,omitempty"`

	// Keyring is the file holding one random salt per tenant. Defaults to
	// the output file's name with .keyring.json for its extension
	// (audit.jsonl -> audit.keyring.json), otherwise audit-keyring.json in
	// Caddy's data directory. Accepts placeholders.
	Keyring string `json:"keyring,omitempty"`

	// Instance names this sidecar in the records' `instance` field, to which
	// a random suffix per process start is added. Defaults to the host name.
	// Accepts placeholders such as {env.POD_NAME}.
	Instance string `json:"instance,omitempty"`

	// OnWriteFailure is what happens to requests while the audit output
	// cannot be written: "refuse" (default) answers 503 audit_unavailable,
	// "allow" serves them unaudited (failures are still counted and logged).
	OnWriteFailure string `json:"on_write_failure,omitempty"`

	// MetricsTenantLabel adds a tenant label to the request and withheld
	// metrics. Off by default to bound cardinality.
	MetricsTenantLabel bool `json:"metrics_tenant_label,omitempty"`

	// CheckpointKey is the Ed25519 private key that signs checkpoints, as
	// `privacy-sidecar audit keygen` makes it (or PKCS #8 PEM). Setting it
	// turns checkpoints on, and checkpoint_output is then required. Use a
	// placeholder such as {env.AUDIT_CHECKPOINT_KEY}, resolved when the
	// config loads; never write the key into the config.
	CheckpointKey string `json:"checkpoint_key,omitempty"`

	// CheckpointOutputRaw is where checkpoints go: one of Caddy's log
	// writers, not the records' output. Put it where whoever can rewrite
	// the audit file cannot: another volume, or off the host (net).
	CheckpointOutputRaw json.RawMessage `json:"checkpoint_output,omitempty" caddy:"namespace=caddy.logging.writers inline_key=output"`

	// CheckpointEvery writes a checkpoint after this many records.
	// Default 1000.
	CheckpointEvery int `json:"checkpoint_every,omitempty"`

	// CheckpointInterval writes a checkpoint at least this often while
	// records are written (none while nothing is). Default 1m. A
	// checkpoint is also written when a resumed chain starts and when the
	// config is unloaded (shutdown).
	CheckpointInterval caddy.Duration `json:"checkpoint_interval,omitempty"`

	sink       *sink
	checkpoint *checkpointConfig
	pseudo     *pseudonymizer
	metrics    *metrics
	logger     *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (AuditLog) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.audit_log",
		New: func() caddy.Module { return new(AuditLog) },
	}
}

// Provision opens the output (continuing its chain), resolves the pseudonym
// key and registers the metrics.
func (m *AuditLog) Provision(ctx caddy.Context) error {
	m.logger = ctx.Logger()
	if err := m.checkConfig(); err != nil {
		return err
	}
	if m.OutputRaw == nil {
		return errors.New("no output configured; add `output file /var/log/sidecar/audit.jsonl` (or stderr, net)")
	}
	mod, err := ctx.LoadModule(m, "OutputRaw")
	if err != nil {
		return fmt.Errorf("loading the output: %v", err)
	}
	wo := mod.(caddy.WriterOpener)
	if nw, ok := wo.(*logging.NetWriter); ok && nw.SoftStart {
		return errors.New("the net output's soft_start would send audit records to stderr while the sink is down; remove soft_start (requests are refused while the sink is unreachable)")
	}

	repl := caddy.NewReplacer()
	if !m.PseudonymizeOff {
		secret, err := repl.ReplaceOrErr(m.PseudonymKey, true, true)
		if err != nil {
			return fmt.Errorf("pseudonym_key: %v (set the environment variable it names)", err)
		}
		if len(secret) < 16 {
			return errors.New("pseudonym_key is shorter than 16 bytes; use a long random secret, e.g. `openssl rand -base64 32`")
		}
		keyring, err := repl.ReplaceOrErr(m.Keyring, false, true)
		if err != nil {
			return fmt.Errorf("keyring: %v", err)
		}
		if keyring == "" {
			keyring = defaultKeyring(wo)
		}
		if m.pseudo, err = newPseudonymizer([]byte(secret), keyring); err != nil {
			return err
		}
	} else {
		m.logger.Warn("audit_log writes subjects and client IDs in clear (pseudonymize off): for development only")
	}

	if m.metrics, err = newMetrics(ctx.GetMetricsRegistry(), m.MetricsTenantLabel); err != nil {
		return err
	}
	instance := defaultInstance(repl.ReplaceAll(m.Instance, ""))
	if len(appendString(nil, instance)) > maxInstanceBytes {
		return fmt.Errorf("instance is too long (at most %d bytes, written as JSON)", maxInstanceBytes-16)
	}
	if m.sink, err = openSink(wo, instance); err != nil {
		return err
	}
	if m.CheckpointKey != "" {
		if err := m.provisionCheckpoints(ctx, repl, wo); err != nil {
			_, _ = sinks.Delete(m.sink.key)
			m.sink = nil
			return err
		}
	}
	return nil
}

// Validate checks the configuration (the outputs' presence is checked
// before they are loaded, which clears their JSON).
func (m *AuditLog) Validate() error { return m.checkSettings() }

// checkConfig checks the configuration as written.
func (m *AuditLog) checkConfig() error {
	switch {
	case m.CheckpointKey != "" && m.CheckpointOutputRaw == nil:
		return errors.New("checkpoint_key is set but checkpoint_output is not; name where checkpoints go, e.g. `checkpoint_output file /mnt/evidence/audit-checkpoints.jsonl`")
	case m.CheckpointKey == "" && m.CheckpointOutputRaw != nil:
		return errors.New("checkpoint_output without checkpoint_key; set `checkpoint_key {env.AUDIT_CHECKPOINT_KEY}` (make a key with `privacy-sidecar audit keygen`)")
	}
	return m.checkSettings()
}

func (m *AuditLog) checkSettings() error {
	if !m.PseudonymizeOff && m.PseudonymKey == "" {
		return errors.New("pseudonym_key is required (e.g. `pseudonym_key {env.AUDIT_KEY}`); `pseudonymize off` is for development only")
	}
	switch {
	case m.CheckpointKey == "" && (m.CheckpointEvery != 0 || m.CheckpointInterval != 0):
		return errors.New("checkpoint settings without checkpoint_key; set `checkpoint_key {env.AUDIT_CHECKPOINT_KEY}` (make a key with `privacy-sidecar audit keygen`)")
	case m.CheckpointEvery < 0:
		return errors.New("checkpoint_every must be positive")
	case m.CheckpointInterval < 0 || (m.CheckpointInterval > 0 && time.Duration(m.CheckpointInterval) < time.Second):
		return errors.New("checkpoint_interval must be at least 1s")
	}
	switch m.OnWriteFailure {
	case "", "refuse", "allow":
	default:
		return fmt.Errorf("on_write_failure must be refuse or allow, not %q", m.OnWriteFailure)
	}
	return nil
}

// Cleanup unregisters the checkpoint settings (the last handler of a sink
// to go writes its final checkpoint) and releases the shared outputs; the
// last config using one closes it.
func (m *AuditLog) Cleanup() error {
	if m.sink == nil {
		return nil
	}
	var errs []error
	if m.checkpoint != nil {
		m.sink.cp.unregister(m.checkpoint)
		_, err := checkpointOutputs.Delete(m.checkpoint.out.key)
		errs = append(errs, err)
	}
	_, err := sinks.Delete(m.sink.key)
	return errors.Join(append(errs, err)...)
}

// ServeHTTP runs the rest of the chain and writes the request's record. An
// answer that carries upstream data is recorded before it is released:
// scope_trim calls the decision's Commit right before the first byte, and
// if the record cannot be written the answer is refused (503
// audit_unavailable) instead. Every other answer (refusals, routes without
// scope_trim) is recorded after the response, also when a handler failed
// or panicked. An NDJSON stream gets a record at its start (Commit) and a
// closing one. An error from next is returned unchanged, for handle_errors.
func (m *AuditLog) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) (err error) {
	start := time.Now()
	r, d := sidecar.WithDecision(r)
	rw := caddyhttp.NewResponseRecorder(w, nil, nil)
	// Take the request id now. Caddy's replacer creates it lazily in the
	// request's vars map, and once reverse_proxy ran, its dial goroutines
	// may still be reading that map: creating it after next returns would
	// be a concurrent map write (the race detector caught it under load).
	var requestID string
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		requestID, _ = repl.GetString("http.request.uuid")
	}
	rc := &releaseCommit{m: m, r: r, d: d, start: start, requestID: requestID}
	d.SetCommit(rc.commit)

	done := false
	defer func() {
		if done {
			return
		}
		// A handler panicked: record it, then let Caddy's recovery answer.
		// http.ErrAbortHandler (an aborted proxied body) keeps the status
		// already sent; anything else is a 500.
		p := recover()
		d.Deny(http.StatusInternalServerError, sidecar.ReasonHandlerError)
		var perr error
		if rw.Status() == 0 {
			perr = caddyhttp.Error(http.StatusInternalServerError, errors.New("handler panicked"))
		}
		rc.final(rw, perr)
		panic(p)
	}()

	if m.sink.failing.Load() && m.OnWriteFailure != "allow" {
		err = sidecar.Refuse(rw, r, http.StatusServiceUnavailable, sidecar.ReasonAuditUnavailable,
			"the audit log cannot be written; the request was not served")
	} else {
		err = next.ServeHTTP(rw, r)
	}
	done = true
	rc.final(rw, err)
	return err
}

// releaseCommit writes one request's record ahead of a release (commit),
// or after the response (final).
type releaseCommit struct {
	m         *AuditLog
	r         *http.Request
	d         *sidecar.Decision
	start     time.Time
	requestID string
	committed bool
}

// commit writes the record of an answer about to be released with status
// and bytesOut (-1 for a stream: 0 is written). It is called at most once
// per request that releases upstream data; for a compressed NDJSON stream,
// from scope_trim's decoder goroutine while the handler's goroutine waits
// in the proxy's copy (final runs after scope_trim joined that goroutine).
func (c *releaseCommit) commit(status int, bytesOut int64) error {
	if c.committed {
		return nil
	}
	werr := c.m.record(c.r, c.d, status, max(bytesOut, 0), nil, c.start, c.requestID)
	if werr != nil && c.m.OnWriteFailure != "allow" {
		return werr // not released: the refusal gets its own record
	}
	c.committed = true
	return nil
}

// final writes the record after the response, unless commit wrote it; a
// stream gets its closing record.
func (c *releaseCommit) final(rw caddyhttp.ResponseRecorder, handlerErr error) {
	if c.committed && c.d.Stream == "" {
		return
	}
	if c.d.Stream == sidecar.StreamStart {
		c.d.Stream = sidecar.StreamCut // it ended without scope_trim saying how
	}
	_ = c.m.record(c.r, c.d, rw.Status(), int64(rw.Size()), handlerErr, c.start, c.requestID)
}

// record builds, writes and counts the request's record: status is what
// the client got (0: nothing was written yet), bytesOut the body's length.
// It returns the write's error.
func (m *AuditLog) record(r *http.Request, d *sidecar.Decision, status int, bytesOut int64, handlerErr error, start time.Time, requestID string) error {
	rec := recordPool.Get().(*Record)
	defer putRecord(rec)
	m.fill(rec, r, d, status, handlerErr, start)
	rec.BytesOut = bytesOut
	rec.RequestID = requestID

	bp := bufPool.Get().(*[]byte)
	head := boundHead(appendHead((*bp)[:0], rec), rec)
	seq, werr := m.sink.write(head)
	*bp = head
	bufPool.Put(bp)

	m.metrics.observe(rec, werr, addedLatency(r, rec, start))
	if werr != nil {
		msg := "audit record not written: requests are refused until the audit output works again"
		if m.OnWriteFailure == "allow" {
			msg = "audit record not written: requests are served unaudited (on_write_failure allow)"
		}
		m.logger.Error(msg, zap.String("output", m.sink.name), zap.Uint64("seq", seq),
			zap.String("request_id", rec.RequestID), zap.Error(werr))
	}
	if rec.SecurityEvent != "" {
		if ce := m.logger.Check(zap.WarnLevel, "security event"); ce != nil {
			ce.Write(
				zap.String("security_event", rec.SecurityEvent),
				zap.String("request_id", rec.RequestID),
				zap.String("reason", rec.Reason),
				zap.Int("status", rec.Status),
				zap.String("method", rec.Method),
				zap.String("host", rec.Host),
				zap.String("path", rec.Path),
				zap.String("tenant", rec.Tenant),
				zap.String("subject", rec.Subject),
				zap.String("issuer", rec.Issuer),
				zap.String("connector", rec.Connector),
				zap.Strings("spoofed_headers", rec.SpoofedHeaders),
				zap.Uint64("seq", seq),
			)
		}
	}
	return werr
}

// fill copies what may be written about the request into rec.
func (m *AuditLog) fill(rec *Record, r *http.Request, d *sidecar.Decision, status int, handlerErr error, start time.Time) {
	rec.start = start
	rec.Status = status
	rec.Reason = d.Reason
	if handlerErr != nil {
		var he caddyhttp.HandlerError
		status := http.StatusInternalServerError
		if errors.As(handlerErr, &he) && he.StatusCode != 0 {
			status = he.StatusCode
		}
		if rec.Status == 0 { // else the client already got the written status
			rec.Status = status
		}
		if rec.Reason == "" {
			rec.Reason = errorReason(status)
		}
	}
	if rec.Status == 0 {
		rec.Status = http.StatusOK // net/http's implicit status
	}
	if rec.Reason == "" {
		rec.Decision, rec.Reason = "allow", sidecar.ReasonOK
	} else {
		rec.Decision = "deny"
	}
	rec.Method = r.Method
	rec.Host = r.Host
	rec.Path = r.URL.Path
	rec.QueryParams = appendQueryNames(rec.QueryParams[:0], r.URL.RawQuery)
	rec.Tenant = d.Tenant
	if id := d.Identity; id != nil {
		rec.Issuer = id.Issuer
		rec.Scopes = id.Scopes
		rec.Subject = m.pseudonym(rec, kindSubject, id.Issuer, id.Subject)
		rec.ClientID = m.pseudonym(rec, kindClient, id.Issuer, id.ClientID)
	}
	rec.Connector = d.Connector
	rec.Policy = d.Policy
	rec.Endpoint = d.Endpoint
	rec.FieldsRemoved = d.FieldsRemoved
	rec.Withheld = d.Withheld
	rec.RecordsReleased, rec.RecordsWithheld = d.RecordsReleased, d.RecordsWithheld
	rec.RecordIDs, rec.RecordIDsOmitted = m.recordIDs(rec.RecordIDs[:0], rec.Tenant, d.RecordIDs), d.RecordIDsOmitted
	rec.RecordIDsOmitted += len(d.RecordIDs) - len(rec.RecordIDs)
	rec.HeadersRemoved = d.HeadersRemoved
	rec.HeadersRemovedOmitted = d.HeadersRemovedOmitted
	rec.SpoofedHeaders = d.SpoofedHeaders
	rec.SpoofedHeadersOmitted = d.SpoofedHeadersOmitted
	rec.SecurityEvent = securityEvent(rec.Decision, rec.Reason, d.SpoofedHeaders)
	if rec.SecurityEvent == "" {
		rec.SecurityEvent = d.SecurityEvent
	}
	rec.InterruptedBy = d.InterruptedBy
	rec.Stream = d.Stream
	rec.StreamRecords = d.StreamRecords
	rec.DurationMS = float64(time.Since(start).Microseconds()) / 1000
}

// pseudonym returns value's pseudonym, or a marker when no pseudonym could
// be made: never the value itself.
func (m *AuditLog) pseudonym(rec *Record, kind, issuer, value string) string {
	if m.pseudo == nil {
		return value
	}
	p, err := m.pseudo.pseudonym(rec.Tenant, kind, issuer, value)
	if err != nil {
		m.logger.Error("cannot pseudonymise for the audit record; writing a marker instead", zap.Error(err))
		return "unavailable"
	}
	return p
}

// recordIDs appends the pseudonyms of the released records' ids to dst.
// Without pseudonyms (pseudonymize off, or the keyring failing) it lists
// none: a record never holds a raw record id.
func (m *AuditLog) recordIDs(dst []string, tenant string, ids []string) []string {
	if m.pseudo == nil || len(ids) == 0 {
		return dst
	}
	out, err := m.pseudo.recordPseudonyms(dst, tenant, ids)
	if err != nil {
		m.logger.Error("cannot pseudonymise record ids for the audit record; they are counted as omitted", zap.Error(err))
		return dst
	}
	return out
}

// errorReason names a handler error that no sidecar module explained.
func errorReason(status int) string {
	switch status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return sidecar.ReasonUpstreamUnavailable
	case 499:
		return sidecar.ReasonClientClosed
	}
	return sidecar.ReasonHandlerError
}

// securityEvent returns the security_event value for a record, or "". An
// upstream outage is not an attack, although its code starts with upstream_.
func securityEvent(decision, reason string, spoofed []string) string {
	if decision == "deny" && reason != sidecar.ReasonUpstreamUnavailable && sidecar.IsSecurityEvent(reason) {
		return reason
	}
	if len(spoofed) > 0 {
		return sidecar.ReasonSpoofedHeader
	}
	return ""
}

// maxQueryNames bounds the query parameter names listed in one record.
const maxQueryNames = 16

// appendQueryNames lists the query's parameter names, never values. A name
// that does not look like an identifier (it may be a value or a token sent
// without "=") is listed as "?".
func appendQueryNames(names []string, rawQuery string) []string {
	for rawQuery != "" && len(names) < maxQueryNames {
		var part string
		part, rawQuery, _ = strings.Cut(rawQuery, "&")
		name, _, hasValue := strings.Cut(part, "=")
		if name == "" && !hasValue {
			continue
		}
		if !hasValue || !isParamName(name) {
			name = "?"
		}
		dup := false
		for _, n := range names {
			if n == name {
				dup = true
				break
			}
		}
		if !dup {
			names = append(names, name)
		}
	}
	return names
}

func isParamName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// defaultKeyring is next to a file output, otherwise in Caddy's data directory.
func defaultKeyring(wo caddy.WriterOpener) string {
	if fw, ok := wo.(*logging.FileWriter); ok {
		return keyringNextTo(fw.Filename)
	}
	return filepath.Join(caddy.AppDataDir(), "audit-keyring.json")
}

// keyringNextTo names the default keyring of an audit file: audit.jsonl ->
// audit.keyring.json, which a glob for the log files (audit*.jsonl*) and
// the rolled-file pattern (audit-*.jsonl*) do not match.
func keyringNextTo(file string) string {
	return strings.TrimSuffix(file, filepath.Ext(file)) + ".keyring.json"
}

var (
	recordPool = sync.Pool{New: func() any { return new(Record) }}
	bufPool    = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
)

func putRecord(rec *Record) {
	qp, ids := rec.QueryParams[:0], rec.RecordIDs[:0]
	*rec = Record{QueryParams: qp, RecordIDs: ids}
	recordPool.Put(rec)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*AuditLog)(nil)
	_ caddy.Validator             = (*AuditLog)(nil)
	_ caddy.CleanerUpper          = (*AuditLog)(nil)
	_ caddyhttp.MiddlewareHandler = (*AuditLog)(nil)
)
