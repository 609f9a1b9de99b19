package auditlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/alysio/privacy-sidecar/modules/scopetrim"
)

const querySecret = "query-test-secret-0123456789abcdef"

// generatedLog writes recs through a sink into dir/audit.jsonl (one chain)
// and returns the file. Records get a ts an hour apart from base unless
// they have one.
func generatedLog(t *testing.T, dir string, recs []*Record) string {
	t.Helper()
	path := filepath.Join(dir, "audit.jsonl")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	s := newSink("q", path, f, "gen:1")
	base := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	for i, rec := range recs {
		if rec.TS == "" {
			rec.TS = base.Add(time.Duration(i) * time.Hour).Format(time.RFC3339Nano)
		}
		if _, err := s.write(appendHead(nil, rec)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if _, err := Verify([]string{path}, VerifyOptions{}); err != nil {
		t.Fatalf("the generated log does not verify: %v", err)
	}
	return path
}

func TestAccessBeforeAndAfterForget(t *testing.T) {
	dir := t.TempDir()
	keyring := filepath.Join(dir, "audit.keyring.json")
	p, err := newPseudonymizer([]byte(querySecret), keyring)
	if err != nil {
		t.Fatal(err)
	}
	ps := func(tenant, id string) string {
		s, err := p.RecordPseudonym(tenant, id)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sub, _ := p.pseudonym("acme", kindSubject, "https://idp", "c1")
	if sub == ps("acme", "c1") {
		t.Fatal("a record id and a subject of the same value share a pseudonym")
	}
	rec := func(tenant, client, decision string, ids ...string) *Record {
		r := &Record{Tenant: tenant, ClientID: client, Subject: "s-" + client, Decision: decision, Reason: "ok", Status: 200,
			Method: "GET", Path: "/v1/contacts", Scopes: []string{"contacts:read"}, Connector: "crm", Policy: "crm@7",
			Endpoint: "/v1/contacts*", RecordIDs: ids}
		if decision == "deny" {
			r.Reason, r.Status = "insufficient_scope", 403
		}
		return r
	}
	cut := rec("acme", "client-d", "allow", ps("acme", "c9"))
	cut.Cut = Cuts{"record_ids": 40}
	streamStart := rec("acme", "client-e", "allow")
	streamStart.Stream, streamStart.RequestID = "start", "req-stream"
	streamEnd := rec("acme", "client-e", "allow", ps("acme", "c1"))
	streamEnd.Stream, streamEnd.StreamRecords, streamEnd.RequestID = "complete", 2, "req-stream"
	log := generatedLog(t, dir, []*Record{
		rec("acme", "client-a", "allow", ps("acme", "c1"), ps("acme", "c2")), // 08:00
		rec("acme", "client-b", "allow", ps("acme", "c2")),                   // 09:00
		rec("acme", "client-a", "deny"),                                      // 10:00
		rec("globex", "client-c", "allow", ps("globex", "c1")),               // 11:00: another tenant's c1
		cut,                    // 12:00
		streamStart, streamEnd, // 13:00, 14:00
	})
	query := func(tenant, id string, since time.Time) *AccessResult {
		t.Helper()
		res, err := Access([]string{log}, AccessQuery{Tenant: tenant, Record: id, Keyring: keyring, Secret: []byte(querySecret), Since: since})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	clients := func(rs []Release) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Client)
		}
		return strings.Join(out, " ")
	}

	res := query("acme", "c1", time.Time{})
	if clients(res.Releases) != "client-a client-e" || clients(res.Uncertain) != "client-d" || res.Record != ps("acme", "c1") {
		t.Fatalf("acme c1: releases %q, uncertain %q", clients(res.Releases), clients(res.Uncertain))
	}
	if r := res.Releases[0]; r.Subject != "s-client-a" || r.Policy != "crm@7" || r.Decision != "allow" || r.Scopes[0] != "contacts:read" {
		t.Fatalf("release %+v", r)
	}
	if got := clients(query("acme", "c2", time.Time{}).Releases); got != "client-a client-b" {
		t.Fatalf("acme c2: %q", got)
	}
	if got := clients(query("acme", "c2", time.Date(2026, 11, 1, 8, 30, 0, 0, time.UTC)).Releases); got != "client-b" {
		t.Fatalf("acme c2 since 08:30: %q", got)
	}
	if got := clients(query("globex", "c1", time.Time{}).Releases); got != "client-c" {
		t.Fatalf("globex c1: %q", got)
	}

	// The CLI, as a data protection officer runs it.
	t.Setenv("AUDIT_KEY", querySecret)
	out, err := runCommand(t, addAccessCommand, "access", "--tenant", "acme", "--record", "c1", log)
	if err != nil || !strings.Contains(out, "2 releases of the record") || !strings.Contains(out, "client-e") || !strings.Contains(out, "may be among those left out") {
		t.Fatalf("access table: %v\n%s", err, out)
	}
	out, err = runCommand(t, addAccessCommand, "access", "--tenant", "acme", "--record", "c1", "--format", "json", log)
	if err != nil || !strings.Contains(out, `"record_pseudonym": "`+ps("acme", "c1")+`"`) {
		t.Fatalf("access json: %v\n%s", err, out)
	}

	if err := forgetTenant(keyring, "acme"); err != nil {
		t.Fatal(err)
	}
	res = query("acme", "c1", time.Time{})
	if len(res.Releases) != 0 || res.Forgotten == "" || res.Record != "" {
		t.Fatalf("after forget: %+v", res)
	}
	out, _ = runCommand(t, addAccessCommand, "access", "--tenant", "acme", "--record", "c1", log)
	if !strings.Contains(out, "was forgotten on") {
		t.Fatalf("access after forget:\n%s", out)
	}
	kr, _ := readKeyring(keyring)
	if _, ok := kr.Salts["acme"]; ok {
		t.Fatal("access recreated the forgotten tenant's salt")
	}
	if got := clients(query("globex", "c1", time.Time{}).Releases); got != "client-c" {
		t.Fatalf("globex after acme was forgotten: %q", got)
	}
	var forgotten *TenantForgottenError
	if _, err := Access([]string{log}, AccessQuery{Tenant: "initech", Record: "c1", Keyring: keyring, Secret: []byte(querySecret)}); !errors.As(err, &forgotten) {
		t.Fatalf("a tenant never audited: %v", err)
	}
}

// runCommand runs `audit <args>` as the binary would, with the subcommand
// add registers, and returns what it printed.
func runCommand(t *testing.T, add func(*cobra.Command), args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "audit"}
	add(root)
	root.SetArgs(args)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() {
		var b bytes.Buffer
		_, _ = b.ReadFrom(r)
		done <- b.Bytes()
	}()
	err = root.Execute()
	w.Close()
	os.Stdout = stdout
	return string(<-done), err
}

