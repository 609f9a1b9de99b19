//go:build !nodemo

package main

// The demo command and the development issuer it starts. Production builds
// leave them out with -tags nodemo (see the Dockerfile).
import _ "github.com/alysio/privacy-sidecar/internal/demo"
