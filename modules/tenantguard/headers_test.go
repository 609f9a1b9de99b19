package tenantguard

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

var safeSetOracle = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

func TestValidTenantID(t *testing.T) {
	for _, s := range []string{"acme", "a", "ACME-01_x.y", strings.Repeat("a", 128), "4711"} {
		if !ValidTenantID(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", " acme", "acme ", "ac me", "acme,globex", "acmé", "acme\x00", "a/b", "a:b", `"acme"`, strings.Repeat("a", 129), "ａcme"} {
		if ValidTenantID(s) {
			t.Errorf("%q accepted", s)
		}
	}
}

// expectedVerdict is the rules of the issue written independently of the
// handler: the reason a request with these raw headers (already parsed by
// net/http) must be refused with, or "" when it must pass.
func expectedVerdict(h http.Header, tokenTenant string, inject bool) string {
	var values []string
	for name, vv := range h {
		if strings.EqualFold(name, "X-Tenant-ID") {
			values = append(values, vv...)
		}
	}
	switch {
	case len(values) == 0 && inject:
		return ""
	case len(values) == 0:
		return sidecar.ReasonTenantMissing
	case len(values) > 1 || !safeSetOracle.MatchString(values[0]):
		return sidecar.ReasonTenantMalformed
	case values[0] != tokenTenant:
		return sidecar.ReasonTenantMismatch
	}
	return ""
}

// oracleFold is the header-name folding of CGI-style backends, written
// independently of sidecar.SameHeaderName.
func oracleFold(name string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
}

// checkForwarded fails unless h, as the upstream would receive it, holds
// the tenant header exactly once, spelled canonically, equal to tenant, no
// disguised copy, and no Connection token that would strip it.
func checkForwarded(h http.Header, tenant string) string {
	for name, vv := range h {
		if oracleFold(name) != "x-tenant-id" {
			continue
		}
		if name != "X-Tenant-Id" {
			return "disguised copy " + name + " forwarded"
		}
		if len(vv) != 1 || vv[0] != tenant {
			return "tenant header forwarded as " + strings.Join(vv, "|")
		}
	}
	if len(h.Values("X-Tenant-Id")) != 1 {
		return "tenant header not forwarded"
	}
	for _, v := range h.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if oracleFold(strings.TrimSpace(tok)) == "x-tenant-id" {
				return "Connection still names the tenant header"
			}
		}
	}
	return ""
}

// runRaw parses a raw header block as the server would and runs the guard on
// it with a token for tokenTenant. ok is false when net/http itself refuses
// the request.
func runRaw(m *TenantGuard, headerBlock, tokenTenant string) (parsed http.Header, code int, reason string, next *recorder, ok bool) {
	raw := "GET /x HTTP/1.1\r\nHost: h\r\n" + headerBlock + "\r\n"
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		return nil, 0, "", nil, false
	}
	parsed = r.Header.Clone()
	caddyhttp.NewTestReplacer(r)
	r, d := sidecar.WithDecision(r)
	r = sidecar.WithIdentity(r, identity(issuerAcme, map[string]any{"tenant_id": tokenTenant}))
	w := httptest.NewRecorder()
	next = new(recorder)
	if err := m.ServeHTTP(w, r, next); err != nil {
		return parsed, -1, err.Error(), next, true
	}
	return parsed, w.Code, d.Reason, next, true
}

// judge returns a description of the first broken invariant, or "".
func judge(m *TenantGuard, headerBlock, tokenTenant string) string {
	parsed, code, reason, next, ok := runRaw(m, headerBlock, tokenTenant)
	if !ok {
		return ""
	}
	want := expectedVerdict(parsed, tokenTenant, m.Inject)
	switch {
	case code < 0:
		return "handler returned an error: " + reason
	case want == "" && code != http.StatusOK:
		return "refused " + reason + "; must pass"
	case want != "" && reason != want:
		return "reason " + reason + ", want " + want
	case want != "" && next.calls != 0:
		return "a refused request reached the upstream"
	case want == "":
		return checkForwarded(next.header, tokenTenant)
	}
	return ""
}

// FuzzTenantHeaders feeds arbitrary header blocks through net/http's parser
// and the guard; whatever the client sends, the upstream sees exactly the
// token's tenant once, or nothing.
func FuzzTenantHeaders(f *testing.F) {
	for _, seed := range []string{
		"X-Tenant-ID: acme\r\n",
		"X-Tenant-ID: acme\r\nx-tenant-id: acme\r\n",
		"X-Tenant-ID: acme,globex\r\n",
		"X-Tenant-ID: acme\r\nX_Tenant_ID: globex\r\n",
		"x-tenant_id: acme\r\n",
		"X-Tenant-ID: acme\r\nConnection: close, X-Tenant-ID\r\n",
		"X-Tenant-ID: acme\r\n  globex\r\n",
		"X-Tenant-ID:\r\n",
		"X-Tenant-ID: \tacme \r\n",
		"X-Tenant-ID: ac me\r\n",
	} {
		f.Add(seed, false)
	}
	plain := provision(f, &TenantGuard{})
	inject := provision(f, &TenantGuard{Inject: true})
	f.Fuzz(func(t *testing.T, block string, useInject bool) {
		m := plain
		if useInject {
			m = inject
		}
		if problem := judge(m, block, "acme"); problem != "" {
			t.Fatalf("%s\nheaders:\n%q", problem, block)
		}
	})
}

// FuzzValidTenantID holds the safe set to its documented definition.
func FuzzValidTenantID(f *testing.F) {
	for _, s := range []string{"acme", "", "a b", "acmé", strings.Repeat("x", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidTenantID(s) != safeSetOracle.MatchString(s) {
			t.Fatalf("ValidTenantID(%q) = %v, disagrees with %s", s, ValidTenantID(s), safeSetOracle)
		}
	})
}

// FuzzParseRegistry: no input panics the parser, and whatever it accepts
// holds only valid ids and issuers.
func FuzzParseRegistry(f *testing.F) {
	f.Add([]byte(testRegistry))
	f.Add([]byte(`{"tenants": [{"id": "a", "status": "active", "issuers": ["https://i"], "connectors": [{"id": "c", "state": "connected"}]}]}`))
	f.Add([]byte(`{"tenants": [{"id": "a", "id": "b"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tenants, err := ParseRegistry("fuzz.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tenant registry fuzz.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, tn := range tenants {
			if !ValidTenantID(tn.ID) || len(tn.Issuers) == 0 {
				t.Fatalf("accepted tenant %+v", tn)
			}
			for c := range tn.Connected {
				if !ValidTenantID(c) {
					t.Fatalf("accepted connector %q", c)
				}
			}
		}
	})
}
