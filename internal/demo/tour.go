package demo

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/alysio/privacy-sidecar/internal/devidp"
	"github.com/alysio/privacy-sidecar/modules/auditlog"
)

// scenario is one request of the tour and what the sidecar must do with it.
type scenario struct {
	title   string
	method  string // GET unless set
	path    string
	body    string // a JSON request body, for writes
	token   string
	headers map[string]string
	status  int
	reason  string   // the refusal's reason code, for refusals
	shows   []string // must appear in the body
	hides   []string // must not appear anywhere in the response
	// noWrite: the connector must not receive a write for this request
	noWrite bool
	note    string // printed after a pass, instead of the summary
}

func scenarios(iss *devidp.Issuer) []scenario {
	token := func(sub, tenant, scope string) string {
		return iss.MustMint(iss.AccessClaims(sub, "connector-api", devidp.Claims{"tenant_id": tenant, "scope": scope}))
	}
	acme := map[string]string{"X-Tenant-ID": "acme"}
	pii := []string{"maria.lindqvist@nordlicht.example", "+46 70 123 45 67", "Prefers calls after 3pm"}
	otherReps := []string{"Aisha Okafor", "Lagos Fintech", "c_1003", "u_22"}
	return []scenario{
		{
			title: "Full access: a privacy officer of acme (contacts:read contacts:all contacts:pii)",
			path:  "/v1/contacts", token: token("officer-7", "acme", "contacts:read contacts:all contacts:pii"), headers: acme,
			status: 200, shows: []string{"maria.lindqvist@nordlicht.example", "+46 70 123 45 67", "Aisha Okafor"},
			hides: []string{"Prefers calls after 3pm", "lead_score"}, // notes are redacted even here; lead_score is in no policy
		},
		{
			title: "A sales rep sees their team's contacts, without personal data: rep-12 of acme (contacts:read; crm_user_id u_17, crm_team u_17 u_18)",
			path:  "/v1/contacts", token: token("rep-12", "acme", "contacts:read"), headers: acme,
			status: 200, shows: []string{"Maria Lindqvist", "Nordlicht AB", "Jonas Becker"}, hides: append(append(pii, "lead_score"), otherReps...),
			note: "only contacts owned by u_17 or u_18 were released (record rules); fields outside the token's scopes were withheld",
		},
		{
			title: "Another rep's contact: rep-12 asks for c_1003, owned by u_22",
			path:  "/v1/contacts/c_1003", token: token("rep-12", "acme", "contacts:read"), headers: acme,
			status: 404, reason: "record_not_visible", hides: otherReps,
			note: "refused with record_not_visible: the same answer as for a contact that does not exist",
		},
		{
			title:  "An allowed write: rep-12 moves deal d_501 to stage won (deals:write may send stage, amount, notes)",
			method: "PATCH", path: "/v1/deals/d_501", body: `{"stage":"won","notes":"Signed on the call."}`,
			token: token("rep-12", "acme", "deals:write"), headers: acme,
			status: 200, shows: []string{`"stage":"won"`}, hides: []string{"maria.lindqvist@nordlicht.example"},
			note: "the connector applied the change; its answer was trimmed like any other",
		},
		{
			title:  "A refused write: rep-12 also tries to move the deal to another contact",
			method: "PATCH", path: "/v1/deals/d_501", body: `{"stage":"lost","contact_id":"c_1003"}`,
			token: token("rep-12", "acme", "deals:write"), headers: acme,
			status: 403, reason: "write_field_not_allowed", shows: []string{"contact_id"}, noWrite: true,
		},
		{
			title: "Hashed email, masked phone: an analyst of acme (contacts:analytics)",
			path:  "/v1/contacts", token: token("analyst-3", "acme", "contacts:analytics"), headers: acme,
			status: 200, shows: []string{"Nordlicht AB", `"****5 67"`}, hides: append(pii, "Maria Lindqvist"),
		},
		{
			title: "Cross-tenant attempt: an acme token asking for globex's contacts",
			path:  "/v1/contacts", token: token("rep-12", "acme", "contacts:read contacts:pii"), headers: map[string]string{"X-Tenant-ID": "globex"},
			status: 403, reason: "tenant_mismatch", hides: []string{"Hank Scorpio", "hank@globex.example"},
		},
		{
			title: "Disconnected integration: acme removed its ERP connector",
			path:  "/erp/invoices", token: token("rep-12", "acme", "contacts:read"), headers: acme,
			status: 403, reason: "connector_disconnected",
		},
		{
			title:  "No token at all",
			path:   "/v1/contacts",
			status: 401, reason: "token_missing", hides: pii,
		},
	}
}

