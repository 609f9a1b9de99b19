package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// oauth2ProxyModule is the peer -peers measures: oauth2-proxy as a user
// would install it, from the Go module proxy, never committed here.
const (
	oauth2ProxyVersion = "v7.15.6"
	oauth2ProxyModule  = "github.com/oauth2-proxy/oauth2-proxy/v7@" + oauth2ProxyVersion
)

// buildOAuth2Proxy installs oauth2-proxy into dir/bin with `go install` and
// returns the binary's path.
func buildOAuth2Proxy(dir string) (string, error) {
	bin := filepath.Join(dir, "bin")
	cmd := exec.Command("go", "install", oauth2ProxyModule)
	// Outside any module, so that this repository's go.mod plays no part.
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=", "GO111MODULE=on")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building oauth2-proxy (go install %s): %w", oauth2ProxyModule, err)
	}
	return filepath.Join(bin, "oauth2-proxy"), nil
}

// startOAuth2Proxy runs oauth2-proxy on a fresh loopback port, admitting
// requests whose bearer token the issuer signed for the audience
// (--skip-jwt-bearer-tokens; --client-id is the audience it checks) and
// proxying them to the upstream. Request and auth logging are off: the
// sidecar's own access log is off in the bench Caddyfiles too, and what is
// measured is the token check and the proxying. The client secret and
// cookie secret are random and only satisfy its start-up validation: no
// login flow runs.
func startOAuth2Proxy(name, bin, issuer, upstream string) (*sidecar, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	args := []string{
		"--http-address=http://" + addr,
		"--provider=oidc",
		"--oidc-issuer-url=" + issuer,
		"--client-id=" + benchAudience,
		"--client-secret=loadbench-not-a-secret",
		"--cookie-secret=" + base64.RawURLEncoding.EncodeToString(secret),
		"--cookie-secure=false",
		"--email-domain=*",
		"--skip-jwt-bearer-tokens=true",
		"--bearer-token-login-fallback=false",
		"--upstream=http://" + strings.TrimPrefix(upstream, "http://") + "/",
		"--request-logging=false",
		"--auth-logging=false",
		"--silence-ping-logging=true",
	}
	return startProcess(name, exec.Command(bin, args...), addr, "")
}
