package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// recordsPolicy is a CRM policy with record rules on a list, a single
// record and an NDJSON export, and write endpoints with request_fields.
const recordsPolicy = `{
  "connector": "crm", "version": "records-test",
  "endpoints": [
    {
      "match": { "methods": ["GET"], "path": "/v1/contacts/export" },
      "fields": { "contacts:read": ["id", "name", "owner_id"] },
      "records": { "at": "", "id": "id", "rules": { "contacts:read": "record.owner_id == claims.crm_user_id || record.owner_id in claims.crm_team" } }
    },
    {
      "match": { "methods": ["GET"], "path": "/v1/contacts/c*" },
      "fields": { "contacts:read": ["id", "name", "owner_id"] },
      "records": { "at": "", "id": "id", "rules": { "contacts:read": "record.owner_id == claims.crm_user_id || record.owner_id in claims.crm_team" } }
    },
    {
      "match": { "methods": ["GET"], "path": "/v1/contacts" },
      "fields": { "contacts:read": ["data.#.id", "data.#.name", "data.#.owner_id", "next_cursor", "total"] },
      "records": { "at": "data", "id": "id", "rules": { "contacts:read": "record.owner_id == claims.crm_user_id || record.owner_id in claims.crm_team" } }
    },
    {
      "match": { "methods": ["POST"], "path": "/v1/contacts" },
      "fields": { "contacts:write": ["id", "owner_id"] },
      "request_fields": { "contacts:write": ["name", "owner_id", "email"] },
      "records": { "at": "", "rules": { "contacts:write": "record.owner_id == claims.crm_user_id" } }
    },
    {
      "match": { "methods": ["PATCH"], "path": "/v1/deals/*" },
      "fields": { "deals:write": ["id", "stage"] },
      "request_fields": { "deals:write": ["stage", "amount", "notes"] }
    },
    {
      "match": { "methods": ["POST"], "path": "/v1/activities" },
      "fields": { "activities:write": ["id"] }
    }
  ]
}`

const recordsCaddyfile = `{
	admin {$SIDECAR_ADMIN}
}

http://{$SIDECAR_ADDR} {
	audit_log {
		output file {$AUDIT_FILE}
		pseudonym_key {env.AUDIT_KEY}
	}
	oidc_auth {
		issuer {$ISSUER} {
			audience connector-api
		}
	}
	scope_trim {
		policies {$POLICIES}
		max_body 4KiB
	}
	reverse_proxy {$UPSTREAM}
}
`

const recordsList = `{"data":[` +
	`{"id":"c1","name":"Ada Lovelace","owner_id":"u7","email":"ada@example.com"},` +
	`{"id":"c2","name":"Bob Page","owner_id":"u8","email":"bob@example.org"},` +
	`{"id":"c3","name":"Cleo Hart","owner_id":"u9","email":"cleo@example.net"}` +
	`],"next_cursor":"cur_2"}`

type recordsSetup struct {
	*scopeTrimSetup
	policy, audit, caddyfile string
}

func startRecords(t *testing.T) *recordsSetup {
	t.Helper()
	dir := t.TempDir()
	s := &recordsSetup{policy: filepath.Join(dir, "crm.json"), audit: filepath.Join(dir, "audit.jsonl"), caddyfile: filepath.Join(dir, "Caddyfile")}
	if err := os.WriteFile(s.policy, []byte(recordsPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.caddyfile, []byte(recordsCaddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	s.scopeTrimSetup = startScopeTrim(t, s.caddyfile, map[string]string{
		"POLICIES": s.policy, "AUDIT_FILE": s.audit, "AUDIT_KEY": "integration-audit-key-0123456789",
	})
	s.respond(crmAnswer(recordsList))
	return s
}

// rep is a token of a sales rep who is CRM user u7 in a team with u8.
func (s *recordsSetup) rep(t *testing.T, scope string) string {
	t.Helper()
	return s.iss.MustMint(s.iss.AccessClaims("rep-7", "connector-api", devidp.Claims{
		"scope": scope, "crm_user_id": "u7", "crm_team": []string{"u7", "u8"},
	}))
}

// auditRecords waits for n audit records and returns them decoded.
func (s *recordsSetup) auditRecords(t *testing.T, n int) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		recs = recs[:0]
		f, err := os.Open(s.audit)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				recs = append(recs, m)
			}
		}
		f.Close()
		if len(recs) >= n {
			return recs
		}
	}
	t.Fatalf("%d audit records, want %d", len(recs), n)
	return nil
}