// tour runs every scenario, prints what happened, checks the audit log, and
// reports whether everything behaved as expected.
func tour(out *printer, w *world) bool {
	out.heading("Alysio Privacy Sidecar demo")
	out.line("issuer   %s (development OIDC issuer, keys made at start)", w.issuer.URL)
	out.line("upstream http://%s (sample CRM connector, tenants acme and globex)", w.upAddr)
	out.line("sidecar  http://%s (caddyfiles/demo.Caddyfile, policies/crm.json)", w.listen)
	out.line("admin    http://%s (the sidecar's admin API, loopback only)", w.adminAddr)
	allOK := connectTour(out, w)
	list := scenarios(w.issuer)
	for i, sc := range list {
		allOK = runScenario(out, w, i+1, sc) && allOK
	}
	allOK = disconnectTour(out, w, len(list)+1) && allOK
	allOK = checkAudit(out, w, len(list)+connectRequests) && allOK
	if allOK {
		out.heading("Every step behaved as expected.")
	} else {
		out.heading("FAIL: some steps did not behave as expected (see above).")
	}
	return allOK
}

func runScenario(out *printer, w *world, n int, sc scenario) bool {
	out.heading(fmt.Sprintf("%d. %s", n, sc.title))
	method := sc.method
	if method == "" {
		method = http.MethodGet
	}
	var reqBody io.Reader
	if sc.body != "" {
		reqBody = strings.NewReader(sc.body)
	}
	req, _ := http.NewRequest(method, "http://"+w.listen+sc.path, reqBody)
	if sc.token != "" {
		req.Header.Set("Authorization", "Bearer "+sc.token)
	}
	if sc.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range sc.headers {
		req.Header.Set(k, v)
	}
	writesBefore := w.crm.Writes()
	out.line("%s %s  %s", method, sc.path, describeHeaders(sc))
	if sc.body != "" {
		out.line("   %s", sc.body)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		out.fail("request failed: %v", err)
		return false
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	out.line("-> %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	out.body(body)

	ok := true
	if resp.StatusCode != sc.status {
		out.fail("expected status %d", sc.status)
		ok = false
	}
	if sc.reason != "" && !bytes.Contains(body, []byte(`"reason":"`+sc.reason+`"`)) {
		out.fail("expected reason %s in the problem body", sc.reason)
		ok = false
	}
	for _, s := range sc.shows {
		if !bytes.Contains(body, []byte(s)) {
			out.fail("expected the response to show %q", s)
			ok = false
		}
	}
	whole := fmt.Sprint(resp.Header) + string(body)
	for _, s := range sc.hides {
		if strings.Contains(whole, s) {
			out.fail("the response leaked %q", s)
			ok = false
		}
	}
	if sc.noWrite && w.crm.Writes() != writesBefore {
		out.fail("the connector received the refused write")
		ok = false
	}
	if ok {
		out.pass(summary(sc))
	}
	return ok
}

func summary(sc scenario) string {
	switch {
	case sc.note != "":
		return sc.note
	case sc.reason != "":
		return "refused with " + sc.reason + "; the connector was never called"
	case len(sc.hides) > 0:
		return "fields outside the token's scopes were withheld"
	default:
		return "as expected"
	}
}

func describeHeaders(sc scenario) string {
	parts := []string{}
	if sc.token != "" {
		parts = append(parts, "Authorization: Bearer <token>")
	}
	for k, v := range sc.headers {
		parts = append(parts, k+": "+v)
	}
	return strings.Join(parts, ", ")
}

// checkAudit waits for one record per request, shows one, and verifies the
// chain, which also holds the connections' event records.
func checkAudit(out *printer, w *world, want int) bool {
	out.heading("Audit log")
	var lines, requests []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		lines = readLines(w.audit)
		requests = requests[:0]
		for _, l := range lines {
			if !strings.Contains(l, `"event":`) {
				requests = append(requests, l)
			}
		}
		if len(requests) >= want {
			break
		}
	}
	out.line("file %s: %d records: one per request (%d), and %d about connections (connect, refresh, revocation, disconnect)",
		w.audit, len(lines), len(requests), len(lines)-len(requests))
	if len(requests) != want {
		out.fail("expected %d request records", want)
		return false
	}
	for i, sc := range scenarios(w.issuer) {
		switch {
		case strings.HasPrefix(sc.title, "A sales rep sees"):
			var rec struct {
				Released int      `json:"records_released"`
				Withheld int      `json:"records_withheld"`
				IDs      []string `json:"record_ids"`
			}
			_ = json.Unmarshal([]byte(requests[i]), &rec)
			out.line("the sales rep's list: records_released %d, records_withheld %d, record_ids %v", rec.Released, rec.Withheld, rec.IDs)
			out.line("(record ids, subjects and clients are pseudonyms under the tenant's key: audit forget unlinks them)")
		case sc.reason == "tenant_mismatch":
			out.line("the cross-tenant refusal's record:")
			out.body([]byte(requests[i]))
		}
	}
	for _, l := range lines {
		if strings.Contains(l, `"event":"disconnect"`) {
			out.line("globex's disconnect, with the receipt's content (its event fields; the request fields are empty):")
			out.body(eventFields([]byte(l)))
		}
	}
	res, err := auditlog.Verify([]string{w.audit}, auditlog.VerifyOptions{})
	if err != nil {
		out.fail("audit chain: %v", err)
		return false
	}
	out.pass(fmt.Sprintf("hash chain intact over %d records (privacy-sidecar audit verify %s)", res.Records, w.audit))
	return true
}

func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// printTry tells the user how to send their own requests.
func printTry(out *printer, w *world) {
	iss := w.issuer
	tok := iss.MustMint(iss.AccessClaims("rep-12", "connector-api", devidp.Claims{"tenant_id": "acme", "scope": "contacts:read deals:read deals:write", "exp": time.Now().Add(time.Hour).Unix()}))
	full := iss.MustMint(iss.AccessClaims("you", "connector-api", devidp.Claims{"tenant_id": "acme", "scope": "contacts:read contacts:all contacts:pii deals:read deals:pii", "exp": time.Now().Add(time.Hour).Unix()}))
	out.heading("The sidecar stays up: try it (Ctrl-C to stop)")
	out.line("TOKEN=%s", tok)
	out.line("FULL=%s", full)
	out.line(`curl -s -H "Authorization: Bearer $TOKEN" -H "X-Tenant-ID: acme" http://%s/v1/contacts`, w.listen)
	out.line(`curl -s -H "Authorization: Bearer $FULL" -H "X-Tenant-ID: acme" http://%s/v1/deals`, w.listen)
	out.line(`curl -s -X PATCH -H "Authorization: Bearer $TOKEN" -H "X-Tenant-ID: acme" -H "Content-Type: application/json" -d '{"stage":"won"}' http://%s/v1/deals/d_502`, w.listen)
	out.line(`curl -s http://%s/sidecar/connections/acme    (the admin API; DELETE .../acme/crm disconnects)`, w.adminAddr)
	out.line("audit log: %s   (privacy-sidecar audit verify %s)", w.audit, w.audit)
}

// printer writes the tour for a person to read.
type printer struct{ w io.Writer }

func newPrinter(w io.Writer) *printer { return &printer{w: w} }

func (p *printer) heading(s string)           { fmt.Fprintf(p.w, "\n== %s\n", s) }
func (p *printer) line(f string, args ...any) { fmt.Fprintf(p.w, "   "+f+"\n", args...) }
func (p *printer) pass(s string)              { fmt.Fprintf(p.w, "   ok: %s\n", s) }
func (p *printer) fail(f string, args ...any) { fmt.Fprintf(p.w, "   FAIL: "+f+"\n", args...) }

// body prints a JSON body indented, cut to a screenful.
func (p *printer) body(b []byte) {
	var pretty bytes.Buffer
	if json.Indent(&pretty, b, "   | ", "  ") != nil {
		pretty.Reset()
		pretty.Write(b)
	}
	lines := strings.Split(pretty.String(), "\n")
	if len(lines) > 24 {
		lines = append(lines[:24], fmt.Sprintf("   | ... (%d more lines)", len(lines)-24))
	}
	fmt.Fprintf(p.w, "   | %s\n", strings.Join(lines, "\n"))
}
