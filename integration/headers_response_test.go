package integration

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// hostileSecrets are the personal values the hostile upstream puts in headers.
var hostileSecrets = []string{"ada@example.com", "123-45-6789", "prefers tea"}

// hostileAnswer answers with the headers of issue 11: an email, a cookie
// holding an SSN, a Link with an email in its query, a Content-Disposition
// holding a note, a debug header; extra "Name: value" headers are added.
func hostileAnswer(status int, contentType, body string, extra ...string) http.HandlerFunc {
	headers := append([]string{
		"X-User-Email: ada@example.com",
		"Set-Cookie: uid=123-45-6789",
		`Link: <https://crm.example/v1/contacts?email=ada@example.com>; rel="next"`,
		`Content-Disposition: attachment; filename="prefers tea.json"`,
		"X-Debug: 123-45-6789",
	}, extra...)
	return answer(status, contentType, body, headers...)
}

var hostileNames = []string{"X-User-Email", "Set-Cookie", "Link", "Content-Disposition", "X-Debug"}

// TestHeadersHostileUpstream: whatever kind of answer passes through
// scope_trim (trimmed, HEAD, error, refused, 304, NDJSON, redirect), no
// header the policy does not name reaches the client, and the audit record
// names each one dropped.
func TestHeadersHostileUpstream(t *testing.T) {
	s := startHeaders(t, "", true)
	tok := s.token("acme", "contacts:read")
	doc := `{"data":[{"id":"c1","name":"Ada","email":"ada@example.com"}],"next_cursor":"c2"}`
	tests := []struct {
		name   string
		method string
		answer http.HandlerFunc
		status int
		reason string // of a refusal
		also   []string
	}{
		{"trimmed 200", "GET", hostileAnswer(200, "application/json", doc), 200, "", nil},
		{"HEAD", "HEAD", hostileAnswer(200, "application/json", doc), 200, "", nil},
		{"404 with error_fields", "GET", hostileAnswer(404, "application/json", `{"error":{"code":"gone","who":"ada@example.com"}}`), 404, "", nil},
		{"404 replaced by a generic problem", "GET", hostileAnswer(404, "text/html", "<p>ada@example.com</p>"), 404, "", nil},
		{"refused: not JSON", "GET", hostileAnswer(200, "text/html", "<p>ada@example.com</p>"), 502, "upstream_not_json", nil},
		{"304", "GET", hostileAnswer(304, "", ""), 304, "", nil},
		{"NDJSON", "GET", hostileAnswer(200, "application/x-ndjson", doc+"\n"+doc+"\n"), 200, "", nil},
		{"302 to another host", "GET", hostileAnswer(302, "application/json", doc, "Location: https://evil.example/collect?email=ada@example.com"), 502, "upstream_redirect_refused", []string{"Location"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.respond(tt.answer)
			resp, body, rec := s.do(t, NewRequest(t, tt.method, "/v1/contacts", tok))
			if tt.reason != "" {
				assertScopeTrimRefused(t, resp, body, tt.status, tt.reason)
			} else if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			for _, k := range append(slices.Clone(hostileNames), "Location") {
				if v := resp.Header.Values(k); len(v) > 0 {
					t.Errorf("%s reached the client: %q", k, v)
				}
			}
			assertWithheld(t, resp, body, hostileSecrets...)
			want := append(slices.Clone(hostileNames), tt.also...)
			slices.Sort(want)
			if got := slices.Sorted(slices.Values(rec.HeadersRemoved)); !slices.Equal(got, want) {
				t.Fatalf("headers_removed %q, want %q", got, want)
			}
			if rec.SecurityEvent == "spoofed_identity_header" {
				t.Fatal("an upstream's headers are not a client's spoofing")
			}
		})
	}
	m := scrapeMetrics(t, "http://"+s.sidecar.AdminAddr+"/metrics")
	if !strings.Contains(m, `sidecar_scope_trim_response_headers_removed_total{policy="crm@headers-test"} 41`) {
		t.Fatalf("metric: %s", grepLines(m, "scope_trim"))
	}
}

