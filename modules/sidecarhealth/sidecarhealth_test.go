package sidecarhealth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

type fakeSource sidecar.KeyStatus

func (f *fakeSource) KeyStatus() sidecar.KeyStatus { return sidecar.KeyStatus(*f) }

func TestReadyOnlyWhenEveryIssuerHasKeys(t *testing.T) {
	a := &fakeSource{Issuer: "https://a.example", Loaded: true, Keys: 2}
	b := &fakeSource{Issuer: "https://b.example", LastError: "connection refused"}
	defer sidecar.RegisterKeySource(a)()
	unregisterB := sidecar.RegisterKeySource(b)

	status, rep := check(t)
	if status != http.StatusServiceUnavailable || rep.Status != "unavailable" || len(rep.Issuers) != 2 {
		t.Fatalf("with b's keys missing: %d %+v", status, rep)
	}
	if rep.Issuers[1].LastError != "connection refused" {
		t.Fatalf("the report should say why b has no keys: %+v", rep.Issuers[1])
	}
	b.Loaded, b.Keys, b.LastError = true, 1, ""
	if status, rep = check(t); status != http.StatusOK || rep.Status != "ok" {
		t.Fatalf("with every issuer loaded: %d %+v", status, rep)
	}
	unregisterB()
	if _, rep = check(t); len(rep.Issuers) != 1 {
		t.Fatalf("an unregistered key set is still reported: %+v", rep)
	}
}

func check(t *testing.T) (int, report) {
	t.Helper()
	w := httptest.NewRecorder()
	if err := (Health{}).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil), nil); err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	return w.Code, rep
}

func TestCaddyfileTakesNoArguments(t *testing.T) {
	for input, wantErr := range map[string]bool{
		"sidecar_health":           false,
		"sidecar_health extra":     true,
		"sidecar_health {\n\tx\n}": true,
	} {
		h := httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(input)}
		_, err := parseCaddyfile(h)
		if (err != nil) != wantErr {
			t.Errorf("%q: err = %v, want error %v", input, err, wantErr)
		}
	}
}
