package connectorauth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// Status is what the admin API reports about one connection: never a secret.
type Status struct {
	Connector      string    `json:"connector"`
	State          string    `json:"state"`
	Grant          string    `json:"grant,omitempty"`
	ConnectedAt    time.Time `json:"connected_at,omitzero"`
	DisconnectedAt time.Time `json:"disconnected_at,omitzero"`
	LastRefresh    time.Time `json:"last_refresh,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
}

func statusOf(c *Connection, state string) Status {
	s := Status{Connector: c.Connector, State: state, ConnectedAt: c.ConnectedAt, DisconnectedAt: c.DisconnectedAt,
		LastRefresh: c.LastRefresh, LastError: c.LastError, Grant: c.Credential.Kind()}
	return s
}

// Receipt is the answer to a disconnect. Its field names are a contract.
type Receipt struct {
	Tenant         string    `json:"tenant"`
	Connector      string    `json:"connector"`
	DisconnectedAt time.Time `json:"disconnected_at"`
	// Revoked names the token types revoked at the revocation endpoint.
	Revoked []string `json:"revoked"`
	// RevocationErrors says, per token type, why a revocation failed or was
	// not attempted. A failure never keeps the connection alive.
	RevocationErrors []string `json:"revocation_errors"`
	// Deleted: the stored credential is gone.
	Deleted bool `json:"deleted"`
}

// InputError is a request the admin API refuses with 400: its text names
// the problem, never a value that was sent.
type InputError struct{ msg string }

func (e *InputError) Error() string { return e.msg }

func inputErrorf(format string, args ...any) error { return &InputError{fmt.Sprintf(format, args...)} }

// ErrNotAudited: a connect could not be written to the audit log, so it
// was undone.
var ErrNotAudited = errors.New("the connect could not be written to the audit log, so the credential was not kept; fix the audit output and connect again")

// adminTimeout bounds one admin operation's storage work, revocations
// excepted (they have their own timeout).
const adminTimeout = 30 * time.Second

// maxSecretLength bounds a refresh token, client id or client secret.
const maxSecretLength = 8 << 10

// Connect stores cred as tenant's credential, in a new generation of the
// connection, and marks it connected on every replica.
func (c *Connector) Connect(ctx context.Context, tenant string, cred Credential) (*Status, error) {
	if !ValidName(tenant) {
		return nil, inputErrorf("tenant %q is not a valid name: letters, digits, '-', '_' and '.', not starting with '.'", tenant)
	}
	if err := c.checkCredential(&cred); err != nil {
		return nil, err
	}
	m := c.mgr
	st := m.store()
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	unlock, err := st.lock(ctx, tenant, c.Name)
	if err != nil {
		return nil, fmt.Errorf("locking the connection: %w", err)
	}
	defer unlock()

	if err := checkTransition("", StateConnected, causeConnect); err != nil {
		return nil, err
	}
	conn := &Connection{Tenant: tenant, Connector: c.Name, State: StateConnected, Generation: randomID(),
		ConnectedAt: time.Now().UTC(), Credential: &cred}
	if err := st.saveRecord(ctx, c.keys, conn); err != nil {
		return nil, fmt.Errorf("storing the connection: %w", err)
	}
	if err := st.deleteMarker(ctx, tenant, c.Name); err != nil {
		c.logger.Warn("cannot delete an old disconnect marker (it names an ended generation and is ignored)", zap.Error(err))
	}
	e := m.entry(c, tenant)
	m.applyNow(c, e, conn, nil)
	if err := st.changed(ctx); err != nil {
		c.logger.Error("cannot announce the connect to other replicas; they see it at their next change", zap.Error(err))
	}
	if err := c.event(&sidecar.AuditEvent{Event: sidecar.EventConnect, Tenant: tenant, Connector: c.Name, Reason: sidecar.ReasonOK, Grant: cred.Kind()}); err != nil {
		conn.State, conn.Credential, conn.DisconnectedAt = StateDisconnected, nil, time.Now().UTC()
		if serr := st.saveRecord(ctx, c.keys, conn); serr != nil {
			c.logger.Error("cannot undo an unaudited connect", zap.String("tenant", tenant), zap.Error(serr))
		}
		m.applyNow(c, e, conn, nil)
		_ = st.changed(ctx)
		return nil, ErrNotAudited
	}
	s := statusOf(conn, StateConnected)
	return &s, nil
}

// checkCredential accepts the credential the connector's grant uses.
func (c *Connector) checkCredential(cred *Credential) error {
	for name, v := range map[string]string{"refresh_token": cred.RefreshToken, "client_id": cred.ClientID, "client_secret": cred.ClientSecret} {
		if len(v) > maxSecretLength {
			return inputErrorf("%s is longer than %d bytes", name, maxSecretLength)
		}
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return inputErrorf("%s contains a byte outside printable ASCII (RFC 6749 appendix A)", name)
			}
		}
	}
	switch c.Grant {
	case GrantRefreshToken:
		if cred.RefreshToken == "" || cred.ClientID != "" || cred.ClientSecret != "" {
			return inputErrorf(`connector %q uses the refresh_token grant: send {"refresh_token": "..."}`, c.Name)
		}
	case GrantClientCredentials:
		switch {
		case cred.RefreshToken != "":
			return inputErrorf(`connector %q uses the client_credentials grant: send {"client_id": "...", "client_secret": "..."}, not a refresh token`, c.Name)
		case cred.ClientID == "" && cred.ClientSecret == "" && c.ClientID == "":
			return inputErrorf(`connector %q has no client of its own: send the tenant's {"client_id": "...", "client_secret": "..."}`, c.Name)
		case cred.ClientID == "" && cred.ClientSecret != "", cred.ClientID != "" && cred.ClientSecret == "":
			return inputErrorf("send client_id and client_secret together")
		}
	}
	return nil
}