// TestHeadersAllowedByPolicy: what the policy names passes, with URLs checked
// against the endpoint's redirects; Set-Cookie only where named.
func TestHeadersAllowedByPolicy(t *testing.T) {
	s := startHeaders(t, "", true)
	tok := s.token("acme", "contacts:read deals:read")
	doc := `{"data":[{"id":"c1","name":"Ada"}],"next_cursor":"c2"}`

	s.respond(crmAnswer(doc, "X-RateLimit-Remaining: 41", "Set-Cookie: session=opaque",
		`Link: </v1/contacts?cursor=c2>; rel="next"; title="Ada Lovelace"`, "X-Powered-By: crm"))
	resp, body, rec := s.get(t, "/v1/contacts", tok)
	if resp.StatusCode != 200 || resp.Header.Get("X-Ratelimit-Remaining") != "41" {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	if got := resp.Header.Get("Link"); got != `</v1/contacts?cursor=c2>; rel="next"` {
		t.Fatalf("Link %q: the target passes, the title does not", got)
	}
	if resp.Header.Get("Set-Cookie") != "" || !slices.Equal(slices.Sorted(slices.Values(rec.HeadersRemoved)), []string{"Set-Cookie", "X-Powered-By"}) {
		t.Fatalf("Set-Cookie %q; headers_removed %q", resp.Header.Get("Set-Cookie"), rec.HeadersRemoved)
	}
	resp, _, rec = s.get(t, "/v1/deals", tok)
	if resp.Header.Get("Set-Cookie") != "session=opaque" || resp.Header.Get("Link") != "" || !slices.Equal(rec.HeadersRemoved, []string{"Link", "X-Powered-By"}) {
		t.Fatalf("deals: Set-Cookie %q, Link %q, headers_removed %q", resp.Header.Get("Set-Cookie"), resp.Header.Get("Link"), rec.HeadersRemoved)
	}

	for _, loc := range []string{"/v1/contacts?cursor=c2", "/v1/contacts/c9"} {
		s.respond(answer(302, "application/json", doc, "Location: "+loc))
		resp, body, rec := s.get(t, "/v1/contacts", tok)
		if resp.StatusCode != 302 || resp.Header.Get("Location") != loc || len(body) != 0 || rec.Decision != "allow" {
			t.Fatalf("redirect to %s: %d %q %q %+v", loc, resp.StatusCode, resp.Header.Get("Location"), body, rec)
		}
	}
}

// TestHeadersRedirectsRefused: every 3xx whose Location is not a path on this
// route that the endpoint's redirects allow is a 502 upstream_redirect_refused;
// its Location, and any query it carries, never reaches the client.
func TestHeadersRedirectsRefused(t *testing.T) {
	s := startHeaders(t, "", true)
	tok := s.token("acme", "contacts:read deals:read")
	for _, tt := range []struct {
		name, path, location string
		status               int
	}{
		{"another host", "/v1/contacts", "https://evil.example/collect?email=ada@example.com", 302},
		{"this host, absolute", "/v1/contacts", "http://" + s.sidecar.Addr + "/v1/contacts?cursor=c2", 302},
		{"scheme-relative", "/v1/contacts", "//evil.example/v1/contacts", 301},
		{"backslash", "/v1/contacts", `/\evil.example/`, 307},
		{"query not named", "/v1/contacts", "/v1/contacts?email=ada%40example.com", 303},
		{"query partly named", "/v1/contacts", "/v1/contacts?cursor=c2&ssn=123-45-6789", 308},
		{"path outside redirects", "/v1/contacts", "/admin/export", 302},
		{"dot segments", "/v1/contacts", "/v1/contacts/../../admin", 302},
		{"encoded dot segments", "/v1/contacts", "/v1/contacts/%2e%2e/%2e%2e/admin", 302},
		{"fragment", "/v1/contacts", "/v1/contacts#ada@example.com", 302},
		{"no Location", "/v1/contacts", "", 300},
		{"endpoint without redirects", "/v1/deals", "/v1/deals?cursor=2", 302},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var extra []string
			if tt.location != "" {
				extra = append(extra, "Location: "+tt.location)
			}
			s.respond(answer(tt.status, "application/json", `{"data":[{"id":"ada@example.com"}]}`, extra...))
			resp, body, rec := s.get(t, tt.path, tok)
			assertScopeTrimRefused(t, resp, body, 502, "upstream_redirect_refused")
			if resp.Header.Get("Location") != "" || strings.Contains(string(body), "evil") {
				t.Fatalf("the refused redirect leaked: %v %s", resp.Header, body)
			}
			assertWithheld(t, resp, body, hostileSecrets...)
			if rec.Reason != "upstream_redirect_refused" || rec.SecurityEvent != "upstream_redirect_refused" || rec.Status != 502 {
				t.Fatalf("record %+v", rec)
			}
		})
	}
}
