package auditlog

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("audit_log", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("audit_log", httpcaddyfile.After, "log_level")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(AuditLog)
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return m, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
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
//		checkpoint_key {env.AUDIT_CHECKPOINT_KEY}
//		checkpoint_output file /mnt/evidence/audit-checkpoints.jsonl
//		checkpoint_every <records>
//		checkpoint_interval <duration>
//	}
//
// output and checkpoint_output take any of Caddy's log writers exactly as
// in the `log` directive: file (with roll_size, roll_keep, roll_keep_for,
// ...), stderr, stdout, net. pseudonym_key is required unless `pseudonymize
// off`; checkpoint_output is required with checkpoint_key. Placeholders are
// kept as written and resolved when the config loads.
func (m *AuditLog) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return sidecar.RepeatedSubdirective(d)
		}
		seen[sub] = true
		switch sub {
		case "output":
			raw, err := unmarshalWriter(d)
			if err != nil {
				return err
			}
			m.OutputRaw = raw
		case "checkpoint_output":
			raw, err := unmarshalWriter(d)
			if err != nil {
				return err
			}
			m.CheckpointOutputRaw = raw
		case "checkpoint_key":
			if !d.AllArgs(&m.CheckpointKey) {
				return d.ArgErr()
			}
		case "checkpoint_every":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return d.Errf("checkpoint_every takes a number of records (at least 1), not %q", v)
			}
			m.CheckpointEvery = n
		case "checkpoint_interval":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur < time.Second {
				return d.Errf("checkpoint_interval takes a duration of at least 1s, such as 1m, not %q", v)
			}
			m.CheckpointInterval = caddy.Duration(dur)
		case "pseudonym_key":
			if !d.AllArgs(&m.PseudonymKey) {
				return d.ArgErr()
			}
		case "pseudonymize":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			switch v {
			case "off":
				m.PseudonymizeOff = true
			case "on":
			default:
				return d.Errf("pseudonymize takes on or off, not %q", v)
			}
		case "keyring":
			if !d.AllArgs(&m.Keyring) {
				return d.ArgErr()
			}
		case "instance":
			if !d.AllArgs(&m.Instance) {
				return d.ArgErr()
			}
		case "on_write_failure":
			if !d.AllArgs(&m.OnWriteFailure) {
				return d.ArgErr()
			}
			if m.OnWriteFailure != "refuse" && m.OnWriteFailure != "allow" {
				return d.Errf("on_write_failure takes refuse or allow, not %q", m.OnWriteFailure)
			}
		case "metrics_tenant_label":
			if d.NextArg() {
				return d.ArgErr()
			}
			m.MetricsTenantLabel = true
		default:
			return d.Errf("unrecognized subdirective '%s'", sub)
		}
	}
	if m.OutputRaw == nil {
		return d.Err("output is required, e.g. `output file /var/log/sidecar/audit.jsonl`")
	}
	if m.PseudonymizeOff && m.PseudonymKey != "" {
		return d.Err("pseudonym_key and `pseudonymize off` contradict each other; remove one")
	}
	if err := m.checkConfig(); err != nil {
		return d.Err(err.Error())
	}
	return nil
}

// unmarshalWriter reads a log writer (its name, arguments and block) as the
// `log` directive's output does, and returns its JSON.
func unmarshalWriter(d *caddyfile.Dispenser) (json.RawMessage, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	name := d.Val()
	var wo caddy.WriterOpener
	// Caddy's standard streams are not Caddyfile unmarshalers (they live in
	// the caddy package); this mirrors the `log` directive.
	switch name {
	case "stdout":
		wo = caddy.StdoutWriter{}
	case "stderr":
		wo = caddy.StderrWriter{}
	case "discard":
		wo = caddy.DiscardWriter{}
	default:
		unm, err := caddyfile.UnmarshalModule(d, "caddy.logging.writers."+name)
		if err != nil {
			return nil, err
		}
		var ok bool
		if wo, ok = unm.(caddy.WriterOpener); !ok {
			return nil, d.Errf("output module %s is not a log writer", name)
		}
	}
	var warnings []caddyconfig.Warning
	return caddyconfig.JSONModuleObject(wo, "output", name, &warnings), nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*AuditLog)(nil)
