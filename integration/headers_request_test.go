package integration

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// overrideNames are the method and URL override headers of issue 11.
var overrideNames = []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-Original-URL", "X-Rewrite-URL"}

// aliasServers lets the underscore and dot spellings of the guarded names
// reach the handlers: Caddy drops such names by default, and then drops the
// hyphenated spellings of the names it lets through (modules/caddyhttp
// server.go, ExpectedUnderscoreHeaders), so each spelling is tested on the
// server that lets it reach the sidecar's modules.
func aliasServers() string {
	names := append([]string{"X-Auth-Subject", "X-User-Email", "X-Tenant-ID"}, overrideNames...)
	var under, dot []string
	for _, n := range names {
		under = append(under, strings.ReplaceAll(strings.ToLower(n), "-", "_"))
		dot = append(dot, strings.ReplaceAll(strings.ToLower(n), "-", "."))
	}
	return "\t\texpected_underscore_headers " + strings.Join(under, " ") + "\n\t\texpected_dot_headers " + strings.Join(dot, " ")
}

// spellings returns name as a client may disguise it on each kind of server.
func spellings(name string, aliases bool) []string {
	if aliases {
		return []string{strings.ReplaceAll(name, "-", "_"), strings.ReplaceAll(name, "-", "."), strings.ReplaceAll(strings.ToUpper(name), "-", "_")}
	}
	return []string{name, strings.ToLower(name), strings.ToUpper(name)}
}

// TestHeadersDisguisedCopiesNeverReachTheConnector: for each module, every
// spelling of a header it guards (case, '_', '.', and as a Connection token)
// is kept from the connector and recorded as spoofed; the connector gets
// only the verified values.
func TestHeadersDisguisedCopiesNeverReachTheConnector(t *testing.T) {
	for _, aliases := range []bool{false, true} {
		servers := ""
		name := "default server"
		if aliases {
			servers, name = aliasServers(), "server allowing '_' and '.' names"
		}
		t.Run(name, func(t *testing.T) {
			s := startHeaders(t, servers, true)
			tok := s.token("acme", "contacts:read")
			check := func(t *testing.T, header string) {
				t.Helper()
				resp, body, rec := s.get(t, "/v1/contacts", tok, header)
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %d %s", header, resp.StatusCode, body)
				}
				up := s.upstream.Last(t)
				if got := receivedAs(up, "X-Auth-Subject"); len(got) != 1 || !slices.Equal(got["X-Auth-Subject"], []string{"user-42"}) {
					t.Fatalf("%s: the connector got identity headers %v", header, got)
				}
				if got := receivedAs(up, "X-Tenant-ID"); len(got) != 1 || !slices.Equal(got["X-Tenant-Id"], []string{"acme"}) {
					t.Fatalf("%s: the connector got tenant headers %v", header, got)
				}
				for _, n := range append([]string{"X-User-Email"}, overrideNames...) {
					if got := receivedAs(up, n); len(got) > 0 {
						t.Fatalf("%s: the connector got %v", header, got)
					}
				}
				if len(rec.SpoofedHeaders) == 0 || rec.SecurityEvent != "spoofed_identity_header" {
					t.Fatalf("%s: record %+v", header, rec)
				}
			}
			modules := map[string][]string{
				"oidc_auth":    {"X-Auth-Subject", "X-User-Email"},
				"tenant_guard": {"X-Tenant-ID"},
				"scope_trim":   overrideNames,
			}
			for module, names := range modules {
				t.Run(module, func(t *testing.T) {
					for _, n := range names {
						for _, spelled := range spellings(n, aliases) {
							if !aliases && module == "tenant_guard" {
								continue // the header itself, not a copy: tenant_guard judges its value (tenantguard_*_test.go)
							}
							check(t, spelled+": globex-admin")
						}
					}
				})
			}
			t.Run("Connection tokens", func(t *testing.T) {
				check(t, "Connection: x.auth.subject, X_TENANT_ID, x-user-email")
				rec := readAudit(t, s.audit)[s.records-1]
				for _, want := range []string{"Connection: X-Auth-Subject", "Connection: X-Tenant-Id", "Connection: X-User*"} {
					if !slices.Contains(rec.SpoofedHeaders, want) {
						t.Fatalf("record lists %q, want %q among them", rec.SpoofedHeaders, want)
					}
				}
			})
		})
	}
}

