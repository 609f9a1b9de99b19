package auditlog

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

type discardCloser struct{}

func (discardCloser) Write(p []byte) (int, error) { return len(p), nil }
func (discardCloser) Close() error                { return nil }

// BenchmarkRecord measures the cost of one audit record: building it from
// the decision record (two pseudonyms, query names), encoding, hashing
// into the chain, the write (to a discarding writer) and the metrics. The
// baseline is what a naive record costs: encoding/json plus SHA-256.
// cpu-ns/op is the process's CPU time per operation, which a loaded machine
// inflates much less than ns/op (wall time).
func BenchmarkRecord(b *testing.B) {
	met, err := newMetrics(prometheus.NewRegistry(), false)
	if err != nil {
		b.Fatal(err)
	}
	p, err := newPseudonymizer([]byte("bench-secret-0123456789abcdef"), b.TempDir()+"/keyring.json")
	if err != nil {
		b.Fatal(err)
	}
	m := &AuditLog{
		sink:    newSink("bench", "bench", discardCloser{}, "bench:00000000"),
		pseudo:  p,
		metrics: met,
		logger:  zap.NewNop(),
	}
	r := newRequest("/v1/contacts?limit=50&cursor=abc")
	r, d := sidecar.WithDecision(r)
	r = sidecar.WithIdentity(r, &sidecar.Identity{Subject: "alice", Issuer: "https://login.acme.example",
		ClientID: "crm-app", Scopes: []string{"contacts:read", "deals:read"}})
	d.Tenant, d.Connector, d.Policy, d.Endpoint = "acme", "crm", "crm@2026-11-01", "/v1/contacts*"
	d.AddWithheld("data.#.email", 50)
	d.AddWithheld("data.#.phone", 50)
	rw := httptest.NewRecorder()
	rec := newRecorder(rw)
	rec.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(rec, `{"data":[]}`)
	start := benchStart()

	b.Run("baseline_encoding_json", func(b *testing.B) {
		full := sampleRecord()
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			line, _ := json.Marshal(full)
			_ = sha256.Sum256(line)
		}
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	})
	b.Run("record", func(b *testing.B) {
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			_ = m.record(r, d, rec.Status(), int64(rec.Size()), nil, start, "5f0c6a7e-3b1d-4c52-9a3e-2f7d8b1c0e44")
		}
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	})
	// A checkpoint: what the checkpointer does every checkpoint_every
	// records, off the request path (sign and encode; the write is the
	// same as a record's). Compare it with "record" to see what one
	// checkpoint per N records adds per record.
	key, _ := testCheckpointKey(b)
	b.Run("checkpoint", func(b *testing.B) {
		b.ReportAllocs()
		cpu := cpuTime()
		cp := &Checkpoint{TS: "2026-11-28T09:00:00.123456789Z", Instance: "bench:00000000", Log: "/var/log/sidecar/audit.jsonl",
			Reason: "count", Seq: 123456, Hash: genesisHash, Every: 1000, IntervalMS: 60000, KeyID: "0123456789abcdef"}
		for b.Loop() {
			_ = signCheckpoint(cp, key)
			cp.PrevSig = cp.Sig
		}
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	})
	// Every request from a subject not in the per-tenant cache (8192 subjects
	// rotate through a 4096-entry cache): the subject's pseudonym is computed
	// (one HMAC); the client's, as in practice, repeats.
	ids := make([]*sidecar.Identity, 8192)
	for i := range ids {
		ids[i] = &sidecar.Identity{Subject: fmt.Sprintf("user-%d", i), Issuer: "https://login.acme.example",
			ClientID: "crm-app", Scopes: []string{"contacts:read"}}
	}
	b.Run("record_new_subject", func(b *testing.B) {
		b.ReportAllocs()
		cpu := cpuTime()
		i := 0
		for b.Loop() {
			d.Identity = ids[i%len(ids)]
			i++
			_ = m.record(r, d, rec.Status(), int64(rec.Size()), nil, start, "5f0c6a7e-3b1d-4c52-9a3e-2f7d8b1c0e44")
		}
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	})
}

func newRecorder(w http.ResponseWriter) caddyhttp.ResponseRecorder {
	return caddyhttp.NewResponseRecorder(w, nil, nil)
}

func benchStart() time.Time { return time.Now() }