// TestRecordRulesOverHTTP: a list loses the records the caller may not
// see, a single record the caller may not see is a 404 that looks like a
// missing one, and the audit record counts them and lists pseudonyms.
func TestRecordRulesOverHTTP(t *testing.T) {
	s := startRecords(t)
	token := s.rep(t, "contacts:read")

	resp, body := s.sidecar.Get(t, "/v1/contacts", token)
	want := `{"data":[{"id":"c1","name":"Ada Lovelace","owner_id":"u7"},{"id":"c2","name":"Bob Page","owner_id":"u8"}],"next_cursor":"cur_2"}`
	if resp.StatusCode != 200 || string(body) != want {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	assertWithheld(t, resp, body, "Cleo", "c3", "u9", "ada@example.com")

	// the same token without team claims: no record at all
	bare := s.iss.MustMint(s.iss.AccessClaims("rep-7", "connector-api", devidp.Claims{"scope": "contacts:read"}))
	resp, body = s.sidecar.Get(t, "/v1/contacts", bare)
	if resp.StatusCode != 200 || string(body) != `{"data":[],"next_cursor":"cur_2"}` {
		t.Fatalf("without claims: %d %s", resp.StatusCode, body)
	}

	s.respond(crmAnswer(`{"id":"c1","name":"Ada Lovelace","owner_id":"u7","email":"ada@example.com"}`))
	resp, body = s.sidecar.Get(t, "/v1/contacts/c1", token)
	if resp.StatusCode != 200 || string(body) != `{"id":"c1","name":"Ada Lovelace","owner_id":"u7"}` {
		t.Fatalf("own record: %d %s", resp.StatusCode, body)
	}

	s.respond(crmAnswer(`{"id":"c3","name":"Cleo Hart","owner_id":"u9"}`, "X-Upstream-Marker: c3", "Etag: \"7\""))
	hiddenResp, hidden := s.sidecar.Get(t, "/v1/contacts/c3", token)
	assertScopeTrimRefused(t, hiddenResp, hidden, 404, "record_not_visible")
	assertWithheld(t, hiddenResp, hidden, "Cleo", "u9")

	s.respond(answer(404, "application/json", `{"error":"no contact c404"}`))
	missingResp, missing := s.sidecar.Get(t, "/v1/contacts/c404", token)
	assertScopeTrimRefused(t, missingResp, missing, 404, "record_not_visible")
	if string(missing) != string(hidden) || missingResp.Header.Get("Content-Length") != hiddenResp.Header.Get("Content-Length") {
		t.Fatalf("a withheld record and a missing one are told apart:\n%s\n%s", hidden, missing)
	}

	recs := s.auditRecords(t, 5)
	list, one, withheld := recs[0], recs[2], recs[3]
	if list["records_released"] != 2.0 || list["records_withheld"] != 1.0 || len(list["record_ids"].([]any)) != 2 {
		t.Fatalf("list record %v", list)
	}
	if one["records_released"] != 1.0 || withheld["records_withheld"] != 1.0 || withheld["reason"] != "record_not_visible" || withheld["record_ids"] != nil {
		t.Fatalf("single records %v / %v", one, withheld)
	}
	if list["record_ids"].([]any)[0] != one["record_ids"].([]any)[0] {
		t.Fatal("the same record has two pseudonyms in one tenant")
	}
	raw, _ := os.ReadFile(s.audit)
	for _, id := range []string{`"c1"`, `"c2"`, `"c3"`} {
		if strings.Contains(string(raw), id) {
			t.Fatalf("the audit log holds the raw record id %s", id)
		}
	}
	if out, err := runSidecar(t, "audit", "verify", s.audit); err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}

// TestRecordRulesNDJSON: each line of an export is a record; the lines the
// caller may not see are left out as the stream goes, and a stream longer
// than max_body passes because only one line is held at a time.
func TestRecordRulesNDJSON(t *testing.T) {
	s := startRecords(t)
	const lines = 3000
	s.respond(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		bw := bufio.NewWriter(w)
		for i := range lines {
			fmt.Fprintf(bw, `{"id":"c%d","name":"Contact %d","owner_id":"u%d","email":"x%d@example.com"}`+"\n", i, i, 7+i%3, i)
		}
		bw.Flush()
	})
	resp, body := s.sidecar.Get(t, "/v1/contacts/export", s.rep(t, "contacts:read"))
	if resp.StatusCode != 200 || len(body) < 4<<10*10 {
		t.Fatalf("%d, %d bytes", resp.StatusCode, len(body))
	}
	got := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(got) != lines/3*2 {
		t.Fatalf("%d lines, want %d", len(got), lines/3*2)
	}
	for _, l := range got {
		if !strings.Contains(l, `"owner_id":"u7"`) && !strings.Contains(l, `"owner_id":"u8"`) || strings.Contains(l, "email") {
			t.Fatalf("line %s", l)
		}
	}
	// a stream's opening record, then its closing one with the counts
	recs := s.auditRecords(t, 2)
	rec := recs[1]
	if recs[0]["stream"] != "start" || rec["stream"] != "complete" || rec["stream_records"] != float64(lines/3*2) {
		t.Fatalf("stream records %v", recs)
	}
	if rec["records_released"] != float64(lines/3*2) || rec["records_withheld"] != float64(lines/3) ||
		len(rec["record_ids"].([]any)) != 64 || rec["record_ids_omitted"] != float64(lines/3*2-64) {
		t.Fatalf("audit record %v", rec)
	}
}

