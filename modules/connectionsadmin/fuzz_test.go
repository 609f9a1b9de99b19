package connectionsadmin

import (
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// fixedError matches every error readCredential may return: fixed texts
// that name at most a known member, never a value.
var fixedError = regexp.MustCompile(`^(the body could not be read` +
	`|the body is larger than 65536 bytes` +
	`|the body must be a JSON object: \{"refresh_token": "\.\.\."\} or \{"client_id": "\.\.\.", "client_secret": "\.\.\."\}` +
	`|the body is not valid JSON` +
	`|unknown member in the body: only refresh_token, client_id and client_secret are accepted` +
	`|member (refresh_token|client_id|client_secret) (appears twice|must be a string)` +
	`|the body must hold one JSON object and nothing after it)$`)

// FuzzReadCredential: the connect body parser never panics, accepts only
// one object of known string members each once (what encoding/json reads
// from it is exactly what was accepted), and its errors never repeat a
// value that was sent. Seeds: testdata/fuzz/FuzzReadCredential.
func FuzzReadCredential(f *testing.F) {
	for _, s := range []string{
		`{"refresh_token":"rt-1"}`,
		`{"client_id":"a","client_secret":"b"}`,
		`{}`,
		`{"refresh_token":"a","refresh_token":"b"}`,
		`{"refresh_token":"a","Refresh_Token":"b"}`,
		`{"refresh_token":"secret-value-xyz"} {}`,
		`{"refresh_token":["secret-value-xyz"]}`,
		`{"refresh_token":"\u0000secret"}`,
		`[{"refresh_token":"x"}]`,
		`{"refresh_\u0074oken":"x"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("PUT", "/sidecar/connections/acme/crm", strings.NewReader(body))
		cred, err := readCredential(r)
		if err != nil {
			if !fixedError.MatchString(err.Error()) {
				t.Fatalf("the error %q is not one of the fixed texts: it may repeat what was sent", err)
			}
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("accepted a body encoding/json refuses: %v", err)
		}
		got := map[string]string{}
		for k, raw := range m {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatalf("accepted a non-string member %q", k)
			}
			got[k] = s
		}
		if got["refresh_token"] != cred.RefreshToken || got["client_id"] != cred.ClientID || got["client_secret"] != cred.ClientSecret || len(got) > 3 {
			t.Fatalf("accepted %+v, encoding/json reads %v", cred, got)
		}
	})
}
