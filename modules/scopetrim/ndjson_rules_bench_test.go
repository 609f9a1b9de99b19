package scopetrim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// exportRulesPolicy is exportBenchPolicy with record rules on the export:
// each line is a record, released to contacts:read unless the caller owns
// it (true for every line of the harness's export, so every line is judged,
// kept and its id noted).
func exportRulesPolicy(tb testing.TB) string {
	var pf map[string]any
	if err := json.Unmarshal([]byte(exportBenchPolicy(tb)), &pf); err != nil {
		tb.Fatal(err)
	}
	export := pf["endpoints"].([]any)[0].(map[string]any)
	export["records"] = map[string]any{
		"at": "", "id": "id",
		"rules": map[string]any{"contacts:read": "record.owner_id != claims.crm_user_id"},
	}
	out, err := json.Marshal(pf)
	if err != nil {
		tb.Fatal(err)
	}
	return string(out)
}

// BenchmarkNDJSONRecordRules streams the 8 MB export of BenchmarkNDJSON
// through record rules: B/op shows what a stream holds does not grow with
// its length (the member table, the ids kept for the audit record and the
// trimmer's buffers are bounded), and "x_without_rules" is the time as a
// multiple of the same stream without rules, measured in the same run.
func BenchmarkNDJSONRecordRules(b *testing.B) {
	ndjson, _, _ := exportLines(8<<20, 10<<10)
	plain := newHandler(b, exportBenchPolicy(b), nil)
	ruled := newHandler(b, exportRulesPolicy(b), nil)
	id := &sidecar.Identity{Subject: "bench", Scopes: []string{"contacts:read", "contacts:pii", "contacts:all"},
		Claims: map[string]any{"crm_user_id": "u_999"}}
	client := &countingClient{header: http.Header{}}
	upstream := chunkedUpstream("application/x-ndjson", ndjson)
	serveWith := func(m *ScopeTrim) (released int) {
		client.reset()
		r := httptest.NewRequest(http.MethodGet, "/v1/contacts/export", nil)
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		r, d := sidecar.WithDecision(r)
		d.Tenant = "acme"
		r = sidecar.WithIdentity(r, id)
		if err := m.ServeHTTP(client, r, upstream); err != nil || client.status != http.StatusOK {
			b.Fatalf("status %d, err %v", client.status, err)
		}
		return d.RecordsReleased
	}
	var base float64
	for _, c := range []struct {
		name string
		m    *ScopeTrim
	}{{"without_rules", plain}, {"one_comparison", ruled}} {
		b.Run("8MB/"+c.name, func(b *testing.B) {
			if released := serveWith(c.m); c.m == ruled && released == 0 {
				b.Fatal("the rule released no record: the benchmark would measure nothing")
			}
			b.SetBytes(int64(len(ndjson)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				serveWith(c.m)
			}
			b.StopTimer()
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if c.m == plain {
				base = ns
			} else if base > 0 {
				b.ReportMetric(ns/base, "x_without_rules")
			}
		})
	}
}
