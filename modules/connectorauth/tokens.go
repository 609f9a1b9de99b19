package connectorauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

const (
	// failureHold is how long after a failed refresh requests are refused
	// without asking the token endpoint again.
	failureHold = time.Second
	// defaultLifetime is how long an access token without expires_in is
	// used before it is refreshed.
	defaultLifetime = 5 * time.Minute
	// maxMargin is the most an access token is refreshed before it expires.
	maxMargin = 30 * time.Second
	// lockWait bounds the wait for another replica's refresh. certmagic's
	// FileStorage polls a held lock every second and takes it over when it
	// is stale (no keep-alive for 10 s: filestorage.go, lockFreshnessInterval).
	lockWait = 12 * time.Second
)

// Lease is one request's use of a connection.
type Lease struct {
	// AccessToken is the tenant's access token for the connected system.
	AccessToken string
	// Header is the header value to send, []string{"Bearer " + AccessToken},
	// shared by every request on the token (its capacity is its length, so
	// an append copies it).
	Header []string
	// Live is cancelled when the request must stop: context.Cause is
	// ErrDisconnected when the connection was disconnected, ErrUnconfirmed
	// when this replica lost sight of storage.
	Live context.Context

	e   *entry
	tok *accessToken
}

// Unauthorized drops the access token the connected system refused, so that
// the next request refreshes it.
func (l *Lease) Unauthorized() {
	l.e.mu.Lock()
	if l.e.token == l.tok {
		l.e.token = nil
	}
	l.e.mu.Unlock()
}

// Acquire returns a lease on tenant's connection, or a *Refusal saying why
// the request cannot be served (or ctx's error when the caller went away).
// It refreshes the access token when there is none usable, once for all
// concurrent requests.
func (c *Connector) Acquire(ctx context.Context, tenant, requestID string) (Lease, error) {
	if !ValidName(tenant) {
		return Lease{}, refuseDisconnected(false)
	}
	m := c.mgr
	if !m.fresh() {
		if err := m.pollOnce(ctx); err != nil {
			return Lease{}, refuseUnavailable(detailUnconfirmed, c.RetryAfter)
		}
	}
	e := m.entry(c, tenant)
	if err := c.ensureLoaded(e); err != nil {
		c.logger.Error("cannot read the connection from storage", zap.String("tenant", tenant), zap.Error(err))
		return Lease{}, refuseUnavailable(detailStorage, c.RetryAfter)
	}
	for range 2 { // a refresh that found the state changed is followed by one more look
		e.mu.Lock()
		switch e.state {
		case StateConnected:
		case StateReauthorizationRequired:
			e.mu.Unlock()
			return Lease{}, refuseReauthorization()
		default:
			ever := e.endedGeneration != "" || !e.stored.DisconnectedAt.IsZero()
			e.mu.Unlock()
			return Lease{}, refuseDisconnected(ever)
		}
		now := time.Now()
		if e.token.usable(now, e.generation, c.fingerprint) {
			l := Lease{AccessToken: e.token.value, Header: e.token.header, Live: e.live, e: e, tok: e.token}
			e.mu.Unlock()
			return l, nil
		}
		if now.Before(e.failedUntil) && e.failure != nil {
			r := *e.failure
			e.mu.Unlock()
			return Lease{}, &r
		}
		gen := e.generation
		e.mu.Unlock()

		ch := m.flights.DoChan("refresh\x00"+tenant+"\x00"+c.Name+"\x00"+gen, func() (any, error) {
			return c.refresh(e, gen, requestID)
		})
		var res singleflightResult
		select {
		case r := <-ch:
			res = singleflightResult{r.Val, r.Err}
		case <-ctx.Done():
			return Lease{}, ctx.Err()
		}
		if res.err != nil {
			if errors.Is(res.err, errStateChanged) {
				continue
			}
			var r *Refusal
			if errors.As(res.err, &r) {
				return Lease{}, r
			}
			return Lease{}, refuseUnavailable(detailTokenEndpoint, c.RetryAfter)
		}
		tok := res.val.(*accessToken)
		e.mu.Lock()
		if e.state == StateConnected && e.generation == tok.generation {
			l := Lease{AccessToken: tok.value, Header: tok.header, Live: e.live, e: e, tok: tok}
			e.mu.Unlock()
			return l, nil
		}
		e.mu.Unlock()
	}
	return Lease{}, refuseUnavailable(detailTokenEndpoint, c.RetryAfter)
}

