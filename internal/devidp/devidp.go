// Package devidp is a small OpenID Provider for development and tests: it
// serves a discovery document and a JWKS over real HTTP and mints signed
// access tokens. Tests control it: rotate or remove keys, take it down,
// slow it, make it answer garbage, and count what was fetched.
//
// It is not an identity provider for production use: it authenticates nobody.
package devidp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Mode says how the issuer answers discovery and JWKS requests.
type Mode int

const (
	// Up answers normally.
	Up Mode = iota
	// Down answers 503 to everything.
	Down
	// Garbage answers 200 with a body that is not JSON.
	Garbage
	// Huge answers 200 with a JSON body of many megabytes.
	Huge
	// Slow answers normally after the configured delay.
	Slow
)

// Key is one signing key of the issuer.
type Key struct {
	ID        string
	Algorithm string // RS256 or ES256
	Signer    crypto.Signer
}

// Issuer is a running development OpenID Provider.
type Issuer struct {
	// URL is the issuer identifier and base URL, http://127.0.0.1:port.
	URL string

	server   *http.Server
	listener net.Listener

	mu        sync.Mutex
	keys      []*Key // published in the JWKS
	current   *Key   // signs new tokens
	mode      Mode
	delay     time.Duration
	jwksPath  string
	seq       int
	published []*Key // keys that are still published, in order

	discoveryFetches atomic.Int64
	jwksFetches      atomic.Int64
}

// Start runs an issuer on a free loopback port with one RS256 and one ES256
// key; RS256 signs by default.
func Start() (*Issuer, error) {
	return StartOn("127.0.0.1:0")
}

// StartOn runs an issuer on addr (host:port).
func StartOn(addr string) (*Issuer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("devidp: listening on %s: %w", addr, err)
	}
	iss := &Issuer{URL: "http://" + ln.Addr().String(), listener: ln, jwksPath: "/keys"}
	if _, err := iss.AddKey("ES256"); err != nil {
		ln.Close()
		return nil, err
	}
	rs, err := iss.AddKey("RS256")
	if err != nil {
		ln.Close()
		return nil, err
	}
	iss.current = rs
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", iss.serveDiscovery)
	mux.HandleFunc("/keys", iss.serveJWKS)
	iss.server = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go iss.server.Serve(ln)
	return iss, nil
}

// Close stops the issuer.
func (iss *Issuer) Close() error { return iss.server.Close() }

// JWKSURL is where the issuer publishes its keys.
func (iss *Issuer) JWKSURL() string { return iss.URL + iss.jwksPath }

// AddKey creates and publishes a new key for alg (RS256 or ES256), without
// making it the signing key.
func (iss *Issuer) AddKey(alg string) (*Key, error) {
	var signer crypto.Signer
	var err error
	switch alg {
	case "RS256":
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("devidp: unsupported algorithm %q (use RS256 or ES256)", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("devidp: generating %s key: %w", alg, err)
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.seq++
	k := &Key{ID: fmt.Sprintf("%s-%d", strings.ToLower(alg), iss.seq), Algorithm: alg, Signer: signer}
	iss.keys = append(iss.keys, k)
	return k, nil
}

// Rotate publishes a new key for alg and makes it the signing key. The old
// keys stay published until removed.
func (iss *Issuer) Rotate(alg string) (*Key, error) {
	k, err := iss.AddKey(alg)
	if err != nil {
		return nil, err
	}
	iss.mu.Lock()
	iss.current = k
	iss.mu.Unlock()
	return k, nil
}

// RemoveKey stops publishing the key with this id (it can still sign tokens).
func (iss *Issuer) RemoveKey(kid string) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	kept := iss.keys[:0]
	for _, k := range iss.keys {
		if k.ID != kid {
			kept = append(kept, k)
		}
	}
	iss.keys = kept
}

// Key returns the published or signing key with this id, or the signing key
// for an empty id.
func (iss *Issuer) Key(kid string) *Key {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	if kid == "" {
		return iss.current
	}
	for _, k := range iss.keys {
		if k.ID == kid {
			return k
		}
	}
	if iss.current != nil && iss.current.ID == kid {
		return iss.current
	}
	return nil
}

// KeyFor returns a published key of the algorithm, preferring the signing key.
func (iss *Issuer) KeyFor(alg string) *Key {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	if iss.current != nil && iss.current.Algorithm == alg {
		return iss.current
	}
	for i := len(iss.keys) - 1; i >= 0; i-- {
		if iss.keys[i].Algorithm == alg {
			return iss.keys[i]
		}
	}
	return nil
}

// SetMode changes how discovery and JWKS requests are answered; delay is used
// by Slow.
func (iss *Issuer) SetMode(m Mode, delay time.Duration) {
	iss.mu.Lock()
	iss.mode, iss.delay = m, delay
	iss.mu.Unlock()
}

// JWKSFetches counts JWKS requests received, in any mode.
func (iss *Issuer) JWKSFetches() int64 { return iss.jwksFetches.Load() }

// DiscoveryFetches counts discovery requests received, in any mode.
func (iss *Issuer) DiscoveryFetches() int64 { return iss.discoveryFetches.Load() }

func (iss *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	iss.discoveryFetches.Add(1)
	if iss.answerAbnormally(w) {
		return
	}
	writeJSON(w, map[string]any{
		"issuer":                                iss.URL,
		"jwks_uri":                              iss.JWKSURL(),
		"authorization_endpoint":                iss.URL + "/authorize",
		"token_endpoint":                        iss.URL + "/token",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
	})
}

func (iss *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	iss.jwksFetches.Add(1)
	if iss.answerAbnormally(w) {
		return
	}
	iss.mu.Lock()
	var set jose.JSONWebKeySet
	for _, k := range iss.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Signer.Public(), KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"})
	}
	iss.mu.Unlock()
	writeJSON(w, set)
}

// answerAbnormally writes the response of a non-Up mode and reports whether
// it did.
func (iss *Issuer) answerAbnormally(w http.ResponseWriter) bool {
	iss.mu.Lock()
	mode, delay := iss.mode, iss.delay
	iss.mu.Unlock()
	switch mode {
	case Down:
		http.Error(w, "identity provider unavailable", http.StatusServiceUnavailable)
		return true
	case Garbage:
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("<html>this is not a key set</html>"))
		return true
	case Huge:
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"keys":[],"padding":"`))
		chunk := []byte(strings.Repeat("A", 64<<10))
		for i := 0; i < 128; i++ { // 8 MiB
			if _, err := w.Write(chunk); err != nil {
				return true
			}
		}
		w.Write([]byte(`"}`))
		return true
	case Slow:
		time.Sleep(delay)
	}
	return false
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=60")
	_ = json.NewEncoder(w).Encode(v)
}