// TestWriteAllowlistsOverHTTP: a write reaches the connector byte for byte
// when every field is allowed; every refused write leaves the connector
// uncalled, which the recording upstream proves.
func TestWriteAllowlistsOverHTTP(t *testing.T) {
	s := startRecords(t)
	s.respond(crmAnswer(`{"id":"d1","stage":"won","owner_id":"u7","secret":"s3cr3t"}`))
	deals := s.rep(t, "deals:write")
	send := func(method, path, token, contentType, body string, headers ...string) (*http.Response, []byte) {
		t.Helper()
		req := NewRequest(t, method, path, token, headers...)
		req.Body = ioNopCloser(body)
		req.ContentLength = int64(len(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		return s.sidecar.Do(t, req)
	}

	body := `{"stage":"won","amount":1200.50,"notes":"signed"}`
	resp, got := send("PATCH", "/v1/deals/d1", deals, "application/json", body)
	if resp.StatusCode != 200 || string(got) != `{"id":"d1","stage":"won"}` {
		t.Fatalf("allowed write: %d %s", resp.StatusCode, got)
	}
	if last := s.upstream.Last(t); last.Method != "PATCH" || string(last.Body) != body {
		t.Fatalf("the connector received %s %q", last.Method, last.Body)
	}
	calls := s.upstream.Calls()

	refusals := []struct {
		name, method, path, token, contentType, body string
		status                                       int
		reason, names                                string
	}{
		{"field not allowed", "PATCH", "/v1/deals/d1", deals, "application/json", `{"stage":"won","owner_id":"u9"}`, 403, "write_field_not_allowed", "owner_id"},
		{"nested field", "PATCH", "/v1/deals/d1", deals, "application/json", `{"stage":"won","meta":{"visibility":"public"}}`, 403, "write_field_not_allowed", "meta.visibility"},
		{"no request_fields", "POST", "/v1/activities", s.rep(t, "activities:write"), "application/json", `{"type":"call"}`, 403, "write_field_not_allowed", "type"},
		{"duplicate key", "PATCH", "/v1/deals/d1", deals, "application/json", `{"stage":"won","stage":"lost"}`, 400, "request_malformed", "duplicate key"},
		{"invalid UTF-8", "PATCH", "/v1/deals/d1", deals, "application/json", "{\"notes\":\"\xc3\x28\"}", 400, "request_malformed", "UTF-8"},
		{"form body", "PATCH", "/v1/deals/d1", deals, "application/x-www-form-urlencoded", `stage=won`, 415, "request_not_json", ""},
		{"too large", "PATCH", "/v1/deals/d1", deals, "application/json", `{"notes":"` + strings.Repeat("x", 5000) + `"}`, 413, "request_too_large", ""},
		{"record rule", "POST", "/v1/contacts", s.rep(t, "contacts:write"), "application/json", `{"name":"Eve","owner_id":"u9"}`, 403, "record_not_allowed", ""},
		{"DELETE not listed", "DELETE", "/v1/deals/d1", deals, "", ``, 403, "no_policy", ""},
	}
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			resp, got := send(c.method, c.path, c.token, c.contentType, c.body)
			assertScopeTrimRefused(t, resp, got, c.status, c.reason)
			if !strings.Contains(string(got), c.names) {
				t.Fatalf("the refusal does not name %q: %s", c.names, got)
			}
			if n := s.upstream.Calls(); n != calls {
				last := s.upstream.Last(t)
				calls = n
				t.Fatalf("the connector was called for a refused write (%d calls): %s %s %q", n, last.Method, last.Path, last.Body)
			}
			assertWithheld(t, resp, got, "u9", "lost", "public", "Eve", "s3cr3t")
		})
	}
	// the creation the record rule allows goes through
	resp, got = send("POST", "/v1/contacts", s.rep(t, "contacts:write"), "application/json", `{"name":"Eve","owner_id":"u7"}`)
	if resp.StatusCode != 200 || s.upstream.Calls() != calls+1 {
		t.Fatalf("allowed create: %d %s", resp.StatusCode, got)
	}
}

