package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// headersPolicy is the policy of the header tests: a rate-limit header for
// the whole file; on contacts a checked Link, a redirects rule naming its
// own paths and the cursor parameter, and a hash transform for analysts;
// Set-Cookie only on deals; a request allowlist on notes.
const headersPolicy = `{
	"connector": "crm",
	"version": "headers-test",
	"response_headers": ["X-RateLimit-Remaining"],
	"endpoints": [
		{
			"match": {"methods": ["GET"], "path": "/v1/contacts*"},
			"fields": {
				"contacts:read": ["data.#.id", "data.#.name", "next_cursor"],
				"contacts:analytics": ["data.#.id", {"path": "data.#.email", "transform": "hash"}]
			},
			"error_fields": ["error.code"],
			"response_headers": ["Link"],
			"redirects": {"paths": ["/v1/contacts", "/v1/contacts/*"], "query": ["cursor"]}
		},
		{
			"match": {"methods": ["GET"], "path": "/v1/deals*"},
			"fields": {"deals:read": ["data.#.id"]},
			"response_headers": ["Set-Cookie"]
		},
		{
			"match": {"methods": ["POST"], "path": "/v1/notes"},
			"fields": {"notes:write": ["id"]},
			"request_headers": ["If-Match"]
		}
	]
}`

// headersCaddyfile is the whole chain on headersPolicy. servers is the
// servers block's body (max_header_size, underscore and dot allowlists);
// audit is true to put audit_log first.
func headersCaddyfile(servers string, audit bool) string {
	var b strings.Builder
	b.WriteString("{\n\tadmin {$SIDECAR_ADMIN}\n\tservers {\n" + servers + "\n\t}\n}\n\nhttp://{$SIDECAR_ADDR} {\n")
	if audit {
		b.WriteString("\taudit_log {\n\t\toutput file {$AUDIT_FILE}\n\t\tpseudonym_key {env.AUDIT_KEY}\n\t}\n")
	}
	b.WriteString(`	oidc_auth {
		issuer {$ISSUER} {
			audience connector-api
		}
		forward_header X-Auth-Subject sub
	}
	tenant_guard {
		inject
	}
	scope_trim {
		policies {$POLICIES}
		hash_key {env.SCOPE_TRIM_HASH_KEY}
	}
	reverse_proxy {$UPSTREAM}
}
`)
	return b.String()
}

// headersSetup is a sidecar running headersCaddyfile in front of an
// upstream whose answer each test chooses.
type headersSetup struct {
	iss      *devidp.Issuer
	upstream *Upstream
	sidecar  *Sidecar
	audit    string // the audit file, "" without audit_log
	records  int    // records written so far
	env      map[string]string

	mu     sync.Mutex
	answer http.HandlerFunc
}

func startHeaders(t *testing.T, servers string, audit bool) *headersSetup {
	t.Helper()
	s := &headersSetup{iss: StartIssuer(t), answer: crmAnswer(`{"data":[{"id":"c1","name":"Ada","email":"ada@example.com"}],"next_cursor":"c2"}`)}
	s.upstream = StartUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := s.answer
		s.mu.Unlock()
		h(w, r)
	})
	dir := t.TempDir()
	policy := filepath.Join(dir, "headers.json")
	if err := os.WriteFile(policy, []byte(headersPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	s.env = map[string]string{
		"ISSUER": s.iss.URL, "UPSTREAM": s.upstream.Addr, "POLICIES": policy,
		"SCOPE_TRIM_HASH_KEY": scopeTrimHashKey, "AUDIT_KEY": auditKey,
	}
	if audit {
		s.audit = filepath.Join(dir, "audit.jsonl")
		s.env["AUDIT_FILE"] = s.audit
	}
	s.sidecar = StartSidecarConfig(t, headersCaddyfile(servers, audit), s.env)
	return s
}

// respond makes the upstream answer with h from now on.
func (s *headersSetup) respond(h http.HandlerFunc) {
	s.mu.Lock()
	s.answer = h
	s.mu.Unlock()
	s.upstream.Reset()
}

// token mints a token for tenant with the scope string.
func (s *headersSetup) token(tenant, scope string) string {
	return s.iss.MustMint(s.iss.AccessClaims("user-42", "connector-api", devidp.Claims{"scope": scope, "tenant_id": tenant}))
}

// do sends req and returns the response, its body and the request's audit
// record (zero without audit_log).
func (s *headersSetup) do(t *testing.T, req *http.Request) (*http.Response, []byte, auditRecord) {
	t.Helper()
	resp, body := s.sidecar.Do(t, req)
	if s.audit == "" {
		return resp, body, auditRecord{}
	}
	s.records++
	if resp.StatusCode < 300 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		s.records++ // a stream has an opening and a closing record
	}
	return resp, body, waitAudit(t, s.audit, s.records)[s.records-1]
}

// get is do for a GET with raw "Name: value" headers.
func (s *headersSetup) get(t *testing.T, path, token string, headers ...string) (*http.Response, []byte, auditRecord) {
	t.Helper()
	return s.do(t, NewRequest(t, http.MethodGet, path, token, headers...))
}

// foldName is the folding of CGI-style upstreams, written independently of
// the sidecar's.
func foldName(name string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
}

// receivedAs returns the names under which the upstream's last request
// carried a header that folds to name, with their values.
func receivedAs(r Received, name string) map[string][]string {
	out := map[string][]string{}
	for k, v := range r.Header {
		if foldName(k) == foldName(name) {
			out[k] = v
		}
	}
	return out
}
