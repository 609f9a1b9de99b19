package oidcauth

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfileIssueShape(t *testing.T) {
	d := caddyfile.NewTestDispenser(`oidc_auth {
		issuer https://idp.example.com {
			audience connector-api more
			jwks_uri https://idp.example.com/keys
		}
		issuer https://login.other.example {
			audience other-api
			refresh_interval 1m
		}
		algorithms RS256 ES256
		leeway 30s
		require_scope contacts:read
		require_scope contacts:list
		forward_header X-Auth-Subject sub
		forward_token
		token_type at+jwt
	}`)
	var m OIDCAuth
	if err := m.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if len(m.Issuers) != 2 || m.Issuers[0].Issuer != "https://idp.example.com" ||
		strings.Join(m.Issuers[0].Audiences, ",") != "connector-api,more" ||
		m.Issuers[0].JWKSURI != "https://idp.example.com/keys" ||
		time.Duration(m.Issuers[1].RefreshInterval) != time.Minute {
		t.Fatalf("issuers %+v %+v", m.Issuers[0], m.Issuers[1])
	}
	if strings.Join(m.Algorithms, ",") != "RS256,ES256" || time.Duration(m.Leeway) != 30*time.Second ||
		strings.Join(m.RequireScope, ",") != "contacts:read,contacts:list" ||
		m.ForwardHeaders["X-Auth-Subject"] != "sub" || !m.ForwardToken || m.TokenType != "at+jwt" {
		t.Fatalf("parsed %+v", m)
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	block := func(body string) string {
		return "oidc_auth {\n issuer https://i {\n audience a\n }\n" + body + "\n}"
	}
	cases := map[string]struct{ in, want string }{
		"HS256":             {block("algorithms RS256 HS256"), `"HS256" is not allowed`},
		"hs512 lower":       {block("algorithms hs512"), `"hs512" is not allowed`},
		"none":              {block("algorithms none"), `"none" is not allowed`},
		"no audience":       {"oidc_auth {\n issuer https://i {\n jwks_uri https://i/k\n }\n}", "has no audience"},
		"bare issuer":       {"oidc_auth {\n issuer https://i\n}", "has no audience"},
		"duplicate issuer":  {"oidc_auth {\n issuer https://i {\n audience a\n }\n issuer https://i {\n audience b\n }\n}", "configured twice"},
		"twice leeway":      {block("leeway 1s\nleeway 2s"), "subdirective 'leeway' is given twice; give it once"},
		"bad leeway":        {block("leeway soon"), "invalid duration"},
		"unknown":           {block("cookie_token x"), "unrecognized subdirective 'cookie_token'"},
		"unknown issuer":    {"oidc_auth {\n issuer https://i {\n audience a\n trust_all\n }\n}", "unrecognized issuer subdirective"},
		"forward arity":     {block("forward_header X-A"), "wrong argument count"},
		"forward Cookie":    {block("forward_header Cookie sub"), "protocol header"},
		"forward_token arg": {block("forward_token yes"), "wrong argument count"},
		"directive arg":     {"oidc_auth https://i", "wrong argument count"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var m OIDCAuth
			err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
