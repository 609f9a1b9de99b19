package auditlog

import (
	"time"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// WriteAuditEvent writes a record about a connection into the sink's chain,
// beside the request records. Each sink registers itself once (see
// openSink), so an event is written once per output however many audit_log
// handlers share it.
func (s *sink) WriteAuditEvent(e *sidecar.AuditEvent) error {
	rec := Record{
		start:            time.Now(),
		RequestID:        e.RequestID,
		Reason:           e.Reason,
		Tenant:           e.Tenant,
		Connector:        e.Connector,
		Event:            e.Event,
		Grant:            e.Grant,
		Rotated:          e.Rotated,
		TokenError:       e.TokenError,
		Revoked:          e.Revoked,
		RevocationErrors: e.RevocationErrors,
		Deleted:          e.Deleted,
	}
	if !e.DisconnectedAt.IsZero() {
		rec.DisconnectedAt = e.DisconnectedAt.UTC().Format(time.RFC3339Nano)
	}
	_, err := s.write(boundHead(appendHead(nil, &rec), &rec))
	return err
}

var _ sidecar.AuditEventWriter = (*sink)(nil)
