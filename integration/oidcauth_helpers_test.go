package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// oidcSetup is a sidecar running oidc_auth in front of a recording upstream,
// with two development issuers.
type oidcSetup struct {
	iss      *devidp.Issuer // audience connector-api
	iss2     *devidp.Issuer // audience other-api
	upstream *Upstream
	sidecar  *Sidecar
}

// startOIDCSetup runs caddyfile (a path under the repository root) with
// ISSUER, ISSUER2 and UPSTREAM set; extra env entries are added.
func startOIDCSetup(t *testing.T, caddyfile string, extra map[string]string) *oidcSetup {
	t.Helper()
	return startOIDCSetupWith(t, StartIssuer(t), caddyfile, extra)
}

// startOIDCSetupWith is startOIDCSetup with a given first issuer.
func startOIDCSetupWith(t *testing.T, iss *devidp.Issuer, caddyfile string, extra map[string]string) *oidcSetup {
	t.Helper()
	s := &oidcSetup{iss: iss, iss2: StartIssuer(t), upstream: StartUpstream(t, nil)}
	env := map[string]string{"ISSUER": s.iss.URL, "ISSUER2": s.iss2.URL, "UPSTREAM": s.upstream.Addr}
	for k, v := range extra {
		env[k] = v
	}
	s.sidecar = StartSidecar(t, caddyfile, env)
	return s
}

// token mints a valid access token of iss for audience connector-api with
// extra claims merged (nil values delete a claim).
func (s *oidcSetup) token(t *testing.T, extra devidp.Claims) string {
	t.Helper()
	return s.iss.MustMint(s.iss.AccessClaims("user-123", "connector-api", extra))
}

// problem is the refusal body.
type problem struct {
	Status int    `json:"status"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// assertRefused checks a refusal: status, problem+json reason, the Bearer
// challenge, that the upstream was never called, and that no secret (token
// or any of its segments) appears in the body or in the sidecar's logs.
func (s *oidcSetup) assertRefused(t *testing.T, resp *http.Response, body []byte, status int, reason string, secrets ...string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("body is not problem+json: %v: %s", err, body)
	}
	if p.Reason != reason {
		t.Fatalf("reason %q, want %q; body %s", p.Reason, reason, body)
	}
	if p.Status != status {
		t.Errorf("problem status %d, want %d", p.Status, status)
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		t.Errorf("refusal redirects to %q; it must never redirect", loc)
	}
	challenge := resp.Header.Get("WWW-Authenticate")
	switch status {
	case http.StatusUnauthorized:
		if !strings.HasPrefix(challenge, `Bearer realm="`) {
			t.Errorf("WWW-Authenticate %q is not a Bearer challenge", challenge)
		}
		wantErr := reason != "token_missing"
		if got := strings.Contains(challenge, `error="invalid_token"`); got != wantErr {
			t.Errorf("WWW-Authenticate %q: error=\"invalid_token\" present=%v, want %v", challenge, got, wantErr)
		}
	case http.StatusForbidden:
		if !strings.Contains(challenge, `error="insufficient_scope"`) || !strings.Contains(challenge, `scope="`) {
			t.Errorf("WWW-Authenticate %q lacks insufficient_scope and scope", challenge)
		}
	}
	s.upstream.AssertNotCalled(t)
	for _, secret := range secrets {
		assertNoSecret(t, "response body", string(body), secret)
		assertNoSecret(t, "sidecar logs", s.sidecar.Output(), secret)
	}
}

// assertNoSecret fails when text holds the token or any of its segments
// (each long enough to be identifying).
func assertNoSecret(t *testing.T, where, text, token string) {
	t.Helper()
	if token == "" {
		return
	}
	if strings.Contains(text, token) {
		t.Fatalf("%s contains the token", where)
	}
	for _, seg := range strings.Split(token, ".") {
		if len(seg) >= 16 && strings.Contains(text, seg) {
			t.Fatalf("%s contains a segment of the token", where)
		}
	}
}

// assertAdmitted checks a 200 that reached the upstream without the token.
func (s *oidcSetup) assertAdmitted(t *testing.T, resp *http.Response, body []byte) Received {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", resp.StatusCode, body)
	}
	got := s.upstream.Last(t)
	if v := got.Header.Values("Authorization"); len(v) != 0 {
		t.Fatalf("the upstream received Authorization; it must be removed")
	}
	return got
}
