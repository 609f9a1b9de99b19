package integration

import (
	"testing"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// StartIssuer runs a development OIDC issuer (discovery + JWKS over real
// HTTP) whose keys and failures the test controls; see package devidp.
func StartIssuer(t testing.TB) *devidp.Issuer {
	t.Helper()
	iss, err := devidp.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { iss.Close() })
	return iss
}
