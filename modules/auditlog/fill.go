package auditlog

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

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

	m.metrics.observe(rec, werr)
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
	rec.SpoofedHeaders = d.SpoofedHeaders
	rec.SecurityEvent = securityEvent(rec.Decision, rec.Reason, d.SpoofedHeaders)
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

var (
	recordPool = sync.Pool{New: func() any { return new(Record) }}
	bufPool    = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
)

func putRecord(rec *Record) {
	qp, ids := rec.QueryParams[:0], rec.RecordIDs[:0]
	*rec = Record{QueryParams: qp, RecordIDs: ids}
	recordPool.Put(rec)
}
