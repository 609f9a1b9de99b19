package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestHeadersConnectionFloodIsBounded: with max_header_size raised (as
// operators do for large tokens), one request whose Connection header names
// 40,000 reserved headers (about 1 MB), and one that sends 20,000 of them,
// are served, each leaves a small audit record (the rule and the first names
// plus a count), `audit verify` passes, and the sidecar restarts on the log.
func TestHeadersConnectionFloodIsBounded(t *testing.T) {
	s := startHeaders(t, "\t\tmax_header_size 8MB", true)
	tok := s.token("acme", "contacts:read")

	var conn strings.Builder
	conn.WriteString("keep-alive")
	for i := range 40000 {
		fmt.Fprintf(&conn, ", X-User-Email-Address-%05d", i)
	}
	if conn.Len() < 1<<20 {
		t.Fatalf("the Connection header is %d bytes; the case is about 1 MB", conn.Len())
	}
	start := time.Now()
	resp, body, rec := s.get(t, "/v1/contacts", tok, "Connection: "+conn.String())
	t.Logf("Connection header of %d bytes naming 40,000 reserved headers: answered in %s", conn.Len(), time.Since(start))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if got := strings.Join(rec.SpoofedHeaders, ","); got != "Connection: X-User*" || rec.SpoofedHeadersOmitted != 0 {
		t.Fatalf("record lists %q and %d more; want the rule once, never the client's tokens", got, rec.SpoofedHeadersOmitted)
	}
	if up := s.upstream.Last(t); up.Header.Get("X-Auth-Subject") != "user-42" || up.Header.Get("X-Tenant-Id") != "acme" {
		t.Fatalf("the verified headers did not reach the connector: %v", up.Header)
	}

	// 20,000 reserved headers sent as headers: the first 16 names and a count
	req := NewRequest(t, http.MethodGet, "/v1/contacts", tok)
	for i := range 20000 {
		req.Header[fmt.Sprintf("X-User-%05d", i)] = []string{"admin"}
	}
	start = time.Now()
	resp, body, rec = s.do(t, req)
	t.Logf("20,000 reserved headers: answered in %s", time.Since(start))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if len(rec.SpoofedHeaders) != 16 || rec.SpoofedHeaders[0] != "X-User-00000" || rec.SpoofedHeaders[15] != "X-User-00015" || rec.SpoofedHeadersOmitted != 20000-16 {
		t.Fatalf("record lists %q and %d more", rec.SpoofedHeaders, rec.SpoofedHeadersOmitted)
	}

	data, err := os.ReadFile(s.audit)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if len(line) > 4096 || !json.Valid([]byte(line)) {
			t.Fatalf("record %d is %d bytes", i+1, len(line))
		}
	}
	if code, out := auditCmd(t, "verify", s.audit); code != 0 {
		t.Fatalf("audit verify exit %d: %s", code, out)
	}

	// the sidecar starts again on the same log and continues its chain
	s.sidecar.Stop()
	s.sidecar = StartSidecarConfig(t, headersCaddyfile("\t\tmax_header_size 8MB", true), s.env)
	resp, body, rec = s.get(t, "/v1/contacts", tok)
	recs := readAudit(t, s.audit)
	if resp.StatusCode != 200 || rec.PrevHash != recs[len(recs)-2].Hash {
		t.Fatalf("after the restart: %d %s, record %+v does not continue the chain", resp.StatusCode, body, rec)
	}
	if code, out := auditCmd(t, "verify", s.audit); code != 0 {
		t.Fatalf("audit verify after the restart: exit %d: %s", code, out)
	}
}

// TestHeadersModulesStandAlone: oidc_auth, tenant_guard and scope_trim
// without audit_log; the decision record that carries the tenant is created
// by the first of them, so the hash transform is keyed per tenant: two
// tenants get different pseudonyms for the same value, one tenant the same.
func TestHeadersModulesStandAlone(t *testing.T) {
	s := startHeaders(t, "", false)
	s.respond(crmAnswer(`{"data":[{"id":"c1","email":"ada@example.com"}]}`))
	pseudonym := func(tenant string) string {
		t.Helper()
		resp, body, _ := s.get(t, "/v1/contacts", s.token(tenant, "contacts:analytics"))
		var doc struct {
			Data []struct {
				Email string `json:"email"`
			} `json:"data"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &doc) != nil || len(doc.Data) != 1 {
			t.Fatalf("%s: %d %s", tenant, resp.StatusCode, body)
		}
		if e := doc.Data[0].Email; e == "" || strings.Contains(e, "ada") {
			t.Fatalf("%s: email %q is not a pseudonym", tenant, e)
		}
		if got := s.upstream.Last(t).Header.Get("X-Tenant-Id"); got != tenant {
			t.Fatalf("the connector got tenant %q", got)
		}
		return doc.Data[0].Email
	}
	acme, globex := pseudonym("acme"), pseudonym("globex")
	if acme == globex {
		t.Fatalf("acme and globex got the same pseudonym %s: the hash is not keyed per tenant", acme)
	}
	if again := pseudonym("acme"); again != acme {
		t.Fatalf("acme's pseudonym changed: %s then %s", acme, again)
	}
}
