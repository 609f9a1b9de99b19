package auditlog

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// TestAuditEventsVerify: connection event records written into a chain
// between request records verify exactly (audit verify), carry their
// fields, and a sink registered as an event writer gets each event once.
func TestAuditEventsVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	s := newSink("events", path, f, "unit:1")
	unregister := sidecar.RegisterAuditEventWriter(s)
	req := &Record{TS: "2026-12-01T10:00:00Z", RequestID: "r1", Decision: "deny", Reason: sidecar.ReasonConnectorDisconnected, Status: 200,
		Method: "GET", Path: "/v1/contacts/export", Tenant: "acme", Connector: "crm", InterruptedBy: sidecar.InterruptedByDisconnect}
	if _, err := s.write(appendHead(nil, req)); err != nil {
		t.Fatal(err)
	}
	events := []*sidecar.AuditEvent{
		{Event: sidecar.EventConnect, Tenant: "acme", Connector: "crm", Reason: sidecar.ReasonOK, Grant: "refresh_token"},
		{Event: sidecar.EventRefresh, RequestID: "r2", Tenant: "acme", Connector: "crm", Reason: sidecar.ReasonOK, Grant: "refresh_token", Rotated: true},
		{Event: sidecar.EventRefreshFailure, Tenant: "acme", Connector: "crm", Reason: sidecar.ReasonConnectorTokenUnavailable, TokenError: "http_503"},
		{Event: sidecar.EventRevocation, Tenant: "acme", Connector: "crm", Reason: sidecar.ReasonOK, RevocationErrors: []string{"access_token: the revocation endpoint answered 503"}, TokenError: "revocation_failed"},
		{Event: sidecar.EventDisconnect, Tenant: "acme", Connector: "crm", Reason: sidecar.ReasonOK, DisconnectedAt: time.Date(2026, 12, 1, 10, 0, 1, 5, time.UTC),
			Revoked: []string{"refresh_token"}, RevocationErrors: []string{"access_token: the revocation endpoint answered 503"}, Deleted: true},
	}
	for _, e := range events {
		if err := sidecar.WriteAuditEvent(e); err != nil {
			t.Fatal(err)
		}
	}
	unregister()
	if err := sidecar.WriteAuditEvent(events[0]); err != sidecar.ErrNoAuditOutput {
		t.Fatalf("after unregistering: %v", err)
	}
	f.Close()
	res, err := Verify([]string{path}, VerifyOptions{})
	if err != nil || res.Records != 1+len(events) {
		t.Fatalf("verify: %+v %v", res, err)
	}
	data, _ := os.ReadFile(path)
	for _, want := range []string{`"interrupted_by":"disconnect"`, `"event":"refresh","grant":"refresh_token","rotated":true`,
		`"event":"disconnect","disconnected_at":"2026-12-01T10:00:01.000000005Z","revoked":["refresh_token"],"revocation_errors":["access_token: the revocation endpoint answered 503"],"deleted":true`} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("the log lacks %s:\n%s", want, data)
		}
	}
}
