package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// handleErrorsCaddyfile is oidc_auth and scope_trim with errors below the
// site's routes: handleErrors is the site's handle_errors block, or "".
func handleErrorsCaddyfile(handleErrors string) string {
	return `{
	admin {$SIDECAR_ADMIN}
}

http://{$SIDECAR_ADDR} {
	handle /static/* {
		error "no such file" 404
	}
	handle {
		oidc_auth {
			issuer {$ISSUER} {
				audience connector-api
			}
		}
		scope_trim {
			policies {$POLICIES}
			hash_key {env.SCOPE_TRIM_HASH_KEY}
		}
		reverse_proxy {$UPSTREAM}
	}
` + handleErrors + `}
`
}

// TestHeadersRefusalsUnderHandleErrors: a server whose only errors route
// handles 404 still answers every refusal with its problem+json body and,
// for oidc_auth, its WWW-Authenticate challenge (Caddy would otherwise send
// an empty error response); its 404 page still renders; a server without
// handle_errors answers the same refusals the same way.
func TestHeadersRefusalsUnderHandleErrors(t *testing.T) {
	iss := StartIssuer(t)
	up := StartUpstream(t, answer(200, "text/html", "<p>ada@example.com</p>"))
	policy := filepath.Join(t.TempDir(), "headers.json")
	if err := os.WriteFile(policy, []byte(headersPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ISSUER": iss.URL, "UPSTREAM": up.Addr, "POLICIES": policy, "SCOPE_TRIM_HASH_KEY": scopeTrimHashKey}
	tok := iss.MustMint(iss.AccessClaims("user-42", "connector-api", devidp.Claims{"scope": "contacts:read"}))
	expired := iss.MustMint(iss.AccessClaims("user-42", "connector-api", devidp.Claims{"exp": 1000}))

	for name, block := range map[string]string{
		"handle_errors 404": "\thandle_errors 404 {\n\t\trespond \"custom 404 page\" 404\n\t}\n",
		"no handle_errors":  "",
	} {
		t.Run(name, func(t *testing.T) {
			s := StartSidecarConfig(t, handleErrorsCaddyfile(block), env)
			for _, c := range []struct {
				path, token, reason, challenge string
				status                         int
			}{
				{"/v1/contacts", "", "token_missing", `Bearer realm="privacy-sidecar"`, 401},
				{"/v1/contacts", expired, "token_expired", `Bearer realm="privacy-sidecar", error="invalid_token"`, 401},
				{"/v1/unknown", tok, "no_policy", "", 403},
				{"/v1/contacts", tok, "upstream_not_json", "", 502},
			} {
				resp, body := s.Get(t, c.path, c.token)
				var p struct {
					Status int    `json:"status"`
					Reason string `json:"reason"`
				}
				if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/problem+json" ||
					json.Unmarshal(body, &p) != nil || p.Reason != c.reason || p.Status != c.status {
					t.Fatalf("%s %s: %d %q %s; want the %d %s problem", c.path, c.reason, resp.StatusCode, resp.Header.Get("Content-Type"), body, c.status, c.reason)
				}
				if got := resp.Header.Get("WWW-Authenticate"); got != c.challenge {
					t.Fatalf("%s: WWW-Authenticate %q, want %q", c.reason, got, c.challenge)
				}
				assertWithheld(t, resp, body, "ada@example.com")
			}
			resp, body := s.Get(t, "/static/logo.png", "")
			want := "custom 404 page"
			if block == "" {
				want = "" // Caddy's own empty error response
			}
			if resp.StatusCode != http.StatusNotFound || string(body) != want {
				t.Fatalf("404: %d %q, want %q", resp.StatusCode, body, want)
			}
		})
	}
}
