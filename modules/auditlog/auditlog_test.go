package auditlog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// switchWriter fails while fail is set, like a full disk.
type switchWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	fail bool
}

func (w *switchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail {
		return 0, errors.New("no space left on device")
	}
	return w.buf.Write(p)
}
func (w *switchWriter) Close() error { return nil }
func (w *switchWriter) setFail(f bool) {
	w.mu.Lock()
	w.fail = f
	w.mu.Unlock()
}
func (w *switchWriter) lines(t *testing.T) []*Record {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*Record
	for _, l := range bytes.Split(bytes.TrimSuffix(w.buf.Bytes(), []byte("\n")), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		rec, err := decodeRecord(l)
		if err != nil {
			t.Fatalf("bad line %s: %v", l, err)
		}
		out = append(out, rec)
	}
	return out
}

// newTestAuditLog is a provisioned-equivalent handler writing to w.
func newTestAuditLog(t testing.TB, w io.WriteCloser, onFailure string) (*AuditLog, *observer.ObservedLogs, *prometheus.Registry) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	reg := prometheus.NewPedanticRegistry()
	met, err := newMetrics(reg, false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPseudonymizer([]byte("unit-test-secret-0123456789"), filepath.Join(t.TempDir(), "keyring.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := &AuditLog{
		OnWriteFailure: onFailure,
		sink:           newSink("test", "test", w, "unit:00000000"),
		pseudo:         p,
		metrics:        met,
		logger:         zap.New(core),
	}
	return m, logs, reg
}

func newRequest(target string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	repl := caddy.NewReplacer()
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	return r.WithContext(ctx)
}

func TestServeHTTPRecordsWhatLaterHandlersDecided(t *testing.T) {
	w := new(switchWriter)
	m, logs, reg := newTestAuditLog(t, w, "")
	id := &sidecar.Identity{Subject: "alice", Issuer: "https://idp.example", ClientID: "app", Scopes: []string{"contacts:read"}}

	cases := []struct {
		name       string
		next       caddyhttp.HandlerFunc
		wantStatus int
		wantReason string
		wantErr    bool
	}{
		{"allowed", func(w http.ResponseWriter, r *http.Request) error {
			r = sidecar.WithIdentity(r, id)
			d := sidecar.DecisionFrom(r)
			d.Tenant, d.Connector, d.Policy = "acme", "crm", "crm@1"
			d.AddWithheld("data.#.email", 3)
			_, err := io.WriteString(w, "hello")
			return err
		}, 200, "ok", false},
		{"refused with a body", func(w http.ResponseWriter, r *http.Request) error {
			return sidecar.Refuse(w, r, http.StatusForbidden, sidecar.ReasonTenantMismatch, "no")
		}, 403, "tenant_mismatch", false},
		{"refused as an error", func(w http.ResponseWriter, r *http.Request) error {
			sidecar.DecisionFrom(r).Deny(http.StatusUnauthorized, sidecar.ReasonTokenInvalid)
			return caddyhttp.Error(http.StatusUnauthorized, errors.New("bad token"))
		}, 401, "token_invalid", true},
		{"upstream down", func(w http.ResponseWriter, r *http.Request) error {
			return caddyhttp.Error(http.StatusBadGateway, errors.New("dial tcp: connection refused"))
		}, 502, "upstream_unavailable", true},
		{"plain error", func(w http.ResponseWriter, r *http.Request) error {
			return errors.New("boom")
		}, 500, "handler_error", true},
		{"nothing written", func(w http.ResponseWriter, r *http.Request) error { return nil }, 200, "ok", false},
		{"failed after the header went out", func(w http.ResponseWriter, r *http.Request) error {
			w.WriteHeader(http.StatusOK)
			return caddyhttp.Error(http.StatusBadGateway, errors.New("upstream reset mid-body"))
		}, 200, "upstream_unavailable", true},
	}
	for i, c := range cases {
		rw := httptest.NewRecorder()
		err := m.ServeHTTP(rw, newRequest("/v1/contacts?limit=1&email=a@b.c"), c.next)
		if (err != nil) != c.wantErr {
			t.Fatalf("%s: error %v", c.name, err)
		}
		recs := w.lines(t)
		if len(recs) != i+1 {
			t.Fatalf("%s: %d records after %d requests", c.name, len(recs), i+1)
		}
		rec := recs[i]
		if rec.Status != c.wantStatus || rec.Reason != c.wantReason {
			t.Errorf("%s: status %d reason %q, want %d %q", c.name, rec.Status, rec.Reason, c.wantStatus, c.wantReason)
		}
		if wantDecision := map[bool]string{true: "allow", false: "deny"}[c.wantReason == "ok"]; rec.Decision != wantDecision {
			t.Errorf("%s: decision %q", c.name, rec.Decision)
		}
		if rec.Seq != uint64(i+1) {
			t.Errorf("%s: seq %d", c.name, rec.Seq)
		}
	}
	first := w.lines(t)[0]
	if first.Tenant != "acme" || first.Connector != "crm" || first.FieldsRemoved != 3 || first.BytesOut != 5 ||
		first.Subject == "alice" || len(first.Subject) != 32 || first.ClientID == "app" || first.Issuer != "https://idp.example" {
		t.Errorf("allowed record %+v", first)
	}
	if strings.Contains(w.buf.String(), "a@b.c") {
		t.Error("a query value was written")
	}
	if n := logs.FilterMessage("security event").Len(); n != 2 {
		t.Errorf("%d security events logged, want 2 (tenant_mismatch, token_invalid)", n)
	}
	if got := counterValue(t, m.metrics.requests.WithLabelValues("deny", "upstream_unavailable", "")); got != 2 {
		t.Errorf("requests{deny,upstream_unavailable} = %v", got)
	}
	if got := counterValue(t, m.metrics.withheld.WithLabelValues("crm")); got != 3 {
		t.Errorf("withheld{crm} = %v", got)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

func TestServeHTTPRecordsAPanic(t *testing.T) {
	w := new(switchWriter)
	m, _, _ := newTestAuditLog(t, w, "")
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic was swallowed")
			}
		}()
		_ = m.ServeHTTP(httptest.NewRecorder(), newRequest("/"), caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
			panic("bug")
		}))
	}()
	recs := w.lines(t)
	if len(recs) != 1 || recs[0].Status != 500 || recs[0].Reason != "handler_error" {
		t.Fatalf("records %+v", recs)
	}
}