// TestRecordRuleEditAppliesOnReload: a changed rule applies after
// `privacy-sidecar reload`, and a rule that does not compile is refused by
// the reload while the running config keeps serving.
func TestRecordRuleEditAppliesOnReload(t *testing.T) {
	s := startRecords(t)
	token := s.rep(t, "contacts:read")
	if _, body := s.sidecar.Get(t, "/v1/contacts", token); strings.Contains(string(body), "Cleo") {
		t.Fatalf("before the edit: %s", body)
	}
	narrow := strings.ReplaceAll(recordsPolicy, `record.owner_id == claims.crm_user_id || record.owner_id in claims.crm_team`, `record.owner_id == claims.crm_user_id`)
	if err := os.WriteFile(s.policy, []byte(narrow), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := s.sidecar.Reload(s.caddyfile); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	resp, body := s.sidecar.Get(t, "/v1/contacts", token)
	if resp.StatusCode != 200 || string(body) != `{"data":[{"id":"c1","name":"Ada Lovelace","owner_id":"u7"}],"next_cursor":"cur_2"}` {
		t.Fatalf("after the edit: %d %s", resp.StatusCode, body)
	}

	broken := strings.ReplaceAll(narrow, `record.owner_id == claims.crm_user_id`, `record.owner_id ==`)
	if err := os.WriteFile(s.policy, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := s.sidecar.Reload(s.caddyfile)
	named := true
	for _, want := range []string{s.policy, "endpoint 0 (/v1/contacts/export)", "records.rules scope", "contacts:read", "Syntax error"} {
		named = named && strings.Contains(out, want)
	}
	if err == nil || !named {
		t.Fatalf("a broken rule was not refused with file, endpoint, scope and CEL's message: %v\n%s", err, out)
	}
	if resp, body := s.sidecar.Get(t, "/v1/contacts", token); resp.StatusCode != 200 || !strings.Contains(string(body), "Ada") || strings.Contains(string(body), "Bob") {
		t.Fatalf("after the refused reload: %d %s", resp.StatusCode, body)
	}
}

// runSidecar runs the binary with args and returns its combined output.
func runSidecar(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(sidecarBin, args...)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func ioNopCloser(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }
