package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

const tgCaddyfile = "caddyfiles/test/tenant_guard.Caddyfile"

// tgSetup is caddyfiles/test/tenant_guard.Caddyfile running with two
// issuers (acmeIdP speaks for acme and initech, globexIdP for globex), a
// registry file it can rewrite, and a recording upstream that also keeps
// the request trailers it received.
type tgSetup struct {
	acmeIdP, globexIdP *devidp.Issuer
	upstream           *Upstream
	sidecar            *Sidecar
	registry           string // path of the registry file

	mu       sync.Mutex
	trailers []http.Header
	// hold, when set, is called by the upstream for every request before it
	// answers, so a test can keep a request in flight.
	hold func(r *http.Request)
}

// tgRegistryDoc is the registry the setup starts with, for the two issuers.
func tgRegistryDoc(acmeIssuer, globexIssuer string, acmeCRM, initechStatus string) string {
	return fmt.Sprintf(`{
	"tenants": [
		{
			"id": "acme",
			"status": "active",
			"issuers": [%q],
			"connectors": [
				{"id": "crm", "state": %q},
				{"id": "erp", "state": "disconnected"}
			]
		},
		{
			"id": "globex",
			"status": "active",
			"issuers": [%q],
			"connectors": [{"id": "crm", "state": "connected"}]
		},
		{
			"id": "initech",
			"status": %q,
			"issuers": [%q],
			"connectors": [{"id": "crm", "state": "connected"}]
		}
	]
}
`, acmeIssuer, acmeCRM, globexIssuer, initechStatus, acmeIssuer)
}

func startTenantGuard(t *testing.T) *tgSetup {
	t.Helper()
	s := &tgSetup{acmeIdP: StartIssuer(t), globexIdP: StartIssuer(t)}
	s.upstream = StartUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.trailers = append(s.trailers, r.Trailer.Clone())
		hold := s.hold
		s.mu.Unlock()
		if hold != nil {
			hold(r)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})
	s.registry = filepath.Join(t.TempDir(), "tenants.json")
	s.writeRegistry(t, tgRegistryDoc(s.acmeIdP.URL, s.globexIdP.URL, "connected", "suspended"))
	s.sidecar = StartSidecar(t, tgCaddyfile, map[string]string{
		"ISSUER":   s.acmeIdP.URL,
		"ISSUER2":  s.globexIdP.URL,
		"UPSTREAM": s.upstream.Addr,
		"TENANTS":  s.registry,
	})
	return s
}

func (s *tgSetup) writeRegistry(t testing.TB, doc string) {
	t.Helper()
	if err := os.WriteFile(s.registry, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
}

// token mints an access token of iss for connector-api with extra claims.
func tgToken(iss *devidp.Issuer, extra devidp.Claims) string {
	return iss.MustMint(iss.AccessClaims("alice", "connector-api", extra))
}

// acme is a token of acme's IdP for tenant acme.
func (s *tgSetup) acme() string { return tgToken(s.acmeIdP, devidp.Claims{"tenant_id": "acme"}) }

// tgProblem is a refusal body.
type tgProblem struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// tgAssertRefused checks status, problem+json reason, and that no request
// for path reached the upstream.
func (s *tgSetup) assertRefused(t testing.TB, path string, resp *http.Response, body []byte, status int, reason string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s: status %d, want %d; body %s", path, resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s: Content-Type %q, want application/problem+json", path, ct)
	}
	var p tgProblem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("%s: body is not problem+json: %v: %s", path, err, body)
	}
	if p.Reason != reason || p.Status != status {
		t.Fatalf("%s: refused %d %q, want %d %q; body %s", path, p.Status, p.Reason, status, reason, body)
	}
	s.assertNotReached(t, path)
}

// assertNotReached fails if the upstream ever received a request for path.
func (s *tgSetup) assertNotReached(t testing.TB, path string) {
	t.Helper()
	for _, r := range s.upstream.Received() {
		if r.Path == path {
			t.Fatalf("%s reached the upstream; it must have been refused before", path)
		}
	}
}

// assertForwarded checks the request for path was answered 200 and that
// the upstream received it exactly once with exactly one X-Tenant-ID equal
// to tenant and no disguised copy; it returns what the upstream received.
func (s *tgSetup) assertForwarded(t testing.TB, path string, resp *http.Response, body []byte, tenant string) Received {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: status %d, want 200; body %s", path, resp.StatusCode, body)
	}
	var got []Received
	for _, r := range s.upstream.Received() {
		if r.Path == path {
			got = append(got, r)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%s reached the upstream %d times, want once", path, len(got))
	}
	if problem := tgCheckTenantHeaders(got[0].Header, tenant); problem != "" {
		t.Fatalf("%s: %s; upstream headers %v", path, problem, got[0].Header)
	}
	return got[0]
}

// tgCheckTenantHeaders returns what is wrong with the tenant headers an
// upstream received, or "": exactly one X-Tenant-ID, with exactly tenant,
// and no copy under another case or '_'/'.'/'-' spelling.
func tgCheckTenantHeaders(h http.Header, tenant string) string {
	for name, values := range h {
		folded := strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
		if folded != "x-tenant-id" {
			continue
		}
		if name != "X-Tenant-Id" {
			return "the upstream received a disguised copy " + name
		}
		if len(values) != 1 || values[0] != tenant {
			return fmt.Sprintf("the upstream received X-Tenant-ID %q, want exactly [%s]", values, tenant)
		}
	}
	if len(h.Values("X-Tenant-Id")) != 1 {
		return "the upstream received no X-Tenant-ID"
	}
	return ""
}

// tgRaw writes raw bytes to the sidecar and reads one response, for
// requests a Go client will not send (obsolete line folding, trailers).
func tgRaw(t testing.TB, addr, raw string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}