func TestSinkFailureRefusesUntilTheSinkWorksAgain(t *testing.T) {
	w := new(switchWriter)
	m, logs, _ := newTestAuditLog(t, w, "")
	served := 0
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		served++
		return nil
	})
	do := func() int {
		rw := httptest.NewRecorder()
		if err := m.ServeHTTP(rw, newRequest("/"), next); err != nil {
			t.Fatal(err)
		}
		return rw.Code
	}
	do() // seq 1 written
	w.setFail(true)
	do() // served, its record lost
	for i := 0; i < 3; i++ {
		if code := do(); code != http.StatusServiceUnavailable {
			t.Fatalf("while the sink fails: status %d", code)
		}
	}
	if served != 2 {
		t.Fatalf("%d requests served, want 2 (one before and one as the sink broke)", served)
	}
	w.setFail(false)
	if code := do(); code != http.StatusServiceUnavailable {
		t.Fatalf("the first request after recovery carries the refusal that proves the sink works: %d", code)
	}
	if code := do(); code != http.StatusOK {
		t.Fatalf("after recovery: status %d", code)
	}
	if got := counterValue(t, m.metrics.writeFailures); got != 4 {
		t.Errorf("write failures %v, want 4", got)
	}
	if logs.FilterMessageSnippet("audit record not written").Len() != 4 {
		t.Errorf("write failures not logged")
	}
	recs := w.lines(t)
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("lost records left a gap: record %d has seq %d", i, r.Seq)
		}
	}
	if recs[1].Reason != "audit_unavailable" || recs[2].Reason != "ok" {
		t.Errorf("after recovery: %q then %q", recs[1].Reason, recs[2].Reason)
	}
}