// Disconnect ends tenant's connection, in this order: it marks it
// disconnected in storage (from then on every replica refuses it and cuts
// its requests in flight), revokes the refresh token and this replica's
// access token at the revocation endpoint, deletes the stored credential,
// and returns the receipt. A revocation failure is reported, never a
// reason to keep the connection.
func (c *Connector) Disconnect(ctx context.Context, tenant string) (*Receipt, error) {
	if !ValidName(tenant) {
		return nil, inputErrorf("tenant %q is not a valid name", tenant)
	}
	m := c.mgr
	st := m.store()
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	now := time.Now().UTC()
	r := &Receipt{Tenant: tenant, Connector: c.Name, DisconnectedAt: now, Revoked: []string{}, RevocationErrors: []string{}}
	e := m.entry(c, tenant)

	// 1. Mark: this replica at once, then storage for the others.
	conn, mk, err := st.load(ctx, c.keys, tenant, c.Name)
	if errors.Is(err, ErrUnreadable) {
		return c.disconnectUnreadable(ctx, e, r, err)
	}
	m.pollMu.Lock()
	e.mu.Lock()
	gen := e.generation
	if conn != nil {
		gen = conn.Generation
	}
	cached := e.token
	e.setState(StateDisconnected, gen, ErrDisconnected)
	e.loaded = true // until the next change: this replica refuses even if storage could not be written
	e.mu.Unlock()
	if err == nil && conn != nil && conn.Generation != "" && (mk == nil || mk.Generation != conn.Generation) {
		if err = st.saveMarker(ctx, c.keys, tenant, c.Name, &marker{Generation: conn.Generation, DisconnectedAt: now}); err == nil {
			err = st.changed(ctx)
		}
	}
	m.pollMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("marking the connection disconnected in storage (this replica refuses it; the others may not): %w", err)
	}

	// 2. Wait for a refresh in progress on any replica, then read the
	// newest credential (it may have been rotated meanwhile). A connect
	// that came in between started a newer generation: that one is not
	// this disconnect's to end, and its credential is not revoked.
	if unlock, lerr := st.lock(ctx, tenant, c.Name); lerr != nil {
		c.logger.Warn("disconnecting without the connection's storage lock", zap.String("tenant", tenant), zap.Error(lerr))
	} else {
		defer unlock()
	}
	superseded := false
	if latest, _, lerr := st.load(ctx, c.keys, tenant, c.Name); lerr == nil && latest != nil {
		if conn != nil && latest.Generation == conn.Generation {
			conn = latest
		} else {
			superseded = true
		}
	}

	// 3. Revoke.
	var cred *Credential
	if conn != nil {
		cred = conn.Credential
	}
	revoke := func(token, hint string) {
		if c.RevocationURL == "" {
			r.RevocationErrors = append(r.RevocationErrors, hint+": not revoked: no revocation_url is configured")
			return
		}
		if failure := c.revokeAndRecord(ctx, tenant, cred, token, hint); failure != "" {
			r.RevocationErrors = append(r.RevocationErrors, failure)
		} else {
			r.Revoked = append(r.Revoked, hint)
		}
	}
	if cred != nil && cred.RefreshToken != "" {
		revoke(cred.RefreshToken, hintRefreshToken)
	}
	if cached != nil {
		revoke(cached.value, hintAccessToken)
	}

	// 4. Delete the credential: the record stays, disconnected, without it
	// (a newer generation's record replaced it already).
	r.Deleted = true
	if conn != nil && !superseded && (conn.Credential != nil || conn.State != StateDisconnected) {
		conn.State, conn.Credential, conn.DisconnectedAt, conn.LastError = StateDisconnected, nil, now, ""
		if err := st.saveRecord(ctx, c.keys, conn); err != nil {
			r.Deleted = false
			c.logger.Error("cannot delete the stored credential; the connection stays disconnected by its marker, and the disconnect should be repeated",
				zap.String("tenant", tenant), zap.String("connector", c.Name), zap.Error(err))
		} else {
			_ = st.changed(ctx)
		}
	}

	ev := &sidecar.AuditEvent{Event: sidecar.EventDisconnect, Tenant: tenant, Connector: c.Name, Reason: sidecar.ReasonOK,
		DisconnectedAt: now, Revoked: r.Revoked, RevocationErrors: r.RevocationErrors, Deleted: r.Deleted}
	if cred != nil {
		ev.Grant = cred.Kind()
	}
	_ = c.event(ev) // a disconnect is never undone for want of a record
	return r, nil
}

