package integration

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// TestScopeTrimRefusesBeforeProxying covers the refusals decided on the
// request alone: the upstream is never called.
func TestScopeTrimRefusesBeforeProxying(t *testing.T) {
	s := startScopeTrim(t, scopeTrimCaddyfile, nil)
	tests := []struct {
		name    string
		method  string
		path    string
		token   string
		headers []string
		status  int
		reason  string
	}{
		{"no endpoint matches", "GET", "/v1/admin/users", s.token(t, "contacts:read"), nil, 403, "no_policy"},
		{"method not in the policy", "DELETE", "/v1/contacts/c1", s.token(t, "contacts:read"), nil, 403, "no_policy"},
		{"dot segments", "GET", "/v1/contacts/%2e%2e/admin", s.token(t, "contacts:read"), nil, 403, "no_policy"},
		{"scopes allow nothing here", "GET", "/v1/contacts", s.token(t, "deals:read"), nil, 403, "insufficient_scope"},
		{"a role unknown to the policy", "GET", "/v1/contacts", s.token(t, "", "admin"), nil, 403, "insufficient_scope"},
		{"websocket upgrade", "GET", "/v1/contacts", s.token(t, "contacts:read"), []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}, 400, "upgrade_refused"},
		{"h2c upgrade", "GET", "/v1/contacts", s.token(t, "contacts:read"), []string{"Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings", "HTTP2-Settings: AAMAAABkAAQAAP__"}, 400, "upgrade_refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.upstream.Reset()
			resp, body := s.sidecar.Do(t, NewRequest(t, tt.method, tt.path, tt.token, tt.headers...))
			assertScopeTrimRefused(t, resp, body, tt.status, tt.reason)
			s.upstream.AssertNotCalled(t)
		})
	}
	t.Run("no token", func(t *testing.T) {
		s.upstream.Reset()
		resp, body := s.sidecar.Get(t, "/v1/contacts", "")
		if resp.StatusCode != 401 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		s.upstream.AssertNotCalled(t)
	})
}

// TestScopeTrimRefusesUpstreamAnswers covers every answer the trimmer
// cannot vouch for: 502 with its reason, and nothing of the body forwarded.
func TestScopeTrimRefusesUpstreamAnswers(t *testing.T) {
	s := startScopeTrim(t, scopeTrimCaddyfile, map[string]string{"MAX_BODY": "16KiB"})
	tok := s.token(t, "contacts:read")
	gz := func(body string) string {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(body))
		w.Close()
		return b.String()
	}
	bomb := `{"data":[{"id":"` + strings.Repeat("A", 4<<20) + `","email":"ada@example.com"}]}`
	endless := func(contentType, chunk string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.Header().Set("X-Upstream-Marker", "1")
			for i := 0; i < 200000; i++ {
				if _, err := w.Write([]byte(chunk)); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}
	}
	marker := "X-Upstream-Marker: 1"
	tests := []struct {
		name   string
		answer http.HandlerFunc
		reason string
	}{
		{"invalid JSON", crmAnswer(`{"data":[{"id":"c1","email":"ada@example.com"}`, marker), "upstream_invalid_json"},
		{"invalid UTF-8", crmAnswer("{\"data\":[{\"id\":\"c\xff\",\"email\":\"ada@example.com\"}]}", marker), "upstream_invalid_utf8"},
		{"trailing data", crmAnswer(`{"data":[]} {"data":[{"email":"ada@example.com"}]}`, marker), "upstream_invalid_json"},
		{"JSONP", crmAnswer(`callback(`+crmContacts+`);`, marker), "upstream_invalid_json"},
		{"XSSI prefix", crmAnswer(")]}'\n"+crmContacts, marker), "upstream_invalid_json"},
		{"duplicate key", crmAnswer(`{"data":[{"id":"c1","ssn":"x","ssn":"123-45-6789"}]}`, marker), "upstream_duplicate_key"},
		{"duplicate key, one escaped", crmAnswer(`{"data":[{"id":"c1","\u0069d":"ada@example.com"}]}`, marker), "upstream_duplicate_key"},
		{"too deep", crmAnswer(`{"data":[{"id":`+strings.Repeat("[", 80)+strings.Repeat("]", 80)+`,"email":"ada@example.com"}]}`, marker), "upstream_too_deep"},
		{"over max_body", crmAnswer(`{"data":[`+strings.Repeat(`{"id":"c1","email":"ada@example.com"},`, 1000)+`{}]}`, marker), "upstream_too_large"},
		{"endless chunked body", endless("application/json", `{"data":[{"email":"ada@example.com"}]},`), "upstream_too_large"},
		{"not JSON", answer(200, "text/html", crmContacts, marker), "upstream_not_json"},
		{"JSON labelled text/plain", answer(200, "text/plain", crmContacts, marker), "upstream_not_json"},
		{"no content type", answer(200, "", crmContacts, marker), "upstream_not_json"},
		{"brotli", crmAnswer(crmContacts, "Content-Encoding: br", marker), "upstream_encoding"},
		{"gzip bomb", crmAnswer(gz(bomb), "Content-Encoding: gzip", marker), "upstream_too_large"},
		{"206 partial content", answer(206, "application/json", crmContacts, "Content-Range: bytes 0-100/5000", marker), "upstream_partial"},
		{"Content-Range on a 200", crmAnswer(crmContacts, "Content-Range: bytes 0-100/5000", marker), "upstream_partial"},
		{"server-sent events", endless("text/event-stream", "data: {\"email\":\"ada@example.com\"}\n\n"), "upstream_event_stream"},
		{"NDJSON with a bad first record", answer(200, "application/x-ndjson", `{"data":[{"id":"c1","id":"ada@example.com"}]}`+"\n", marker), "upstream_duplicate_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.respond(tt.answer)
			resp, body := s.sidecar.Get(t, "/v1/contacts", tok)
			assertScopeTrimRefused(t, resp, body, 502, tt.reason)
			if s.upstream.Calls() != 1 {
				t.Fatalf("the upstream was called %d times", s.upstream.Calls())
			}
		})
	}

	// the sidecar is still healthy after all of that
	s.respond(crmAnswer(crmContacts))
	if resp, body := s.sidecar.Get(t, "/v1/contacts", tok); resp.StatusCode != 200 {
		t.Fatalf("after the refusals: %d %s", resp.StatusCode, body)
	}
}