func TestSinkFailureAllowedExplicitly(t *testing.T) {
	w := &switchWriter{fail: true}
	m, _, _ := newTestAuditLog(t, w, "allow")
	for i := 0; i < 3; i++ {
		rw := httptest.NewRecorder()
		_ = m.ServeHTTP(rw, newRequest("/"), caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
		if rw.Code != 200 {
			t.Fatalf("on_write_failure allow: status %d", rw.Code)
		}
	}
}

func TestConcurrentRecordsFormOneChain(t *testing.T) {
	w := new(switchWriter)
	m, _, _ := newTestAuditLog(t, w, "")
	var wg sync.WaitGroup
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				_ = m.ServeHTTP(httptest.NewRecorder(), newRequest("/"), caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
			}
		}()
	}
	wg.Wait()
	recs := w.lines(t)
	if len(recs) != 1000 {
		t.Fatalf("%d records", len(recs))
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) || (i > 0 && r.PrevHash != recs[i-1].Hash) || recordHash(r) != r.Hash {
			t.Fatalf("record %d breaks the chain", i)
		}
	}
}

func counterValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestMetricsSharedAcrossHandlersAndConflictingLabels(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m1, err := newMetrics(reg, false)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := newMetrics(reg, false) // a second audit_log in the same config
	if err != nil || m2.requests != m1.requests || m2.writeFailures != m1.writeFailures {
		t.Fatalf("second registration: %v, shared %v", err, m2 != nil && m2.requests == m1.requests)
	}
	if _, err := newMetrics(reg, true); err == nil || !strings.Contains(err.Error(), "metrics_tenant_label") {
		t.Fatalf("conflicting tenant label: %v", err)
	}
	m1.observe(&Record{Decision: "allow", Reason: "ok", Connector: "crm", Tenant: "acme", FieldsRemoved: 2}, nil, -1)
	families, _ := reg.Gather()
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tenant" {
					t.Errorf("%s has a tenant label without metrics_tenant_label", f.GetName())
				}
			}
		}
	}
}

// zap v1.28.0 (config.go, NewProductionConfig: Sampling Initial 100,
// Thereafter 100 per second): the production config samples identical messages.
// The audit record therefore never goes through a zap logger; this test
// keeps the fact visible and fails if zap's behaviour changes.
func TestZapProductionConfigSamplesSoRecordsBypassZap(t *testing.T) {
	var buf bytes.Buffer
	cfg := zap.NewProductionConfig()
	enc := zapcore.NewJSONEncoder(cfg.EncoderConfig)
	core := zapcore.NewSamplerWithOptions(zapcore.NewCore(enc, zapcore.AddSync(&buf), zap.InfoLevel),
		time.Second, cfg.Sampling.Initial, cfg.Sampling.Thereafter)
	logger := zap.New(core)
	for i := 0; i < 10000; i++ {
		logger.Info("audit")
	}
	if n := bytes.Count(buf.Bytes(), []byte("\n")); n >= 10000 {
		t.Fatalf("zap's production sampling kept all %d messages; zap's NewProductionConfig no longer samples", n)
	}
	// The audit sink writes every record.
	w := new(switchWriter)
	m, _, _ := newTestAuditLog(t, w, "")
	for i := 0; i < 10000; i++ {
		_ = m.ServeHTTP(httptest.NewRecorder(), newRequest("/same"), caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	}
	if n := len(w.lines(t)); n != 10000 {
		t.Fatalf("%d records for 10000 identical requests", n)
	}
}

// shortWriter reports success without writing, as Caddy's net writer does
// when it dumps a line to stderr because the socket is down.
type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return 0, nil }
func (shortWriter) Close() error                { return nil }

