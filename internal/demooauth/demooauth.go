// Package demooauth is the authorization server of the demo's connected
// system: a small OAuth 2.0 server on loopback with the refresh_token grant
// (RFC 6749 section 6, rotating the refresh token on each use) and token
// revocation (RFC 7009), and a guard for the connected system's API that
// accepts only its own live access tokens, each for one tenant. It is for
// the demo; tests use a full OpenID Provider (zitadel's example OP).
package demooauth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// AccessTokenLifetime is how long an access token is good for.
const AccessTokenLifetime = 10 * time.Minute

// Server is a running authorization server.
type Server struct {
	// URL is its base URL; the token endpoint is URL+"/oauth/token" and the
	// revocation endpoint URL+"/oauth/revoke".
	URL string
	// ClientID and ClientSecret are the platform's client (the sidecar).
	ClientID, ClientSecret string

	srv *http.Server

	mu      sync.Mutex
	refresh map[string]string // refresh token -> tenant
	access  map[string]grant  // access token -> grant
	revoked int
	// lastSeen is the tenant of the last access token the guard accepted.
	lastSeen string
}

type grant struct {
	tenant  string
	expires time.Time
}

// Start runs a server on a free loopback port.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		URL:          "http://" + ln.Addr().String(),
		ClientID:     "alysio-sidecar",
		ClientSecret: random(),
		refresh:      map[string]string{},
		access:       map[string]grant{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", s.token)
	mux.HandleFunc("POST /oauth/revoke", s.revoke)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// TokenURL and RevocationURL are the endpoints.
func (s *Server) TokenURL() string      { return s.URL + "/oauth/token" }
func (s *Server) RevocationURL() string { return s.URL + "/oauth/revoke" }

// Authorize issues a refresh token for tenant, as the authorization code
// flow would when the tenant's administrator connects the integration.
func (s *Server) Authorize(tenant string) string {
	rt := random()
	s.mu.Lock()
	s.refresh[rt] = tenant
	s.mu.Unlock()
	return rt
}

// Revocations is how many tokens were revoked.
func (s *Server) Revocations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revoked
}

// LastTenant is the tenant whose access token the guard last accepted.
func (s *Server) LastTenant() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeen
}

// Guard lets a request through to the connected system's API only with a
// live access token of the tenant the request names (X-Tenant-ID).
func (s *Server) Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		g, ok := s.access[token]
		valid := ok && time.Now().Before(g.expires) && g.tenant == r.Header.Get("X-Tenant-ID")
		if valid {
			s.lastSeen = g.tenant
		}
		s.mu.Unlock()
		if !valid {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) clientOK(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	}
	return ok && id == s.ClientID && subtle.ConstantTimeCompare([]byte(secret), []byte(s.ClientSecret)) == 1
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !s.clientOK(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	if r.PostFormValue("grant_type") != "refresh_token" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tenant, ok := s.refresh[r.PostFormValue("refresh_token")]
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	}
	delete(s.refresh, r.PostFormValue("refresh_token")) // rotation: each refresh token is used once
	rt, at := random(), random()
	s.refresh[rt] = tenant
	s.access[at] = grant{tenant: tenant, expires: time.Now().Add(AccessTokenLifetime)}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": at, "token_type": "Bearer", "expires_in": int(AccessTokenLifetime.Seconds()), "refresh_token": rt,
	})
}

// revoke implements RFC 7009: 200 whether or not the token was valid.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if !s.clientOK(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	token := r.PostFormValue("token")
	s.mu.Lock()
	if _, ok := s.refresh[token]; ok {
		delete(s.refresh, token)
		s.revoked++
	}
	if _, ok := s.access[token]; ok {
		delete(s.access, token)
		s.revoked++
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func random() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
