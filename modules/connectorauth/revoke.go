package connectorauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// Token type hints (RFC 7009, section 2.1), also the names receipts use
// for what was revoked.
const (
	hintRefreshToken = "refresh_token"
	hintAccessToken  = "access_token"
)

// revoke asks the revocation endpoint to revoke token (RFC 7009). The
// client authenticates as it does at the token endpoint. The error says
// what went wrong without repeating anything the endpoint sent.
func (c *Connector) revoke(ctx context.Context, cred *Credential, token, hint string) error {
	if c.RevocationURL == "" {
		return errors.New("no revocation_url is configured")
	}
	ctx, cancel := context.WithTimeout(ctx, c.RevocationTimeout)
	defer cancel()
	id, secret := c.clientOf(cred)
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	if c.ClientAuth == ClientAuthPost {
		form.Set("client_id", id)
		if secret != "" {
			form.Set("client_secret", secret)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.RevocationURL, strings.NewReader(form.Encode()))
	if err != nil {
		return errors.New("the revocation request could not be made")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.ClientAuth != ClientAuthPost {
		// RFC 6749 section 2.3.1: form-encode both before Basic encoding,
		// as x/oauth2 does for the token endpoint (internal/token.go)
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return errors.New("the revocation endpoint did not answer in time")
		}
		return errors.New("the revocation endpoint could not be reached")
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusOK {
		return nil // RFC 7009 section 2.2: also for a token already invalid
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	if code := safeCode(e.Error); code != "" {
		return fmt.Errorf("the revocation endpoint answered %d %s", resp.StatusCode, code)
	}
	return fmt.Errorf("the revocation endpoint answered %d", resp.StatusCode)
}

// revokeAndRecord revokes one token, counts it and writes the revocation
// event; it returns the receipt entry for a failure ("" on success).
func (c *Connector) revokeAndRecord(ctx context.Context, tenant string, cred *Credential, token, hint string) (failure string) {
	err := c.revoke(ctx, cred, token, hint)
	ev := &sidecar.AuditEvent{Event: sidecar.EventRevocation, Tenant: tenant, Connector: c.Name, Reason: sidecar.ReasonOK}
	if err != nil {
		metrics.revocations.WithLabelValues(c.Name, "error").Inc()
		failure = hint + ": " + err.Error()
		ev.RevocationErrors = []string{failure}
		ev.TokenError = "revocation_failed"
		c.logger.Warn("token revocation failed", zap.String("tenant", tenant), zap.String("connector", c.Name), zap.String("token_type", hint), zap.String("error", err.Error()))
	} else {
		metrics.revocations.WithLabelValues(c.Name, "ok").Inc()
		ev.Revoked = []string{hint}
	}
	c.event(ev)
	return failure
}

// revokeOrphan revokes an access token this replica held when another
// replica disconnected the connection.
func (c *Connector) revokeOrphan(tenant string, tok *accessToken) {
	if c.RevocationURL == "" || c.ClientID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(c.mgr.ctx, c.RevocationTimeout+time.Second)
	defer cancel()
	// The credential is gone from storage by now: the connector's own
	// client authenticates. A connection with the tenant's own client
	// credentials (and a connector without a client) cannot, and skips.
	c.revokeAndRecord(ctx, tenant, nil, tok.value, hintAccessToken)
}