// TestHeadersMethodOverrides: each override header, in each spelling that
// reaches the sidecar, is removed before the connector (the request runs as
// the GET the policy judged) and recorded like a spoofed identity header.
func TestHeadersMethodOverrides(t *testing.T) {
	for _, aliases := range []bool{false, true} {
		servers := ""
		if aliases {
			servers = aliasServers()
		}
		s := startHeaders(t, servers, true)
		tok := s.token("acme", "contacts:read")
		for _, n := range overrideNames {
			for _, spelled := range spellings(n, aliases) {
				value := "DELETE"
				if strings.HasSuffix(n, "URL") {
					value = "/v1/admin/purge"
				}
				resp, body, rec := s.get(t, "/v1/contacts", tok, spelled+": "+value)
				up := s.upstream.Last(t)
				if resp.StatusCode != 200 || up.Method != http.MethodGet || up.Path != "/v1/contacts" {
					t.Fatalf("%s: %d %s; the connector got %s %s", spelled, resp.StatusCode, body, up.Method, up.Path)
				}
				for k, v := range up.Header {
					if slices.Contains(v, value) {
						t.Fatalf("%s: the connector got %s: %q", spelled, k, v)
					}
				}
				if len(rec.SpoofedHeaders) != 1 || foldName(rec.SpoofedHeaders[0]) != foldName(n) || rec.SecurityEvent != "spoofed_identity_header" {
					t.Fatalf("%s: spoofed_headers %q, security_event %q", spelled, rec.SpoofedHeaders, rec.SecurityEvent)
				}
			}
		}
		// a refused request records them too
		spelled := spellings("X-HTTP-Method-Override", aliases)[0]
		resp, _, rec := s.get(t, "/v1/unknown", tok, spelled+": DELETE")
		if resp.StatusCode != 403 || rec.Reason != "no_policy" || len(rec.SpoofedHeaders) != 1 || foldName(rec.SpoofedHeaders[0]) != "x-http-method-override" {
			t.Fatalf("refused request with %s: %d, record %+v", spelled, resp.StatusCode, rec)
		}
	}
}

// TestHeadersRequestAllowlist: on an endpoint with request_headers, only the
// listed names, the default set and the verified headers reach the connector.
func TestHeadersRequestAllowlist(t *testing.T) {
	s := startHeaders(t, "", true)
	s.respond(crmAnswer(`{"id":"n1","body":"secret"}`))
	tok := s.token("acme", "notes:write")
	req := NewRequest(t, http.MethodPost, "/v1/notes", tok,
		"Content-Type: application/json", "Accept: application/json", `If-Match: "v3"`,
		"Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "Tracestate: vendor=1",
		"Cookie: session=abc", "User-Agent: crm-sync/1.0", "X-Debug-User: ada@example.com", "X-Auth-Subject: admin")
	req.Body = http.NoBody
	resp, body, _ := s.do(t, req)
	if resp.StatusCode != 200 || string(body) != `{"id":"n1"}` {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	up := s.upstream.Last(t)
	for k, want := range map[string]string{
		"Content-Type": "application/json", "Accept": "application/json", "If-Match": `"v3"`,
		"Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "Tracestate": "vendor=1",
		"Accept-Encoding": "identity", "X-Auth-Subject": "user-42", "X-Tenant-Id": "acme",
		"Cookie": "", "User-Agent": "", "X-Debug-User": "",
	} {
		if got := up.Header.Get(k); got != want {
			t.Errorf("the connector got %s %q, want %q", k, got, want)
		}
	}

	// without request_headers on the endpoint, the client's headers pass
	// (all but the override family)
	s.respond(crmAnswer(`{"data":[]}`))
	s.get(t, "/v1/contacts", s.token("acme", "contacts:read"), "Cookie: session=abc", "X-Debug-User: someone")
	if up := s.upstream.Last(t); up.Header.Get("Cookie") != "session=abc" || up.Header.Get("X-Debug-User") != "someone" {
		t.Fatalf("without an allowlist the connector got %v", up.Header)
	}
}
