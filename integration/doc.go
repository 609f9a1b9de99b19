// Package integration holds the tests that run the built privacy-sidecar
// binary against a real OIDC issuer and a real upstream over loopback HTTP,
// and the Caddyfile adapt tests. The package has no non-test code.
package integration
