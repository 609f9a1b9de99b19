package auditlog

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// TestRecordIDsArePseudonymsPerTenant: record_ids hold keyed per-tenant
// pseudonyms of the released records' ids, never the ids, and the same
// id gives the same pseudonym within a tenant only.
func TestRecordIDsArePseudonymsPerTenant(t *testing.T) {
	w := new(switchWriter)
	m, _, _ := newTestAuditLog(t, w, "")
	serveRecords := func(tenant string, released, withheld int, ids []string, omitted int) *Record {
		t.Helper()
		err := m.ServeHTTP(httptest.NewRecorder(), newRequest("/v1/contacts"), caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			d := sidecar.DecisionFrom(r)
			d.Tenant = tenant
			d.AddRecords(released, withheld, ids, omitted)
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		recs := w.lines(t)
		return recs[len(recs)-1]
	}
	a := serveRecords("acme", 3, 2, []string{"c_1001", "c_1002"}, 1)
	if a.RecordsReleased != 3 || a.RecordsWithheld != 2 || len(a.RecordIDs) != 2 || a.RecordIDsOmitted != 1 {
		t.Fatalf("record %+v", a)
	}
	for _, ps := range a.RecordIDs {
		if len(ps) != 32 || strings.Contains(ps, "c_100") {
			t.Fatalf("record id %q is not a pseudonym", ps)
		}
	}
	if strings.Contains(w.buf.String(), "c_1001") || a.RecordIDs[0] == a.RecordIDs[1] {
		t.Fatalf("raw ids or colliding pseudonyms: %s", w.buf.String())
	}
	again := serveRecords("acme", 1, 0, []string{"c_1002"}, 0)
	other := serveRecords("globex", 1, 0, []string{"c_1002"}, 0)
	if again.RecordIDs[0] != a.RecordIDs[1] || other.RecordIDs[0] == a.RecordIDs[1] {
		t.Fatalf("pseudonyms: acme %v, acme again %v, globex %v", a.RecordIDs, again.RecordIDs, other.RecordIDs)
	}
	// the reusable function gives what the record holds
	tk, err := m.pseudo.key("acme")
	if err != nil {
		t.Fatal(err)
	}
	if recordPseudonym(tk, "c_1001") != a.RecordIDs[0] {
		t.Fatal("recordPseudonym disagrees with the written record")
	}
	// a subject equal to an id does not share its pseudonym
	if sub, _ := m.pseudo.pseudonym("acme", "sub", "", "c_1001"); sub == a.RecordIDs[0] {
		t.Fatal("record ids and subjects share a pseudonym space")
	}
	// no records judged: no records fields at all
	none := serveRecords("acme", 0, 0, nil, 0)
	line := lastWritten(w)
	if none.RecordsReleased != 0 || strings.Contains(line, "records_") || strings.Contains(line, "record_ids") {
		t.Fatalf("records fields on a request without record rules: %s", line)
	}
	if _, err := Verify([]string{writeTemp(t, w.buf.String())}, VerifyOptions{}); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

// TestRecordIDsForgotten: forgetting a tenant changes its record
// pseudonyms, so records written before can no longer be linked to an id.
func TestRecordIDsForgotten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	p, err := newPseudonymizer([]byte("unit-test-secret-0123456789"), path)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := p.recordPseudonyms(nil, "acme", []string{"c_1001"})
	if err := forgetTenant(path, "acme"); err != nil {
		t.Fatal(err)
	}
	p.lastCheck.Store(0)
	after, _ := p.recordPseudonyms(nil, "acme", []string{"c_1001"})
	if before[0] == after[0] {
		t.Fatal("the record pseudonym survived audit forget")
	}
}

// TestRecordIDsWithoutPseudonyms: with pseudonymize off there is no key,
// and a record never holds a raw id: the ids are counted, not listed.
func TestRecordIDsWithoutPseudonyms(t *testing.T) {
	w := new(switchWriter)
	m, _, _ := newTestAuditLog(t, w, "")
	m.pseudo = nil
	err := m.ServeHTTP(httptest.NewRecorder(), newRequest("/v1/contacts"), caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		sidecar.DecisionFrom(r).AddRecords(2, 0, []string{"c_1001", "c_1002"}, 0)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	rec := w.lines(t)[0]
	if len(rec.RecordIDs) != 0 || rec.RecordIDsOmitted != 2 || strings.Contains(w.buf.String(), "c_100") {
		t.Fatalf("record %+v", rec)
	}
}

// TestRecordsFieldsBounded: however many records a response released, a
// record lists at most sidecar.MaxRecordIDs ids and counts the rest.
func TestRecordsFieldsBounded(t *testing.T) {
	var d sidecar.Decision
	ids := make([]string, 0, 100)
	for i := range 100 {
		ids = append(ids, fmt.Sprintf("c_%04d", i))
	}
	d.AddRecords(100, 5, ids[:50], 0)
	d.AddRecords(0, 0, ids[50:], 3)
	if len(d.RecordIDs) != sidecar.MaxRecordIDs || d.RecordIDsOmitted != 100-sidecar.MaxRecordIDs+3 || !slices.Equal(d.RecordIDs[:2], ids[:2]) {
		t.Fatalf("%d ids, %d omitted", len(d.RecordIDs), d.RecordIDsOmitted)
	}
	rec := sampleRecord()
	rec.RecordsReleased, rec.RecordsWithheld, rec.RecordIDsOmitted = 100, 5, 39
	for range sidecar.MaxRecordIDs {
		rec.RecordIDs = append(rec.RecordIDs, strings.Repeat("a", 32))
	}
	line, _ := seal(appendTail(appendHead(nil, rec), "i", 1, genesisHash), 0)
	got, err := decodeRecord(line[:len(line)-1])
	if err != nil || recordHash(got) != got.Hash || len(got.RecordIDs) != sidecar.MaxRecordIDs {
		t.Fatalf("decode: %v", err)
	}
	order := []string{`"withheld":`, `"records_released":`, `"records_withheld":`, `"record_ids":`, `"record_ids_omitted":`, `"bytes_out":`}
	last := -1
	for _, f := range order {
		i := strings.Index(string(line), f)
		if i <= last {
			t.Fatalf("%s missing or out of order in %s", f, line)
		}
		last = i
	}
	if len(line) > 4096 {
		t.Fatalf("a record with the most ids is %d bytes", len(line))
	}
}

func lastWritten(w *switchWriter) string {
	lines := strings.Split(strings.TrimSpace(w.buf.String()), "\n")
	return lines[len(lines)-1]
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
