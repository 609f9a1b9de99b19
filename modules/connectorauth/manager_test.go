package connectorauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// oauthServer is a token endpoint that rotates refresh tokens, and a
// revocation endpoint; tests switch it down or make it refuse grants.
type oauthServer struct {
	*httptest.Server
	mu       sync.Mutex
	refresh  map[string]bool // valid refresh tokens
	access   map[string]bool
	requests atomic.Int64
	revoked  []string
	mode     string // "", "down", "invalid_grant", "slow"
	lifetime int
	n        int
}

func newOAuthServer(t *testing.T) *oauthServer {
	s := &oauthServer{refresh: map[string]bool{}, access: map[string]bool{}, lifetime: 3600}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", s.token)
	mux.HandleFunc("/revoke", s.revoke)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *oauthServer) issue() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	rt := fmt.Sprintf("rt-%d", s.n)
	s.refresh[rt] = true
	return rt
}

func (s *oauthServer) token(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	mode := s.mode
	s.mu.Unlock()
	switch mode {
	case "down":
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	case "slow":
		time.Sleep(300 * time.Millisecond)
	}
	if r.PostFormValue("grant_type") == "client_credentials" {
		w.Header().Set("Content-Type", "application/json")
		if id, secret, _ := r.BasicAuth(); id != "tenant-client" || secret != "tenant-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		s.mu.Lock()
		s.n++
		at := fmt.Sprintf("at-%d", s.n)
		s.access[at] = true
		s.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": s.lifetime, "scope": r.PostFormValue("scope")})
		return
	}
	if id, secret, _ := r.BasicAuth(); id != "platform" || secret != "platform-secret" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_client"}`)
		return
	}
	rt := r.PostFormValue("refresh_token")
	s.mu.Lock()
	defer s.mu.Unlock()
	if mode == "invalid_grant" || !s.refresh[rt] {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"invalid_grant","error_description":"refresh token %s is not valid"}`, rt)
		return
	}
	delete(s.refresh, rt) // rotation: a refresh token is good once
	s.n++
	next, at := fmt.Sprintf("rt-%d", s.n), fmt.Sprintf("at-%d", s.n)
	s.refresh[next], s.access[at] = true, true
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": s.lifetime, "refresh_token": next})
}

func (s *oauthServer) revoke(w http.ResponseWriter, r *http.Request) {
	tok := r.PostFormValue("token")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == "down" {
		http.Error(w, "", http.StatusServiceUnavailable)
		return
	}
	delete(s.refresh, tok)
	delete(s.access, tok)
	s.revoked = append(s.revoked, r.PostFormValue("token_type_hint"))
}

func (s *oauthServer) setMode(m string) {
	s.mu.Lock()
	s.mode = m
	s.mu.Unlock()
}

// replica is one sidecar's manager and connector over a shared directory.
func replica(t *testing.T, dir string, srv *oauthServer, name string) *Connector {
	t.Helper()
	m := newManager("test:"+dir+t.Name(), &certmagic.FileStorage{Path: dir}, zap.NewNop())
	t.Cleanup(func() { m.Destruct() })
	c, err := NewConnector(Settings{
		Name: name, TokenURL: srv.URL + "/token", RevocationURL: srv.URL + "/revoke",
		ClientID: "platform", ClientSecret: "platform-secret", Grant: GrantRefreshToken, Key: testKey,
		TokenTimeout: 2 * time.Second,
	}, m, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(Register(c))
	return c
}

func refusalOf(t *testing.T, err error) *Refusal {
	t.Helper()
	var r *Refusal
	if !errors.As(err, &r) {
		t.Fatalf("got %v, want a refusal", err)
	}
	return r
}

// TestSingleFlightRefreshStoresRotatedTokenFirst: concurrent requests cause
// one refresh; the rotated refresh token is in storage when the access
// token is handed out, so the next refresh (on another replica) works.
func TestSingleFlightRefreshStoresRotatedTokenFirst(t *testing.T) {
	srv := newOAuthServer(t)
	srv.setMode("slow")
	dir := t.TempDir()
	a := replica(t, dir, srv, "crm")
	ctx := context.Background()
	if _, err := a.Connect(ctx, "acme", Credential{RefreshToken: srv.issue()}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	tokens := make([]string, 30)
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := a.Acquire(ctx, "acme", "")
			if err != nil {
				t.Error(err)
				return
			}
			tokens[i] = l.AccessToken
		}()
	}
	wg.Wait()
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("%d token requests for 30 concurrent requests, want 1", n)
	}
	for _, tok := range tokens {
		if tok != tokens[0] || tok == "" {
			t.Fatalf("requests got different tokens: %v", tokens)
		}
	}
	stored, _, err := a.mgr.store().load(ctx, a.keys, "acme", "crm")
	if err != nil || !srv.refresh[stored.Credential.RefreshToken] {
		t.Fatalf("the stored refresh token is not the rotated one (%v)", err)
	}

	// another replica has no access token: it refreshes with the stored,
	// rotated refresh token, which the provider accepts
	srv.setMode("")
	b := replica(t, dir, srv, "crm")
	l, err := b.Acquire(ctx, "acme", "")
	if err != nil {
		t.Fatalf("replica b: %v", err)
	}
	if l.AccessToken == tokens[0] {
		t.Fatal("replica b reused replica a's access token: access tokens must stay in memory")
	}
}

// TestDisconnectReachesEveryReplica: a disconnect on a cuts b's requests
// in flight within the poll interval, revokes the refresh token and a's
// access token, and b refuses from then on.
func TestDisconnectReachesEveryReplica(t *testing.T) {
	srv := newOAuthServer(t)
	dir := t.TempDir()
	a, b := replica(t, dir, srv, "crm"), replica(t, dir, srv, "crm")
	ctx := context.Background()
	if _, err := a.Connect(ctx, "acme", Credential{RefreshToken: srv.issue()}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	lb, err := b.Acquire(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	receipt, err := a.Disconnect(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if !receipt.Deleted || len(receipt.Revoked) != 2 || len(receipt.RevocationErrors) != 0 {
		t.Fatalf("receipt %+v: want the refresh and access tokens revoked and the credential deleted", receipt)
	}
	select {
	case <-lb.Live.Done():
		t.Logf("replica b cut its request %v after the disconnect began", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("replica b did not cut its request in flight")
	}
	if !errors.Is(context.Cause(lb.Live), ErrDisconnected) {
		t.Fatalf("cause %v", context.Cause(lb.Live))
	}
	r := refusalOf(t, func() error { _, err := b.Acquire(ctx, "acme", ""); return err }())
	if r.Reason != sidecar.ReasonConnectorDisconnected || !r.SecurityEvent {
		t.Fatalf("replica b: %+v, want connector_disconnected as a security event", r)
	}
	stored, _, _ := a.mgr.store().load(ctx, a.keys, "acme", "crm")
	if stored.Credential != nil || stored.State != StateDisconnected {
		t.Fatalf("stored after the disconnect: %+v", stored)
	}
	// b revokes the access token it held, too
	deadline := time.Now().Add(5 * time.Second)
	for {
		srv.mu.Lock()
		n := len(srv.revoked)
		srv.mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			if n < 3 {
				t.Fatalf("revocations %v: replica b did not revoke its access token", srv.revoked)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInvalidGrantRequiresReauthorization: a refused grant marks the
// connection reauthorization_required for every replica; a new connect
// brings it back.
func TestInvalidGrantRequiresReauthorization(t *testing.T) {
	srv := newOAuthServer(t)
	dir := t.TempDir()
	a, b := replica(t, dir, srv, "crm"), replica(t, dir, srv, "crm")
	ctx := context.Background()
	if _, err := a.Connect(ctx, "acme", Credential{RefreshToken: "rt-unknown-to-the-provider"}); err != nil {
		t.Fatal(err)
	}
	r := refusalOf(t, func() error { _, err := a.Acquire(ctx, "acme", ""); return err }())
	if r.Reason != sidecar.ReasonConnectorReauthorizationRequired || r.Status != http.StatusForbidden {
		t.Fatalf("%+v", r)
	}
	n := srv.requests.Load()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := b.Acquire(ctx, "acme", "")
		var r *Refusal
		if errors.As(err, &r) && r.Reason == sidecar.ReasonConnectorReauthorizationRequired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica b: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if srv.requests.Load() != n {
		t.Fatal("replica b asked the token endpoint although the connection needs reauthorization")
	}
	s, _ := a.Status(ctx, "acme")
	if s.State != StateReauthorizationRequired || s.LastError == "" {
		t.Fatalf("status %+v", s)
	}
	if _, err := a.Connect(ctx, "acme", Credential{RefreshToken: srv.issue()}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(ctx, "acme", ""); err != nil {
		t.Fatalf("after reconnecting: %v", err)
	}
}

// TestTokenEndpointDownIsRetryable: 502 connector_token_unavailable with
// Retry-After, the connection stays connected, and failures are not sent
// to the endpoint for every request.
func TestTokenEndpointDownIsRetryable(t *testing.T) {
	srv := newOAuthServer(t)
	a := replica(t, t.TempDir(), srv, "crm")
	ctx := context.Background()
	if _, err := a.Connect(ctx, "acme", Credential{RefreshToken: srv.issue()}); err != nil {
		t.Fatal(err)
	}
	srv.setMode("down")
	for range 5 {
		r := refusalOf(t, func() error { _, err := a.Acquire(ctx, "acme", ""); return err }())
		if r.Status != http.StatusBadGateway || r.Reason != sidecar.ReasonConnectorTokenUnavailable || r.RetryAfter <= 0 {
			t.Fatalf("%+v", r)
		}
	}
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("%d token requests in the failure hold, want 1", n)
	}
	srv.setMode("")
	time.Sleep(failureHold)
	if _, err := a.Acquire(ctx, "acme", ""); err != nil {
		t.Fatalf("after the endpoint came back: %v", err)
	}
}

// TestUnauthorizedDropsTheToken: an upstream 401 makes the next request
// refresh.
func TestUnauthorizedDropsTheToken(t *testing.T) {
	srv := newOAuthServer(t)
	a := replica(t, t.TempDir(), srv, "crm")
	ctx := context.Background()
	if _, err := a.Connect(ctx, "acme", Credential{RefreshToken: srv.issue()}); err != nil {
		t.Fatal(err)
	}
	l1, err := a.Acquire(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	l2, _ := a.Acquire(ctx, "acme", "")
	if l2.AccessToken != l1.AccessToken {
		t.Fatal("the cached token was not reused")
	}
	l1.Unauthorized()
	l3, err := a.Acquire(ctx, "acme", "")
	if err != nil || l3.AccessToken == l1.AccessToken {
		t.Fatalf("after a 401 the token was reused (%v)", err)
	}
	l1.Unauthorized() // an old lease cannot drop the new token
	if l4, _ := a.Acquire(ctx, "acme", ""); l4.AccessToken != l3.AccessToken {
		t.Fatal("a stale 401 dropped a newer token")
	}
}

func TestRefreshAt(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		expiry time.Time
		want   time.Time
	}{
		{time.Time{}, now.Add(defaultLifetime)},
		{now.Add(time.Hour), now.Add(time.Hour - maxMargin)},
		{now.Add(10 * time.Second), now.Add(8 * time.Second)},
		{now.Add(-time.Second), now},
	} {
		if got := refreshAt(now, c.expiry); !got.Equal(c.want) {
			t.Errorf("refreshAt(%v) = %v, want %v", c.expiry.Sub(now), got.Sub(now), c.want.Sub(now))
		}
	}
}

func TestSafeCode(t *testing.T) {
	for in, want := range map[string]string{"invalid_grant": "invalid_grant", "": "", "Bad Thing": "other", "rt-123": "other", "a\nb": "other"} {
		if got := safeCode(in); got != want {
			t.Errorf("safeCode(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOneUnreadableRecordStopsOnlyItself: a record that no longer
// decrypts (changed in storage) refuses its own requests, with 502, while
// the replica keeps serving every other connection.
func TestOneUnreadableRecordStopsOnlyItself(t *testing.T) {
	srv := newOAuthServer(t)
	dir := t.TempDir()
	a := replica(t, dir, srv, "crm")
	ctx := context.Background()
	for _, tenant := range []string{"acme", "globex"} {
		if _, err := a.Connect(ctx, tenant, Credential{RefreshToken: srv.issue()}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Acquire(ctx, tenant, ""); err != nil {
			t.Fatal(err)
		}
	}
	st := a.mgr.store()
	raw, _ := st.storage.Load(ctx, recordKey("globex", "crm"))
	if err := st.storage.Store(ctx, recordKey("acme", "crm"), raw); err != nil { // globex's record in acme's place
		t.Fatal(err)
	}
	if err := st.changed(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := a.Acquire(ctx, "acme", "")
		var r *Refusal
		if errors.As(err, &r) && r.Reason == sidecar.ReasonConnectorTokenUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acme with an unreadable record: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !a.mgr.fresh() {
		t.Fatal("one unreadable record made the whole replica stale")
	}
	if _, err := a.Acquire(ctx, "globex", ""); err != nil {
		t.Fatalf("globex: %v", err)
	}
}

// TestDisconnectWithAnotherKey: after `key` changed, a connection stored
// under the old key cannot be read, yet a disconnect still deletes it.
func TestDisconnectWithAnotherKey(t *testing.T) {
	srv := newOAuthServer(t)
	dir := t.TempDir()
	a := replica(t, dir, srv, "crm")
	ctx := context.Background()
	if _, err := a.Connect(ctx, "acme", Credential{RefreshToken: srv.issue()}); err != nil {
		t.Fatal(err)
	}
	m := newManager("test:rekeyed", &certmagic.FileStorage{Path: dir}, zap.NewNop())
	t.Cleanup(func() { m.Destruct() })
	b, err := NewConnector(Settings{Name: "crm", TokenURL: srv.URL + "/token", ClientID: "platform", Grant: GrantRefreshToken,
		Key: testKey + "-rotated"}, m, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	r := refusalOf(t, func() error { _, err := b.Acquire(ctx, "acme", ""); return err }())
	if r.Status != http.StatusBadGateway {
		t.Fatalf("%+v", r)
	}
	receipt, err := b.Disconnect(ctx, "acme")
	if err != nil || !receipt.Deleted || len(receipt.RevocationErrors) != 1 {
		t.Fatalf("%+v %v", receipt, err)
	}
	if _, err := a.mgr.store().storage.Load(ctx, recordKey("acme", "crm")); err == nil {
		t.Fatal("the unreadable record is still stored")
	}
}

// TestTenantClientCredentials: a tenant connects with client credentials of
// its own; they obtain the token, and when the provider refuses them the
// connection needs reauthorization (only the tenant can fix them).
func TestTenantClientCredentials(t *testing.T) {
	srv := newOAuthServer(t)
	m := newManager("test:cc", &certmagic.FileStorage{Path: t.TempDir()}, zap.NewNop())
	t.Cleanup(func() { m.Destruct() })
	c, err := NewConnector(Settings{Name: "erp", TokenURL: srv.URL + "/token", Grant: GrantClientCredentials, Scopes: []string{"read"}, Key: testKey}, m, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var in *InputError
	if _, err := c.Connect(ctx, "acme", Credential{}); !errors.As(err, &in) {
		t.Fatalf("a connector without a client accepted a connect without client credentials: %v", err)
	}
	if _, err := c.Connect(ctx, "acme", Credential{RefreshToken: "rt"}); !errors.As(err, &in) {
		t.Fatalf("a client_credentials connector accepted a refresh token: %v", err)
	}
	s, err := c.Connect(ctx, "acme", Credential{ClientID: "tenant-client", ClientSecret: "tenant-secret"})
	if err != nil || s.Grant != GrantClientCredentials {
		t.Fatalf("%+v %v", s, err)
	}
	if l, err := c.Acquire(ctx, "acme", ""); err != nil || l.AccessToken == "" {
		t.Fatalf("acquire: %v", err)
	}
	if _, err := c.Connect(ctx, "globex", Credential{ClientID: "tenant-client", ClientSecret: "wrong"}); err != nil {
		t.Fatal(err)
	}
	r := refusalOf(t, func() error { _, err := c.Acquire(ctx, "globex", ""); return err }())
	if r.Reason != sidecar.ReasonConnectorReauthorizationRequired {
		t.Fatalf("refused client credentials: %+v", r)
	}
}

// TestTokenEndpointRedirectIsNotFollowed: a token endpoint that redirects
// does not get the refresh token resent wherever it points.
func TestTokenEndpointRedirectIsNotFollowed(t *testing.T) {
	var stolen atomic.Int64
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("refresh_token") != "" {
			stolen.Add(1)
		}
	}))
	t.Cleanup(thief.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, thief.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	m := newManager("test:redirect", &certmagic.FileStorage{Path: t.TempDir()}, zap.NewNop())
	t.Cleanup(func() { m.Destruct() })
	c, err := NewConnector(Settings{Name: "crm", TokenURL: redirector.URL, ClientID: "platform", Grant: GrantRefreshToken, Key: testKey}, m, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Connect(ctx, "acme", Credential{RefreshToken: "rt-must-stay-home"}); err != nil {
		t.Fatal(err)
	}
	r := refusalOf(t, func() error { _, err := c.Acquire(ctx, "acme", ""); return err }())
	if r.Reason != sidecar.ReasonConnectorTokenUnavailable {
		t.Fatalf("%+v", r)
	}
	if stolen.Load() != 0 {
		t.Fatal("the redirect was followed with the refresh token")
	}
}

// TestNoSecretInLogs: what the sidecar logs about connects, refreshes,
// failures (an endpoint that echoes the refresh token in its error text)
// and disconnects holds no token and no secret.
func TestNoSecretInLogs(t *testing.T) {
	srv := newOAuthServer(t)
	core, logs := observer.New(zapcore.DebugLevel)
	m := newManager("test:logs", &certmagic.FileStorage{Path: t.TempDir()}, zap.New(core))
	t.Cleanup(func() { m.Destruct() })
	c, err := NewConnector(Settings{Name: "crm", TokenURL: srv.URL + "/token", RevocationURL: srv.URL + "/revoke",
		ClientID: "platform", ClientSecret: "platform-secret", Grant: GrantRefreshToken, Key: testKey}, m, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	good := srv.issue()
	secrets := []string{good, "platform-secret", testKey, "rt-echoed-by-the-endpoint"}
	if _, err := c.Connect(ctx, "acme", Credential{RefreshToken: good}); err != nil {
		t.Fatal(err)
	}
	l, err := c.Acquire(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, l.AccessToken)
	srv.setMode("down")
	l.Unauthorized() // the next request refreshes, against an endpoint that is down
	_, _ = c.Acquire(ctx, "acme", "")
	srv.setMode("")
	if _, err := c.Disconnect(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connect(ctx, "globex", Credential{RefreshToken: "rt-echoed-by-the-endpoint"}); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Acquire(ctx, "globex", "") // invalid_grant, with the token in error_description
	if logs.Len() == 0 {
		t.Fatal("nothing was logged")
	}
	for _, entry := range logs.All() {
		text := entry.Message + fmt.Sprint(entry.ContextMap())
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("log %q holds a secret", text)
			}
		}
	}
}
