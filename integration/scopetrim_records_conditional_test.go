package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// conditionalCRM answers GET /v1/contacts/<id> as a CRM that honours
// conditional requests does (Salesforce's sObject rows answer If-Modified-Since
// with 304): an existing record's answer to a met precondition carries no
// body, a missing record is a 404.
func conditionalCRM(records map[string]string) http.HandlerFunc {
	modified := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := records[strings.TrimPrefix(r.URL.Path, "/v1/contacts/")]
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"no such contact"}`))
			return
		}
		w.Header().Set("Last-Modified", modified.Format(http.TimeFormat))
		if since, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !modified.After(since) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Header.Get("If-None-Match") == "*" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Header.Get("If-Match") != "" && r.Header.Get("If-Match") != "*" {
			w.WriteHeader(http.StatusPreconditionFailed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}
}

// TestRecordRulesConditionalReads: on a single-record endpoint, a
// conditional read cannot tell a record the caller may not see from one
// that does not exist. The preconditions never reach the connector (a 304
// or 412 carries no record the rules could judge), and a body-less answer
// the connector sends anyway is answered as a withheld record is.
func TestRecordRulesConditionalReads(t *testing.T) {
	s := startRecords(t)
	token := s.rep(t, "contacts:read")
	s.respond(conditionalCRM(map[string]string{
		"c1": `{"id":"c1","name":"Ada Lovelace","owner_id":"u7"}`,
		"c3": `{"id":"c3","name":"Cleo Hart","owner_id":"u9"}`,
	}))
	future := time.Now().Add(24 * time.Hour).UTC().Format(http.TimeFormat)
	for _, precondition := range []string{"If-Modified-Since: " + future, "If-None-Match: *", `If-Match: "v1"`} {
		name, _, _ := strings.Cut(precondition, ":")
		t.Run(name, func(t *testing.T) {
			hiddenResp, hidden := s.sidecar.Get(t, "/v1/contacts/c3", token, precondition)
			assertScopeTrimRefused(t, hiddenResp, hidden, 404, "record_not_visible")
			missingResp, missing := s.sidecar.Get(t, "/v1/contacts/c404", token, precondition)
			assertScopeTrimRefused(t, missingResp, missing, 404, "record_not_visible")
			if string(missing) != string(hidden) {
				t.Fatalf("a withheld record and a missing one are told apart:\n%s\n%s", hidden, missing)
			}
			for _, got := range s.upstream.Received() {
				for _, h := range []string{"If-Modified-Since", "If-None-Match", "If-Match", "If-Unmodified-Since"} {
					if v := got.Header.Get(h); v != "" {
						t.Fatalf("the connector received %s: %s on a record read", h, v)
					}
				}
			}
			// the caller's own record comes whole, judged
			resp, body := s.sidecar.Get(t, "/v1/contacts/c1", token, precondition)
			if resp.StatusCode != 200 || string(body) != `{"id":"c1","name":"Ada Lovelace","owner_id":"u7"}` {
				t.Fatalf("own record: %d %s", resp.StatusCode, body)
			}
		})
	}

	// a connector that answers a read without a record, unasked
	for _, status := range []int{http.StatusNotModified, http.StatusNoContent} {
		s.respond(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) })
		resp, body := s.sidecar.Get(t, "/v1/contacts/c3", token)
		assertScopeTrimRefused(t, resp, body, 404, "record_not_visible")
	}
}
