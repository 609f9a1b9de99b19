package connectorauth

import (
	"errors"

	"go.uber.org/zap"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// event writes ev into the audit chain and logs it. Neither holds a secret.
func (c *Connector) event(ev *sidecar.AuditEvent) error {
	err := sidecar.WriteAuditEvent(ev)
	fields := []zap.Field{
		zap.String("event", ev.Event), zap.String("tenant", ev.Tenant), zap.String("connector", ev.Connector),
		zap.String("reason", ev.Reason),
	}
	if ev.TokenError != "" {
		fields = append(fields, zap.String("token_error", ev.TokenError))
	}
	if ev.RequestID != "" {
		fields = append(fields, zap.String("request_id", ev.RequestID))
	}
	switch {
	case errors.Is(err, sidecar.ErrNoAuditOutput):
		c.logger.Info("connection event (no audit_log output to record it)", fields...)
		return nil
	case err != nil:
		c.logger.Error("connection event not written to the audit log", append(fields, zap.Error(err))...)
		return err
	}
	c.logger.Info("connection event", fields...)
	return nil
}