type singleflightResult struct {
	val any
	err error
}

// errStateChanged: a refresh found the connection no longer connected in
// the generation it was asked for; the caller looks at the entry again.
var errStateChanged = errors.New("the connection changed during the refresh")

// ensureLoaded reads the connection from storage the first time it is used.
func (c *Connector) ensureLoaded(e *entry) error {
	e.mu.Lock()
	loaded := e.loaded
	e.mu.Unlock()
	if loaded {
		return nil
	}
	m := c.mgr
	_, err, _ := m.flights.Do("load\x00"+e.tenant+"\x00"+e.connector, func() (any, error) {
		ctx, cancel := context.WithTimeout(m.ctx, StaleAfter)
		defer cancel()
		// under pollMu, so that the poller cannot apply an older read after this one
		m.pollMu.Lock()
		defer m.pollMu.Unlock()
		conn, mk, err := m.store().load(ctx, c.keys, e.tenant, c.Name)
		if err != nil {
			return nil, err
		}
		m.apply(c, e, conn, mk)
		return nil, nil
	})
	return err
}

// refresh obtains a new access token for generation gen of the connection.
// Where the provider rotates refresh tokens it holds the connection's
// storage lock throughout, so that no two replicas use one refresh token,
// and stores a rotated refresh token before the access token is used.
func (c *Connector) refresh(e *entry, gen, requestID string) (*accessToken, error) {
	m := c.mgr
	st := m.store()
	ctx, cancel := context.WithTimeout(m.ctx, c.TokenTimeout+lockWait)
	defer cancel()
	locked := c.Grant == GrantRefreshToken && !c.ReusableRefreshTokens
	if locked {
		unlock, err := st.lock(ctx, e.tenant, c.Name)
		if err != nil {
			return nil, c.failed(e, gen, requestID, "lock", err)
		}
		defer unlock()
	}
	conn, mk, err := st.load(ctx, c.keys, e.tenant, c.Name)
	if err != nil {
		return nil, c.failed(e, gen, requestID, "storage", err)
	}
	if effectiveState(conn, mk) != StateConnected || conn.Generation != gen {
		m.applyNow(c, e, conn, mk)
		return nil, errStateChanged
	}

	tctx, tcancel := context.WithTimeout(ctx, c.TokenTimeout)
	tok, err := c.fetch(tctx, conn.Credential)
	tcancel()
	if err != nil {
		code, reauth := c.classify(err, conn.Credential)
		if reauth {
			return nil, c.reauthorize(ctx, e, gen, code, requestID, locked)
		}
		return nil, c.failed(e, gen, requestID, code, nil)
	}

	now := time.Now()
	rotated := c.Grant == GrantRefreshToken && tok.RefreshToken != "" && tok.RefreshToken != conn.Credential.RefreshToken
	switch {
	case locked:
		if rotated {
			conn.Credential.RefreshToken = tok.RefreshToken
		}
		conn.LastRefresh, conn.LastError = now, ""
		// The new refresh token is stored before the access token is
		// used: where the provider rotates, the old one is now spent.
		if err := st.saveRecord(ctx, c.keys, conn); err != nil {
			return nil, c.failed(e, gen, requestID, "storage", err)
		}
	case rotated:
		// reusable_refresh_tokens, yet the provider rotated: keep the new
		// one, unless the record moved on meanwhile
		if err := c.storeRotated(ctx, e.tenant, gen, conn.Credential.RefreshToken, tok.RefreshToken, now); err != nil {
			return nil, c.failed(e, gen, requestID, "storage", err)
		}
	}

	at := &accessToken{value: tok.AccessToken, header: []string{"Bearer " + tok.AccessToken}[:1:1],
		refreshAt: refreshAt(now, tok.Expiry), generation: gen, fingerprint: c.fingerprint}
	e.mu.Lock()
	if e.state == StateConnected && e.generation == gen {
		e.token = at
		e.lastRefresh, e.lastError = now, ""
		e.failure, e.failedUntil = nil, time.Time{}
	}
	e.mu.Unlock()
	metrics.refreshes.WithLabelValues(c.Name).Inc()
	c.event(&sidecar.AuditEvent{Event: sidecar.EventRefresh, RequestID: requestID, Tenant: e.tenant, Connector: c.Name, Reason: sidecar.ReasonOK, Grant: c.Grant, Rotated: rotated})
	return at, nil
}

