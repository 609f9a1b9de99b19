package sidecar

import (
	"errors"
	"sync"
	"time"
)

// AuditEvent is an audit record about something other than a request: what
// happened to a tenant's connection to a connected system. audit_log writes
// it into its chain beside the request records. It holds names, codes and
// times, never a token or a secret.
type AuditEvent struct {
	// Event is what happened: one of the Event* constants.
	Event string
	// RequestID is the request that caused the event, if one did (a
	// refresh); empty for the admin API's events.
	RequestID string
	Tenant    string
	Connector string
	// Reason is ReasonOK, or the reason code of a failure.
	Reason string
	// Grant is the connection's grant (refresh_token, client_credentials).
	Grant string
	// Rotated: the refresh gave a new refresh token, which was stored.
	Rotated bool
	// TokenError is the token or revocation endpoint's error code
	// ("invalid_grant", "timeout", "http_503"), never its text.
	TokenError string
	// The disconnect receipt: when, which tokens were revoked (by type, never
	// by value), which revocations failed and whether the stored credential
	// was deleted. A revocation event uses Revoked and RevocationErrors too.
	DisconnectedAt   time.Time
	Revoked          []string
	RevocationErrors []string
	Deleted          bool
}

// Values of AuditEvent.Event.
const (
	EventConnect        = "connect"
	EventDisconnect     = "disconnect"
	EventRefresh        = "refresh"
	EventRefreshFailure = "refresh_failure"
	EventRevocation     = "revocation"
)

// AuditEventWriter writes audit events into an audit chain: audit_log's
// outputs, one writer per output.
type AuditEventWriter interface {
	WriteAuditEvent(*AuditEvent) error
}

var eventWriters = struct {
	sync.Mutex
	list []AuditEventWriter
}{}

// RegisterAuditEventWriter adds w to the writers every audit event goes to,
// until the returned function is called.
func RegisterAuditEventWriter(w AuditEventWriter) (unregister func()) {
	eventWriters.Lock()
	eventWriters.list = append(eventWriters.list, w)
	eventWriters.Unlock()
	return func() {
		eventWriters.Lock()
		defer eventWriters.Unlock()
		for i, x := range eventWriters.list {
			if x == w {
				eventWriters.list = append(eventWriters.list[:i:i], eventWriters.list[i+1:]...)
				return
			}
		}
	}
}

// ErrNoAuditOutput: no audit_log output is configured, so an audit event
// went nowhere.
var ErrNoAuditOutput = errors.New("no audit_log output is configured")

// WriteAuditEvent writes e to every registered writer and returns their
// errors joined, or ErrNoAuditOutput when there is none.
func WriteAuditEvent(e *AuditEvent) error {
	eventWriters.Lock()
	list := append([]AuditEventWriter(nil), eventWriters.list...)
	eventWriters.Unlock()
	if len(list) == 0 {
		return ErrNoAuditOutput
	}
	var errs []error
	for _, w := range list {
		errs = append(errs, w.WriteAuditEvent(e))
	}
	return errors.Join(errs...)
}