// Status reads tenant's connection from storage, adding what this replica
// knows of its latest refresh.
func (c *Connector) Status(ctx context.Context, tenant string) (*Status, error) {
	if !ValidName(tenant) {
		return nil, inputErrorf("tenant %q is not a valid name", tenant)
	}
	conn, mk, err := c.mgr.store().load(ctx, c.keys, tenant, c.Name)
	if err != nil {
		return nil, fmt.Errorf("reading the connection: %w", err)
	}
	s := Status{Connector: c.Name, State: StateDisconnected}
	if conn != nil {
		s = statusOf(conn, effectiveState(conn, mk))
		if mk != nil && mk.Generation == conn.Generation && s.DisconnectedAt.IsZero() {
			s.DisconnectedAt = mk.DisconnectedAt
		}
		e := c.mgr.entry(c, tenant)
		e.mu.Lock()
		if e.generation == conn.Generation && e.lastRefresh.After(s.LastRefresh) {
			s.LastRefresh = e.lastRefresh
		}
		if e.generation == conn.Generation && e.lastError != "" && s.LastError == "" {
			s.LastError = e.lastError
		}
		e.mu.Unlock()
	}
	return &s, nil
}

// TenantStatus reports every configured connector's connection for tenant.
func TenantStatus(ctx context.Context, tenant string) ([]Status, error) {
	out := []Status{}
	for _, name := range Names() {
		c := Lookup(name)
		if c == nil {
			continue
		}
		s, err := c.Status(ctx, tenant)
		if err != nil {
			return nil, err
		}
		out = append(out, *s)
	}
	return out, nil
}