// storeRotated stores a refresh token the provider rotated although the
// connector said it would not, under the storage lock.
func (c *Connector) storeRotated(ctx context.Context, tenant, gen, old, rotated string, now time.Time) error {
	st := c.mgr.store()
	unlock, err := st.lock(ctx, tenant, c.Name)
	if err != nil {
		return err
	}
	defer unlock()
	conn, _, err := st.load(ctx, c.keys, tenant, c.Name)
	if err != nil {
		return err
	}
	if conn == nil || conn.Generation != gen || conn.Credential == nil || conn.Credential.RefreshToken != old {
		return nil // a connect or disconnect came first; it decides
	}
	conn.Credential.RefreshToken = rotated
	conn.LastRefresh, conn.LastError = now, ""
	return st.saveRecord(ctx, c.keys, conn)
}

// reauthorize marks the connection reauthorization_required after the
// token endpoint refused its grant.
func (c *Connector) reauthorize(ctx context.Context, e *entry, gen, code, requestID string, locked bool) error {
	m := c.mgr
	st := m.store()
	write := func() error {
		conn, mk, err := st.load(ctx, c.keys, e.tenant, c.Name)
		if err != nil {
			return err
		}
		if conn == nil || conn.Generation != gen || effectiveState(conn, mk) != StateConnected {
			return nil
		}
		if err := checkTransition(StateConnected, StateReauthorizationRequired, causeRefresh); err != nil {
			return err
		}
		conn.State = StateReauthorizationRequired
		conn.LastError = "the token endpoint refused the grant (" + code + ")"
		if err := st.saveRecord(ctx, c.keys, conn); err != nil {
			return err
		}
		m.applyNow(c, e, conn, mk)
		return st.changed(ctx)
	}
	var err error
	if locked {
		err = write()
	} else {
		var unlock func()
		if unlock, err = st.lock(ctx, e.tenant, c.Name); err == nil {
			err = write()
			unlock()
		}
	}
	if err != nil {
		// the state could not be stored: this replica still refuses
		c.logger.Error("cannot store reauthorization_required", zap.String("tenant", e.tenant), zap.Error(err))
		e.mu.Lock()
		if e.generation == gen && e.state == StateConnected {
			e.setState(StateReauthorizationRequired, gen, ErrDisconnected)
		}
		e.mu.Unlock()
	}
	metrics.failures.WithLabelValues(c.Name, sidecar.ReasonConnectorReauthorizationRequired).Inc()
	c.event(&sidecar.AuditEvent{Event: sidecar.EventRefreshFailure, RequestID: requestID, Tenant: e.tenant, Connector: c.Name,
		Reason: sidecar.ReasonConnectorReauthorizationRequired, Grant: c.Grant, TokenError: code})
	return refuseReauthorization()
}

