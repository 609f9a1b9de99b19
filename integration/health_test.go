package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

type healthReport struct {
	Status  string `json:"status"`
	Issuers []struct {
		Issuer     string `json:"issuer"`
		KeysLoaded bool   `json:"keys_loaded"`
		Keys       int    `json:"keys"`
		LastError  string `json:"last_error"`
	} `json:"issuers"`
}

// TestHealthReportsIssuerKeys: while the IdP is down the probe answers 503
// naming the issuer and the failure; once it is up, the probe itself warms
// the keys (no request to a protected route is needed) and answers 200.
func TestHealthReportsIssuerKeys(t *testing.T) {
	iss := StartIssuer(t)
	iss.SetMode(devidp.Down, 0)
	up := StartUpstream(t, nil)
	sc := StartSidecar(t, "caddyfiles/test/sidecar_health.Caddyfile", map[string]string{"ISSUER": iss.URL, "UPSTREAM": up.Addr})

	rep, status := pollHealth(t, sc, func(r healthReport) bool { return len(r.Issuers) == 1 && r.Issuers[0].LastError != "" })
	if status != http.StatusServiceUnavailable || rep.Status != "unavailable" || rep.Issuers[0].KeysLoaded || rep.Issuers[0].Issuer != iss.URL {
		t.Fatalf("IdP down: %d %+v", status, rep)
	}

	iss.SetMode(devidp.Up, 0)
	rep, status = pollHealth(t, sc, func(r healthReport) bool { return r.Status == "ok" })
	if status != http.StatusOK || !rep.Issuers[0].KeysLoaded || rep.Issuers[0].Keys != 2 {
		t.Fatalf("IdP up: %d %+v", status, rep)
	}
	up.AssertNotCalled(t)

	tok := iss.MustMint(iss.AccessClaims("alice", "connector-api", nil))
	if resp, body := sc.Get(t, "/v1/contacts", tok); resp.StatusCode != http.StatusOK {
		t.Fatalf("with keys warmed by the probe, a valid token got %d: %s", resp.StatusCode, body)
	}
	if strings.Contains(sc.Output(), tok) {
		t.Fatal("the token appears in the sidecar's output")
	}
}

// pollHealth asks /healthz until done holds, for at most 15 s (the key set
// retries on its own one-second rate limit).
func pollHealth(t *testing.T, sc *Sidecar, done func(healthReport) bool) (healthReport, int) {
	t.Helper()
	var rep healthReport
	var status int
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, body := sc.Get(t, "/healthz", "")
		status = resp.StatusCode
		rep = healthReport{}
		if err := json.Unmarshal(body, &rep); err != nil {
			t.Fatalf("health body %q: %v", body, err)
		}
		if done(rep) {
			return rep, status
		}
	}
	t.Fatalf("health never reached the expected state; last: %d %+v", status, rep)
	return rep, status
}
