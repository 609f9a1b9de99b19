package auditlog

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/logging"
)

func parse(t *testing.T, input string) (*AuditLog, error) {
	t.Helper()
	h := httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(input)}
	mh, err := parseCaddyfile(h)
	if err != nil {
		return nil, err
	}
	return mh.(*AuditLog), nil
}

func TestUnmarshalCaddyfile(t *testing.T) {
	m, err := parse(t, `audit_log {
		output file /var/log/sidecar/audit.jsonl {
			roll_keep_for 2160h
		}
		pseudonym_key {env.AUDIT_KEY}
		keyring /var/lib/sidecar/keyring.json
		instance eu-1
		on_write_failure allow
		metrics_tenant_label
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if m.PseudonymKey != "{env.AUDIT_KEY}" || m.Keyring != "/var/lib/sidecar/keyring.json" || m.Instance != "eu-1" ||
		m.OnWriteFailure != "allow" || !m.MetricsTenantLabel || m.PseudonymizeOff {
		t.Fatalf("parsed %+v", m)
	}
	var out map[string]any
	if err := json.Unmarshal(m.OutputRaw, &out); err != nil {
		t.Fatal(err)
	}
	if out["output"] != "file" || out["filename"] != "/var/log/sidecar/audit.jsonl" || out["roll_keep_days"] != float64(90) {
		t.Fatalf("output %s", m.OutputRaw)
	}

	m, err = parse(t, `audit_log {
		output stderr
		pseudonym_key {env.AUDIT_KEY}
		checkpoint_key {env.AUDIT_CHECKPOINT_KEY}
		checkpoint_output net 10.0.0.9:6514 {
			dial_timeout 5s
		}
		checkpoint_every 500
		checkpoint_interval 30s
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if m.CheckpointKey != "{env.AUDIT_CHECKPOINT_KEY}" || m.CheckpointEvery != 500 || time.Duration(m.CheckpointInterval) != 30*time.Second ||
		string(m.CheckpointOutputRaw) != `{"address":"10.0.0.9:6514","dial_timeout":5000000000,"output":"net"}` {
		t.Fatalf("checkpoints parsed as %+v, output %s", m, m.CheckpointOutputRaw)
	}

	m, err = parse(t, "audit_log {\n output stderr\n pseudonymize off\n}")
	if err != nil || !m.PseudonymizeOff || string(m.OutputRaw) != `{"output":"stderr"}` {
		t.Fatalf("%+v %v", m, err)
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	cases := map[string]string{
		"audit_log {\n output stderr\n}":                                                  "pseudonym_key is required",
		"audit_log {\n pseudonym_key k\n}":                                                "output is required",
		"audit_log {\n output stderr\n pseudonym_key k\n pseudonym_key j\n}":              "subdirective 'pseudonym_key' is given twice; give it once",
		"audit_log {\n output stderr\n pseudonym_key k\n sampling\n}":                     "unrecognized subdirective 'sampling'",
		"audit_log {\n output stderr\n pseudonym_key k\n on_write_failure maybe\n}":       "refuse or allow",
		"audit_log {\n output stderr\n pseudonym_key k\n pseudonymize off\n}":             "contradict",
		"audit_log {\n output stderr\n pseudonymize sometimes\n}":                         "on or off",
		"audit_log {\n output nosuchwriter\n pseudonym_key k\n}":                          "caddy.logging.writers.nosuchwriter",
		"audit_log arg {\n output stderr\n pseudonym_key k\n}":                            "wrong argument count",
		"audit_log {\n output stderr\n pseudonym_key k\n metrics_tenant_label yes\n}":     "wrong argument count",
		"audit_log {\n output file /tmp/a.jsonl {\n roll_size x\n }\n pseudonym_key k\n}": "parsing size",
		"audit_log {\n output stderr\n pseudonym_key k\n checkpoint_key c\n}":             "checkpoint_output is not",
		"audit_log {\n output stderr\n pseudonym_key k\n checkpoint_every 10\n}":          "without checkpoint_key",
		"audit_log {\n output stderr\n pseudonym_key k\n checkpoint_output stdout\n}":     "without checkpoint_key",
		"audit_log {\n output stderr\n pseudonym_key k\n checkpoint_every 0\n}":           "at least 1",
		"audit_log {\n output stderr\n pseudonym_key k\n checkpoint_every many\n}":        "number of records",
		"audit_log {\n output stderr\n pseudonym_key k\n checkpoint_interval 10ms\n}":     "at least 1s",
		"audit_log {\n output stderr\n pseudonym_key k\n checkpoint_key a b\n}":           "wrong argument count",
		"audit_log {\n output stderr\n pseudonym_key k\n checkpoint_output\n}":            "wrong argument count",
	}
	for input, want := range cases {
		if _, err := parse(t, input); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", input, err, want)
		}
	}
}

func TestProvision(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.jsonl")
	t.Setenv("AUDIT_UNIT_KEY", "provision-test-secret-0123456789")
	t.Setenv("AUDIT_UNIT_POD", "pod-7")
	cfg := `{"output":{"output":"file","filename":"` + file + `"},"pseudonym_key":"{env.AUDIT_UNIT_KEY}","instance":"{env.AUDIT_UNIT_POD}"}`

	provision := func(cfg string) (*AuditLog, error) {
		m := new(AuditLog)
		if err := json.Unmarshal([]byte(cfg), m); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		err := m.Provision(ctx)
		if err == nil {
			t.Cleanup(func() { _ = m.Cleanup() })
			err = m.Validate()
		}
		return m, err
	}
	m, err := provision(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.sink.instance, "pod-7:") {
		t.Fatalf("instance %q: the placeholder was not resolved", m.sink.instance)
	}
	if m.pseudo == nil || m.pseudo.path != filepath.Join(dir, "audit.keyring.json") {
		t.Fatalf("keyring path %+v", m.pseudo)
	}
	// A second handler on the same file shares the sink (one chain).
	m2, err := provision(cfg)
	if err != nil || m2.sink != m.sink {
		t.Fatalf("second handler: %v, same sink %v", err, m2.sink == m.sink)
	}

	bad := map[string]string{
		`{"output":{"output":"stderr"}}`:                                                                "pseudonym_key is required",
		`{"output":{"output":"stderr"},"pseudonym_key":"{env.AUDIT_UNSET_VAR_XYZ}"}`:                    "pseudonym_key",
		`{"output":{"output":"stderr"},"pseudonym_key":"short"}`:                                        "shorter than 16 bytes",
		`{"pseudonym_key":"provision-test-secret-0123456789"}`:                                          "no output configured",
		`{"output":{"output":"stderr"},"pseudonymize_off":true,"on_write_failure":"x"}`:                 "on_write_failure",
		`{"output":{"output":"net","address":"127.0.0.1:9","soft_start":true},"pseudonymize_off":true}`: "soft_start",
	}
	for c, want := range bad {
		if _, err := provision(c); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", c, err, want)
		}
	}
	_ = os.Remove(file)
}
