package auditlog

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("audit_log", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("audit_log", httpcaddyfile.After, "log_level")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(AuditLog)
	if err := m.unmarshal(h); err != nil {
		return nil, err
	}
	return m, nil
}

// unmarshal sets up the handler from Caddyfile tokens. Syntax:
//
//	audit_log {
//		output file /var/log/sidecar/audit.jsonl {
//			roll_keep_for 2160h
//		}
//		pseudonym_key {env.AUDIT_KEY}
//		pseudonymize off
//		keyring /var/lib/sidecar/audit.keyring.json
//		instance <name>
//		on_write_failure refuse|allow
//		metrics_tenant_label
//	}
//
// output takes any of Caddy's log writers exactly as in the `log`
// directive: file (with roll_size, roll_keep, roll_keep_for, ...), stderr,
// stdout, net. pseudonym_key is required unless `pseudonymize off`.
func (m *AuditLog) unmarshal(h httpcaddyfile.Helper) error {
	h.Next() // consume the directive name
	if h.NextArg() {
		return h.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := h.Nesting(); h.NextBlock(nesting); {
		sub := h.Val()
		if seen[sub] {
			return h.Errf("audit_log: duplicate subdirective '%s'", sub)
		}
		seen[sub] = true
		switch sub {
		case "output":
			if !h.NextArg() {
				return h.ArgErr()
			}
			name := h.Val()
			var wo caddy.WriterOpener
			// Caddy's standard streams are not Caddyfile unmarshalers (they
			// live in the caddy package); this mirrors the `log` directive.
			switch name {
			case "stdout":
				wo = caddy.StdoutWriter{}
			case "stderr":
				wo = caddy.StderrWriter{}
			case "discard":
				wo = caddy.DiscardWriter{}
			default:
				unm, err := caddyfile.UnmarshalModule(h.Dispenser, "caddy.logging.writers."+name)
				if err != nil {
					return err
				}
				var ok bool
				if wo, ok = unm.(caddy.WriterOpener); !ok {
					return h.Errf("audit_log: output module %s is not a log writer", name)
				}
			}
			var warnings []caddyconfig.Warning
			m.OutputRaw = caddyconfig.JSONModuleObject(wo, "output", name, &warnings)
		case "pseudonym_key":
			if !h.AllArgs(&m.PseudonymKey) {
				return h.ArgErr()
			}
		case "pseudonymize":
			var v string
			if !h.AllArgs(&v) {
				return h.ArgErr()
			}
			switch v {
			case "off":
				m.PseudonymizeOff = true
			case "on":
			default:
				return h.Errf("audit_log: pseudonymize takes on or off, not %q", v)
			}
		case "keyring":
			if !h.AllArgs(&m.Keyring) {
				return h.ArgErr()
			}
		case "instance":
			if !h.AllArgs(&m.Instance) {
				return h.ArgErr()
			}
		case "on_write_failure":
			if !h.AllArgs(&m.OnWriteFailure) {
				return h.ArgErr()
			}
			if m.OnWriteFailure != "refuse" && m.OnWriteFailure != "allow" {
				return h.Errf("audit_log: on_write_failure takes refuse or allow, not %q", m.OnWriteFailure)
			}
		case "metrics_tenant_label":
			if h.NextArg() {
				return h.ArgErr()
			}
			m.MetricsTenantLabel = true
		default:
			return h.Errf("audit_log: unrecognized subdirective '%s'", sub)
		}
	}
	if m.OutputRaw == nil {
		return h.Err("audit_log: output is required, e.g. `output file /var/log/sidecar/audit.jsonl`")
	}
	if m.PseudonymizeOff && m.PseudonymKey != "" {
		return h.Err("audit_log: pseudonym_key and `pseudonymize off` contradict each other; remove one")
	}
	if err := m.checkConfig(); err != nil {
		return h.Err(err.Error())
	}
	return nil
}
