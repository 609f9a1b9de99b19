package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// scopeTrimHashKey is the test hash key passed as SCOPE_TRIM_HASH_KEY.
const scopeTrimHashKey = "integration-hash-key-0123456789"

// crmContacts is a contacts page as the CRM upstream answers it.
const crmContacts = `{"data":[` +
	`{"id":"c1","name":"Ada Lovelace","company":"ACME","owner_id":"u7","created_at":"2026-01-02","email":"ada@example.com","phone":"+44 20 7946 0958","address":"12 Byron St","notes":"prefers tea","ssn":"123-45-6789","lead_score":97},` +
	`{"id":"c2","name":"Bob Page","company":"Globex","owner_id":"u8","created_at":"2026-02-03","email":"bob@example.org","phone":"555-0100-2233","address":"1 Main Rd","notes":null,"ssn":"987-65-4321","lead_score":12}` +
	`],"next_cursor":"cur_2","total":2,"debug":{"query":"select * from contacts","host":"db-7"}}`

// crmSecrets are values of crmContacts that a sales rep must never see,
// anywhere in a response.
var crmSecrets = []string{
	"ada@example.com", "bob@example.org", "7946", "0958", "555-0100", "Byron", "prefers tea",
	"123-45-6789", "987-65-4321", "select *", "db-7", "lead_score",
}

// scopeTrimSetup is a sidecar running oidc_auth and scope_trim on the CRM
// policy in front of an upstream whose answer each test chooses.
type scopeTrimSetup struct {
	iss      *devidp.Issuer
	upstream *Upstream
	sidecar  *Sidecar

	mu     sync.Mutex
	answer http.HandlerFunc
}

func startScopeTrim(t *testing.T, caddyfile string, env map[string]string) *scopeTrimSetup {
	t.Helper()
	s := &scopeTrimSetup{iss: StartIssuer(t)}
	s.answer = crmAnswer(crmContacts)
	s.upstream = StartUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := s.answer
		s.mu.Unlock()
		h(w, r)
	})
	all := map[string]string{"ISSUER": s.iss.URL, "UPSTREAM": s.upstream.Addr, "SCOPE_TRIM_HASH_KEY": scopeTrimHashKey}
	for k, v := range env {
		all[k] = v
	}
	s.sidecar = StartSidecar(t, caddyfile, all)
	return s
}

// respond makes the upstream answer with h from now on, and forgets what it
// received so far.
func (s *scopeTrimSetup) respond(h http.HandlerFunc) {
	s.mu.Lock()
	s.answer = h
	s.mu.Unlock()
	s.upstream.Reset()
}

// crmUser are the claims of a CRM user who owns (or whose team owns)
// every record of crmContacts, for policies/crm.json's record rules.
var crmUser = devidp.Claims{"crm_user_id": "u7", "crm_team": []string{"u7", "u8"}}

// token mints an access token with the given scope string and roles, for
// a user who is CRM user u7 in a team with u8 (crmUser).
func (s *scopeTrimSetup) token(t *testing.T, scope string, roles ...string) string {
	t.Helper()
	extra := devidp.Claims{"scope": scope, "crm_user_id": crmUser["crm_user_id"], "crm_team": crmUser["crm_team"]}
	if scope == "" {
		extra["scope"] = nil
	}
	if len(roles) > 0 {
		extra["roles"] = roles
	}
	return s.iss.MustMint(s.iss.AccessClaims("user-42", "connector-api", extra))
}

// crmAnswer answers body as application/json with extra "Name: value" headers.
func crmAnswer(body string, headers ...string) http.HandlerFunc {
	return answer(200, "application/json", body, headers...)
}

func answer(status int, contentType, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		for _, h := range headers {
			k, v, _ := strings.Cut(h, ": ")
			w.Header().Add(k, v)
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}

// assertWithheld fails if any secret appears in the response's body,
// headers or trailers.
func assertWithheld(t *testing.T, resp *http.Response, body []byte, secrets ...string) {
	t.Helper()
	var all strings.Builder
	all.Write(body)
	for k, vs := range resp.Header {
		all.WriteString("\n" + k + ": " + strings.Join(vs, ", "))
	}
	for k, vs := range resp.Trailer {
		all.WriteString("\ntrailer " + k + ": " + strings.Join(vs, ", "))
	}
	for _, s := range secrets {
		if strings.Contains(all.String(), s) {
			t.Fatalf("withheld value %q reached the client:\n%s", s, all.String())
		}
	}
}

// assertScopeTrimRefused checks a refusal's status, problem+json reason and
// headers, and that no secret and no upstream header reached the client.
func assertScopeTrimRefused(t *testing.T, resp *http.Response, body []byte, status int, reason string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	var p struct {
		Status int    `json:"status"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Reason != reason || p.Status != status {
		t.Fatalf("body %s, want a problem with reason %s", body, reason)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q", ct)
	}
	if resp.Header.Get("X-Upstream-Marker") != "" || resp.Header.Get("Etag") != "" {
		t.Fatalf("an upstream header reached the client on a refusal: %v", resp.Header)
	}
	assertWithheld(t, resp, body, crmSecrets...)
}