// failed records a refresh that did not work for a reason other than a
// refused grant: the token endpoint down, slow or wrong, or storage.
func (c *Connector) failed(e *entry, gen, requestID, code string, cause error) error {
	r := refuseUnavailable(detailTokenEndpoint, c.RetryAfter)
	if code == "storage" || code == "lock" {
		r.Detail = detailStorage
		c.logger.Error("cannot refresh the access token", zap.String("tenant", e.tenant), zap.String("connector", c.Name), zap.Error(cause))
	} else {
		c.logger.Warn("the token endpoint did not issue an access token", zap.String("tenant", e.tenant), zap.String("connector", c.Name), zap.String("token_error", code))
	}
	e.mu.Lock()
	if e.generation == gen {
		e.failedUntil = time.Now().Add(failureHold)
		e.failure = r
		e.lastError = "refresh failed: " + code
	}
	e.mu.Unlock()
	metrics.failures.WithLabelValues(c.Name, sidecar.ReasonConnectorTokenUnavailable).Inc()
	c.event(&sidecar.AuditEvent{Event: sidecar.EventRefreshFailure, RequestID: requestID, Tenant: e.tenant, Connector: c.Name,
		Reason: sidecar.ReasonConnectorTokenUnavailable, Grant: c.Grant, TokenError: code})
	return r
}

// fetch asks the token endpoint for an access token with the credential.
func (c *Connector) fetch(ctx context.Context, cred *Credential) (*oauth2.Token, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.client)
	if c.Grant == GrantRefreshToken {
		cfg := oauth2.Config{
			ClientID: c.ClientID, ClientSecret: c.ClientSecret, Scopes: c.Scopes,
			Endpoint: oauth2.Endpoint{TokenURL: c.TokenURL, AuthStyle: c.authStyle()},
		}
		// Config.TokenSource would keep a rotated refresh token only in
		// memory (oauth2.go, tokenRefresher): one explicit refresh, whose
		// result the caller stores.
		return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: cred.RefreshToken}).Token()
	}
	id, secret := c.clientOf(cred)
	cfg := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: c.TokenURL, Scopes: c.Scopes, AuthStyle: c.authStyle()}
	return cfg.Token(ctx)
}

// clientOf returns the client that authenticates for cred: the tenant's
// own client credentials when it gave some, else the connector's.
func (c *Connector) clientOf(cred *Credential) (id, secret string) {
	if cred != nil && cred.ClientID != "" {
		return cred.ClientID, cred.ClientSecret
	}
	return c.ClientID, c.ClientSecret
}

// classify names a token endpoint failure for records and logs (an error
// code, never the endpoint's text, which may echo what it was sent) and
// says whether the tenant must authorise again.
func (c *Connector) classify(err error, cred *Credential) (code string, reauth bool) {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code = safeCode(re.ErrorCode)
		if code == "" && re.Response != nil {
			code = fmt.Sprintf("http_%d", re.Response.StatusCode)
		}
		switch re.ErrorCode {
		case "invalid_grant":
			return code, true
		case "invalid_client", "unauthorized_client":
			// the tenant's own client was refused: only the tenant can fix it
			return code, cred != nil && cred.ClientID != ""
		}
		return code, false
	}
	var nerr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return "timeout", false
	case errors.As(err, new(*url.Error)):
		return "unreachable", false
	}
	return "invalid_response", false
}

// safeCode keeps an RFC 6749 error code if it is one: a short run of
// lower-case letters and '_'; anything else is "other".
func safeCode(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > 40 {
		return "other"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '_') {
			return "other"
		}
	}
	return s
}

// refreshAt is when an access token obtained now stops being handed out:
// before its expiry by a fifth of its lifetime, at most maxMargin.
func refreshAt(now, expiry time.Time) time.Time {
	if expiry.IsZero() {
		return now.Add(defaultLifetime)
	}
	life := expiry.Sub(now)
	if life <= 0 {
		return now
	}
	return expiry.Add(-min(maxMargin, life/5))
}