// DisconnectTenant disconnects every connection tenant has in storage. A
// connection of a connector no handler configures any more cannot be
// decrypted or revoked: its record is deleted.
func DisconnectTenant(ctx context.Context, tenant string) ([]*Receipt, error) {
	if !ValidName(tenant) {
		return nil, inputErrorf("tenant %q is not a valid name", tenant)
	}
	var managers []*Manager
	for _, name := range Names() {
		if c := Lookup(name); c != nil && !slices.Contains(managers, c.mgr) {
			managers = append(managers, c.mgr)
		}
	}
	receipts := []*Receipt{}
	for _, m := range managers {
		names, err := m.store().connectorsOf(ctx, tenant)
		if err != nil {
			return receipts, fmt.Errorf("listing the tenant's connections: %w", err)
		}
		for _, name := range names {
			if c := lookupOn(m, name); c != nil {
				r, err := c.Disconnect(ctx, tenant)
				if err != nil {
					return receipts, fmt.Errorf("connector %q: %w", name, err)
				}
				receipts = append(receipts, r)
				continue
			}
			r, err := m.deleteUnconfigured(ctx, tenant, name)
			if err != nil {
				return receipts, fmt.Errorf("connector %q: %w", name, err)
			}
			receipts = append(receipts, r)
		}
	}
	return receipts, nil
}

// deleteUnconfigured deletes the record of a connector no handler
// configures: without its key it can be neither read nor revoked.
func (m *Manager) deleteUnconfigured(ctx context.Context, tenant, connector string) (*Receipt, error) {
	st := m.store()
	if err := st.storage.Delete(ctx, recordKey(tenant, connector)); err != nil {
		return nil, err
	}
	_ = st.deleteMarker(ctx, tenant, connector)
	_ = st.changed(ctx)
	now := time.Now().UTC()
	r := &Receipt{Tenant: tenant, Connector: connector, DisconnectedAt: now, Revoked: []string{},
		RevocationErrors: []string{"not revoked: no connector_auth handler configures this connector, so its credential could not be read"}, Deleted: true}
	ev := &sidecar.AuditEvent{Event: sidecar.EventDisconnect, Tenant: tenant, Connector: connector, Reason: sidecar.ReasonOK,
		DisconnectedAt: now, Revoked: r.Revoked, RevocationErrors: r.RevocationErrors, Deleted: true}
	if err := sidecar.WriteAuditEvent(ev); err != nil && !errors.Is(err, sidecar.ErrNoAuditOutput) {
		m.logger.Error("connection event not written to the audit log", zap.String("event", ev.Event), zap.Error(err))
	}
	return r, nil
}

// disconnectUnreadable ends a connection whose record this connector
// cannot read (its `key` changed, or the record was altered): nothing can
// be revoked, but the record goes, so that nothing stays stored and every
// replica reads the connection as disconnected.
func (c *Connector) disconnectUnreadable(ctx context.Context, e *entry, r *Receipt, cause error) (*Receipt, error) {
	m := c.mgr
	st := m.store()
	c.logger.Warn("disconnecting a connection whose record cannot be read: deleting it without revocation",
		zap.String("tenant", r.Tenant), zap.String("connector", c.Name), zap.Error(cause))
	m.pollMu.Lock()
	e.mu.Lock()
	e.setState(StateDisconnected, e.generation, ErrDisconnected)
	e.loaded = true
	e.mu.Unlock()
	err := st.storage.Delete(ctx, recordKey(r.Tenant, c.Name))
	if err == nil {
		_ = st.deleteMarker(ctx, r.Tenant, c.Name)
		err = st.changed(ctx)
	}
	m.pollMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("deleting the unreadable connection record (this replica refuses it; the others may not): %w", err)
	}
	r.RevocationErrors = append(r.RevocationErrors, "not revoked: the stored credential cannot be read with this connector's key")
	r.Deleted = true
	_ = c.event(&sidecar.AuditEvent{Event: sidecar.EventDisconnect, Tenant: r.Tenant, Connector: c.Name, Reason: sidecar.ReasonOK,
		DisconnectedAt: r.DisconnectedAt, Revoked: r.Revoked, RevocationErrors: r.RevocationErrors, Deleted: true})
	return r, nil
}
