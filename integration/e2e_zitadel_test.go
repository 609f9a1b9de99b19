package integration

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// jwtClientStorage is the example OP's storage, except that clients using
// the client-credentials grant get JWT access tokens instead of opaque ones.
type jwtClientStorage struct {
	*storage.Storage
}

func (s jwtClientStorage) ClientCredentials(ctx context.Context, clientID, clientSecret string) (op.Client, error) {
	c, err := s.Storage.ClientCredentials(ctx, clientID, clientSecret)
	if err != nil {
		return nil, err
	}
	return jwtClient{c}, nil
}

type jwtClient struct{ op.Client }

func (jwtClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// startZitadelOP runs zitadel/oidc's example OpenID Provider on loopback.
func startZitadelOP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	st := jwtClientStorage{storage.NewStorage(storage.NewUserStore(issuer))}
	srv := &http.Server{Handler: exampleop.SetupServer(issuer, st, nil, false)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return issuer
}

// clientCredentialsToken gets an access token from the OP's token endpoint,
// found through its discovery document, as a connector client would.
func clientCredentialsToken(t *testing.T, issuer, clientID, secret string) string {
	t.Helper()
	resp, err := http.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	err = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if err != nil || disc.TokenEndpoint == "" {
		t.Fatalf("discovery: %v (token_endpoint %q)", err, disc.TokenEndpoint)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}}
	req, _ := http.NewRequest(http.MethodPost, disc.TokenEndpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token endpoint answered %d (%v)", resp.StatusCode, err)
	}
	if strings.Count(tok.AccessToken, ".") != 2 {
		t.Fatalf("the OP issued an opaque token, not a JWT")
	}
	return tok.AccessToken
}

// TestE2EZitadelClientCredentials: a token from a real OpenID Provider,
// obtained by the client-credentials grant, passes the sidecar; the same
// token altered, or none, does not.
func TestE2EZitadelClientCredentials(t *testing.T) {
	issuer := startZitadelOP(t)
	up := StartUpstream(t, nil)
	sc := StartSidecar(t, "caddyfiles/test/e2e_zitadel.Caddyfile", map[string]string{"ISSUER": issuer, "UPSTREAM": up.Addr})

	token := clientCredentialsToken(t, issuer, "sid1", "verysecret")

	resp, body := sc.Get(t, "/v1/contacts", token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("valid OP token: status %d, body %s", resp.StatusCode, body)
	}
	got := up.Last(t)
	if got.Header.Get("Authorization") != "" {
		t.Error("the upstream received the Authorization header; oidc_auth must remove it by default")
	}
	if got.Header.Get("X-Auth-Subject") != "sid1" {
		t.Errorf("X-Auth-Subject upstream = %q, want the client's subject sid1", got.Header.Get("X-Auth-Subject"))
	}

	up.Reset()
	tampered := token[:len(token)-4] + flip(token[len(token)-4:])
	for name, tok := range map[string]string{"tampered signature": tampered, "no token": ""} {
		resp, body := sc.Get(t, "/v1/contacts", tok)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401 (body %s)", name, resp.StatusCode, body)
		}
	}
	up.AssertNotCalled(t)
	if strings.Contains(sc.Output(), token[strings.LastIndex(token, ".")+1:]) {
		t.Error("the sidecar's log contains the token's signature")
	}
}

// flip changes every character of a base64url string to another valid one.
func flip(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}