func TestShortWriteIsAFailure(t *testing.T) {
	m, _, _ := newTestAuditLog(t, shortWriter{}, "")
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	_ = m.ServeHTTP(httptest.NewRecorder(), newRequest("/"), next)
	rw := httptest.NewRecorder()
	_ = m.ServeHTTP(rw, newRequest("/"), next)
	if rw.Code != http.StatusServiceUnavailable || counterValue(t, m.metrics.writeFailures) != 2 {
		t.Fatalf("a silent short write was taken for success: status %d", rw.Code)
	}
}

// tornWriter writes half of one line and fails, like a disk filling up.
type tornWriter struct {
	switchWriter
	tearNext bool
	keep     func(n int) int // how much of the torn write lands; default half
}

func (w *tornWriter) Write(p []byte) (int, error) {
	if w.tearNext {
		w.tearNext = false
		n := len(p) / 2
		if w.keep != nil {
			n = w.keep(len(p))
		}
		w.mu.Lock()
		w.buf.Write(p[:n])
		w.mu.Unlock()
		return n, errors.New("no space left on device")
	}
	return w.switchWriter.Write(p)
}

func TestTornWriteDamagesOnlyItsOwnLine(t *testing.T) {
	w := new(tornWriter)
	m, _, _ := newTestAuditLog(t, w, "")
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	serve := func() { _ = m.ServeHTTP(httptest.NewRecorder(), newRequest("/"), next) }
	serve()
	w.tearNext = true
	serve() // torn
	serve() // refused (the sink was failing), written after a newline
	serve()
	lines := strings.Split(strings.TrimSuffix(w.buf.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), w.buf.String())
	}
	if _, err := decodeRecord([]byte(lines[1])); err == nil {
		t.Fatal("the torn fragment parses")
	}
	var recs []*Record
	for _, i := range []int{0, 2, 3} {
		rec, err := decodeRecord([]byte(lines[i]))
		if err != nil {
			t.Fatalf("line %d damaged by the torn write: %v", i+1, err)
		}
		recs = append(recs, rec)
	}
	if recs[1].Seq != 2 || recs[1].PrevHash != recs[0].Hash || recs[2].PrevHash != recs[1].Hash {
		t.Fatal("the chain does not continue across the torn line")
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	_ = os.WriteFile(path, w.buf.Bytes(), 0o600)
	var bad *BadRecord
	if _, err := Verify([]string{path}, VerifyOptions{}); !errors.As(err, &bad) || bad.Line != 2 {
		t.Fatalf("verify: %v, want line 2 named", err)
	}
}

// TestWriteCutBeforeTheNewlineKeepsTheChain: when a failing write got the
// whole record out but not its newline, the record is in the file; the chain
// must continue from it, or the next record would repeat its seq and the
// file would no longer verify.
func TestWriteCutBeforeTheNewlineKeepsTheChain(t *testing.T) {
	w := &tornWriter{keep: func(n int) int { return n - 1 }}
	m, _, _ := newTestAuditLog(t, w, "")
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	serve := func() *httptest.ResponseRecorder {
		rw := httptest.NewRecorder()
		_ = m.ServeHTTP(rw, newRequest("/"), next)
		return rw
	}
	serve()
	w.tearNext = true
	serve() // whole record, newline missing
	if rw := serve(); rw.Code != http.StatusServiceUnavailable {
		t.Fatalf("after a failed write the next request got %d, want 503 (the output failed)", rw.Code)
	}
	serve()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	_ = os.WriteFile(path, w.buf.Bytes(), 0o600)
	if _, err := Verify([]string{path}, VerifyOptions{}); err != nil {
		t.Fatalf("the file does not verify after a write cut before its newline: %v\n%s", err, w.buf.String())
	}
	lines := strings.Split(strings.TrimSuffix(w.buf.String(), "\n"), "\n")
	for i, line := range lines {
		rec, err := decodeRecord([]byte(line))
		if err != nil || rec.Seq != uint64(i+1) {
			t.Fatalf("line %d: %v (seq %v), want seq %d", i+1, err, rec, i+1)
		}
	}
}