// TestScopeTrimNDJSONBadRecordEndsTheStream: once records were sent, a bad
// one cannot become a 502; the stream is cut and the record never sent.
func TestScopeTrimNDJSONBadRecordEndsTheStream(t *testing.T) {
	s := startScopeTrim(t, scopeTrimCaddyfile, nil)
	s.respond(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Write([]byte(`{"data":[{"id":"c1","owner_id":"u7","email":"ada@example.com"}]}` + "\n"))
		w.(http.Flusher).Flush()
		w.Write([]byte("{\"data\":[{\"id\":\"c2\",\"owner_id\":\"u7\",\"ssn\":\"123-45-6789\",\"bad\":\"\xff\"}]}\n"))
		w.Write([]byte(`{"data":[{"id":"c3","owner_id":"u7","email":"bob@example.org"}]}` + "\n"))
	})
	req := NewRequest(t, "GET", s.sidecar.URL+"/v1/contacts/export", s.token(t, "contacts:read"))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(resp.Body)
	if readErr == nil {
		t.Fatalf("the stream ended normally: %q", body)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), `{"data":[{"id":"c1","owner_id":"u7"}]}`+"\n") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	assertWithheld(t, resp, body, crmSecrets...)
	if strings.Contains(string(body), "c3") {
		t.Fatalf("a record after the bad one was sent: %q", body)
	}
}

// TestScopeTrimWithoutIdentityRefuses: scope_trim without oidc_auth before
// it trims for nobody.
func TestScopeTrimWithoutIdentityRefuses(t *testing.T) {
	up := StartUpstream(t, crmAnswer(crmContacts))
	sc := StartSidecar(t, "caddyfiles/test/scope_trim_noauth.Caddyfile", map[string]string{"UPSTREAM": up.Addr, "SCOPE_TRIM_HASH_KEY": scopeTrimHashKey})
	resp, body := sc.Get(t, "/v1/contacts", "")
	assertScopeTrimRefused(t, resp, body, 500, "identity_missing")
	up.AssertNotCalled(t)
}

// TestScopeTrimRefusesBadPolicies: the binary refuses a config whose policy
// is wrong, naming the file and the problem.
func TestScopeTrimRefusesBadPolicies(t *testing.T) {
	endpoint := `{"match":{"methods":["GET"],"path":"/v1/x*"},"fields":{"x:read":["data.#.id"]}}`
	tests := []struct{ name, policy, want string }{
		{"unknown scope in roles", `{"connector":"c","version":"1","roles":{"rep":["x:read","x:write"]},"endpoints":[` + endpoint + `]}`, "unknown scope \\\"x:write"},
		{"bad path", `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/v1/x"},"fields":{"x:read":["data..id"]}}]}`, "empty key"},
		{"gjson query as a path", `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/v1/x"},"fields":{"x:read":["data.#(age>1)"]}}]}`, "whole segment"},
		{"duplicate endpoint", `{"connector":"c","version":"1","endpoints":[` + endpoint + `,` + endpoint + `]}`, "duplicate endpoint"},
		{"duplicate key in the policy", `{"connector":"c","connector":"d","version":"1","endpoints":[` + endpoint + `]}`, "duplicate key"},
		{"hash without hash_key", `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/v1/x"},"fields":{"x:read":[{"path":"a","transform":"hash"}]}}]}`, "hash_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			policy := filepath.Join(dir, "bad.json")
			os.WriteFile(policy, []byte(tt.policy), 0o600)
			caddyfile := filepath.Join(dir, "Caddyfile")
			os.WriteFile(caddyfile, []byte("{\n\tadmin off\n}\n:0 {\n\tscope_trim {\n\t\tpolicies "+policy+"\n\t}\n\trespond ok\n}\n"), 0o600)
			cmd := exec.Command(sidecarBin, "validate", "--config", caddyfile, "--adapter", "caddyfile")
			cmd.Env = append(os.Environ(), "SCOPE_TRIM_HASH_KEY=")
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the config was accepted:\n%s", out)
			}
			if !strings.Contains(string(out), tt.want) || (tt.want != "hash_key" && !strings.Contains(string(out), policy)) {
				t.Fatalf("the error does not name the file and %q:\n%s", tt.want, out)
			}
		})
	}
}