func TestReportCountsObservedTraffic(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "crm.json")
	if err := os.WriteFile(policy, []byte(`{"connector":"crm","version":"7","endpoints":[
		{"match":{"methods":["GET"],"path":"/v1/contacts*"},"fields":{"contacts:read":["data.#.id","data.#.name"],"contacts:pii":["data.#.email"]}},
		{"match":{"methods":["GET"],"path":"/v1/deals*"},"fields":{"deals:read":["data.#.amount"]}}],
		"scopes":{"contacts:pii":{"description":"e-mail addresses","categories":["contact details"],"purpose":"customer support"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	catalog, err := scopetrim.LoadCatalog(policy)
	if err != nil {
		t.Fatal(err)
	}
	req := func(tenant, client, endpoint, decision, reason string, scopes ...string) *Record {
		r := &Record{Tenant: tenant, ClientID: client, Decision: decision, Reason: reason, Status: 200, Method: "GET",
			Path: "/x", Scopes: scopes, Connector: "crm", Policy: "crm@7", Endpoint: endpoint, BytesOut: 100}
		if decision == "deny" {
			r.Status, r.BytesOut = 403, 0
		}
		return r
	}
	var recs []*Record
	for i := 0; i < 3; i++ {
		r := req("acme", "client-a", "/v1/contacts*", "allow", "ok", "openid", "contacts:read", "contacts:pii")
		r.FieldsRemoved, r.Withheld = 2, []string{"data.#.ssn"}
		recs = append(recs, r)
	}
	recs = append(recs,
		req("acme", "client-a", "/v1/contacts*", "deny", "insufficient_scope", "openid"),
		req("acme", "client-a", "/v1/contacts*", "deny", "tenant_mismatch", "contacts:read"),
		req("acme", "client-b", "/v1/deals*", "allow", "ok", "deals:read", "contacts:read"),
		req("globex", "client-c", "/v1/contacts*", "allow", "ok", "contacts:read"),
	)
	start := req("acme", "client-a", "/v1/contacts*", "allow", "ok", "contacts:read")
	start.Stream, start.RequestID = "start", "s1"
	end := req("acme", "client-a", "/v1/contacts*", "allow", "ok", "contacts:read")
	end.Stream, end.RequestID, end.StreamRecords, end.BytesOut = "complete", "s1", 5, 500
	late := req("acme", "client-a", "/v1/contacts*", "allow", "ok", "contacts:read")
	late.TS = "2027-01-01T00:00:00Z"
	log := generatedLog(t, dir, append(recs, start, end, late))

	rep, err := Report([]string{log}, ReportOptions{Catalog: catalog, Until: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 10 || rep.Requests != 8 {
		t.Fatalf("%d records, %d requests; want 10 read and 8 requests in the period (a stream counts once)", rep.Records, rep.Requests)
	}
	rows := map[string]*ProcessingRow{}
	for _, r := range rep.Rows {
		rows[r.Tenant+"/"+r.Client+"/"+r.Scope] = r
	}
	read := rows["acme/client-a/contacts:read"]
	if read == nil || read.Requests != 5 || read.Allowed != 4 || read.Refused != 1 || read.RefusedBy["tenant_mismatch"] != 1 ||
		read.ValuesWithheld != 6 || read.RecordsReleased != 5 || read.BytesOut != 800 ||
		strings.Join(read.FieldsReleased, ",") != "data.#.id,data.#.name" || strings.Join(read.WithheldPaths, ",") != "data.#.ssn" ||
		read.FirstAccess != "2026-11-01T08:00:00Z" || read.LastAccess != "2026-11-01T16:00:00Z" {
		t.Fatalf("acme/client-a/contacts:read %+v", read)
	}
	pii := rows["acme/client-a/contacts:pii"]
	if pii == nil || pii.Requests != 3 || pii.Purpose != "customer support" || pii.Categories[0] != "contact details" ||
		strings.Join(pii.FieldsReleased, ",") != "data.#.email" {
		t.Fatalf("acme/client-a/contacts:pii %+v", pii)
	}
	if none := rows["acme/client-a/"]; none == nil || none.Refused != 1 || none.RefusedBy["insufficient_scope"] != 1 {
		t.Fatalf("refused without a scope the endpoint names: %+v", none)
	}
	if rows["acme/client-a/openid"] != nil {
		t.Fatal("openid is no scope of the policy's endpoint: no row")
	}
	if deals := rows["acme/client-b/deals:read"]; deals == nil || deals.Allowed != 1 || rows["acme/client-b/contacts:read"] != nil {
		t.Fatalf("deals rows %+v", deals)
	}
	if g := rows["globex/client-c/contacts:read"]; g == nil || g.Allowed != 1 {
		t.Fatalf("globex %+v", g)
	}

	out, err := runCommand(t, addReportCommand, "report", "--policies", policy, "--until", "2026-12-01", log)
	if err != nil || !strings.Contains(out, "# Records of processing") || !strings.Contains(out, "## Tenant acme") ||
		!strings.Contains(out, "| crm | contacts:pii | customer support | contact details | client-a | 3 | 3 | 0 |") {
		t.Fatalf("markdown: %v\n%s", err, out)
	}
	out, err = runCommand(t, addReportCommand, "report", "--format", "json", log)
	if err != nil || !strings.Contains(out, `"requests": 9`) {
		t.Fatalf("json: %v\n%s", err, out)
	}
}
