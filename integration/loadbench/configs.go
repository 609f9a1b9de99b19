package main

import (
	"fmt"
	"strconv"
	"strings"
)

// tokenKind says which bearer tokens a configuration's requests carry.
type tokenKind int

const (
	oneToken    tokenKind = iota // one token reused: the token cache hits
	freshTokens                  // the fresh pool in turn: every request misses
	userTokens                   // the users' tokens, Zipf-distributed
)

// configSpec is how one configuration runs.
type configSpec struct {
	Name      string
	Caddyfile string // the sidecar's, relative to the repository root; "" for oauth2-proxy
	OAuth2    bool   // oauth2-proxy instead of the sidecar
	Alt       bool   // the -alt-bin binary
	Tokens    tokenKind
	CacheSize int // oidc_auth's cache_size; 0 leaves the Caddyfile's default
}

// Configuration names. plain is the baseline of every ratio.
const (
	chainCached  = "chain-cached"
	chainFresh   = "chain-fresh"
	oidcCached   = "oidc-cached"
	oidcFresh    = "oidc-fresh"
	oauth2Cached = "oauth2-proxy-cached"
	oauth2Fresh  = "oauth2-proxy-fresh"
	usersPrefix  = "users-cache-"
)

// peerConfigs are what -peers adds: oidc_auth alone and oauth2-proxy, each
// with one reused token and with a fresh token per request.
var peerConfigs = []string{oidcCached, oidcFresh, oauth2Cached, oauth2Fresh}

// specFor describes configuration name.
func specFor(name string) (configSpec, error) {
	base, alt := strings.CutSuffix(name, "-alt")
	s := configSpec{Name: name, Alt: alt}
	switch {
	case base == "plain" && !alt:
		s.Caddyfile = "caddyfiles/bench/plain.Caddyfile"
	case base == chainCached:
		s.Caddyfile = "caddyfiles/bench/chain.Caddyfile"
	case base == chainFresh:
		s.Caddyfile, s.Tokens, s.CacheSize = "caddyfiles/bench/chain.Caddyfile", freshTokens, freshCacheSize
	case base == oidcCached:
		s.Caddyfile = "caddyfiles/bench/oidc.Caddyfile"
	case base == oidcFresh:
		s.Caddyfile, s.Tokens, s.CacheSize = "caddyfiles/bench/oidc.Caddyfile", freshTokens, freshCacheSize
	case base == oauth2Cached && !alt:
		s.OAuth2 = true
	case base == oauth2Fresh && !alt:
		s.OAuth2, s.Tokens = true, freshTokens
	case strings.HasPrefix(base, usersPrefix):
		n, err := strconv.Atoi(strings.TrimPrefix(base, usersPrefix))
		if err != nil || n < -1 || n == 0 {
			return s, fmt.Errorf("configuration %q: the cache size must be a positive number or -1 (no cache)", name)
		}
		s.Caddyfile, s.Tokens, s.CacheSize = "caddyfiles/bench/chain.Caddyfile", userTokens, n
	default:
		return s, fmt.Errorf("unknown configuration %q", name)
	}
	return s, nil
}

// usersConfig is the users-mode configuration with a token cache of size.
func usersConfig(size int) string { return usersPrefix + strconv.Itoa(size) }
