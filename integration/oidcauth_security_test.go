package integration

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// TestOIDCAuthRefusesForgedAndInvalidTokens sends each attack or defect
// through the binary: each is refused with its reason, the upstream is never
// called, and the token appears neither in the body nor in the debug logs.
func TestOIDCAuthRefusesForgedAndInvalidTokens(t *testing.T) {
	s := startOIDCSetup(t, oidcCaddyfile, nil)
	attacker := StartIssuer(t) // an issuer nobody configured
	now := time.Now()
	rsa := s.iss.KeyFor("RS256")

	pubPEM, err := x509.MarshalPKIXPublicKey(rsa.Signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubPEM})
	jwkBytes, err := json.Marshal(jose.JSONWebKey{Key: rsa.Signer.Public(), KeyID: rsa.ID, Algorithm: "RS256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.iss.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	jwksBytes, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fetchesBefore := s.iss.JWKSFetches() // the test's own fetch above

	claims := s.iss.AccessClaims("user-123", "connector-api", nil)
	valid := s.token(t, nil)
	parts := strings.Split(valid, ".")
	mint := func(key *devidp.Key, h devidp.Header, c devidp.Claims) string {
		tok, err := s.iss.MintWith(key, h, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	attackerKey := attacker.KeyFor("RS256")
	attackerJWK, _ := json.Marshal(jose.JSONWebKey{Key: attackerKey.Signer.Public(), KeyID: rsa.ID, Algorithm: "RS256"})
	var embedded map[string]any
	_ = json.Unmarshal(attackerJWK, &embedded)

	cases := []struct {
		name   string
		token  string
		reason string
	}{
		{"alg none", devidp.Unsigned(claims), "algorithm_not_allowed"},
		{"alg none with signature", strings.Join([]string{b64JSON(t, map[string]any{"alg": "none", "kid": rsa.ID}), parts[1], parts[2]}, "."), "algorithm_not_allowed"},
		{"HS256 with the RSA public key as PEM", devidp.SignHMAC(devidp.Header{"kid": rsa.ID}, claims, pemBytes), "algorithm_not_allowed"},
		{"HS256 with the RSA public key as JWK", devidp.SignHMAC(devidp.Header{"kid": rsa.ID}, claims, jwkBytes), "algorithm_not_allowed"},
		{"HS256 with the JWKS bytes", devidp.SignHMAC(devidp.Header{"kid": rsa.ID}, claims, jwksBytes), "algorithm_not_allowed"},
		{"HS256 relabelled RS256", devidp.SignHMAC(devidp.Header{"alg": "RS256", "kid": rsa.ID}, claims, pemBytes), "token_invalid"},
		// Both dev issuers name their keys alike: the kid matches one of
		// issuer A's keys, but the signature is issuer B's.
		{"kid of another issuer's key", mintBy(t, s.iss2, s.iss2.KeyFor("RS256"), nil, claims), "token_invalid"},
		{"another issuer's own token relabelled", mintBy(t, s.iss2, s.iss2.KeyFor("ES256"), nil, claims), "token_invalid"},
		{"jku, x5u and embedded jwk", mintBy(t, attacker, attackerKey, devidp.Header{
			"kid": rsa.ID, "jku": attacker.JWKSURL(), "x5u": attacker.URL + "/cert.pem", "jwk": embedded,
		}, claims), "token_invalid"},
		{"attacker token for an unknown issuer", attacker.MustMint(attacker.AccessClaims("user-123", "connector-api", nil)), "issuer_unknown"},
		{"wrong issuer (trailing slash)", s.iss.MustMint(s.iss.AccessClaims("user-123", "connector-api", devidp.Claims{"iss": s.iss.URL + "/"})), "issuer_unknown"},
		{"expired", s.token(t, devidp.Claims{"exp": now.Add(-2 * time.Minute).Unix()}), "token_expired"},
		{"nbf in the future", s.token(t, devidp.Claims{"nbf": now.Add(5 * time.Minute).Unix()}), "token_not_yet_valid"},
		{"iat in the future", s.token(t, devidp.Claims{"iat": now.Add(5 * time.Minute).Unix()}), "token_not_yet_valid"},
		{"missing exp", s.token(t, devidp.Claims{"exp": nil}), "token_invalid"},
		{"exp as a string", s.token(t, devidp.Claims{"exp": "9999999999"}), "token_malformed"},
		{"wrong audience", s.iss.MustMint(s.iss.AccessClaims("user-123", "other-api", nil)), "audience_mismatch"},
		{"no audience", s.token(t, devidp.Claims{"aud": nil}), "audience_mismatch"},
		{"audience of the other issuer", s.iss2.MustMint(s.iss2.AccessClaims("user-123", "connector-api", nil)), "audience_mismatch"},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(s.token(t, devidp.Claims{"sub": "admin"}), ".")[2], "token_invalid"},
		{"payload swapped", parts[0] + "." + strings.Split(s.token(t, devidp.Claims{"sub": "admin"}), ".")[1] + "." + parts[2], "token_invalid"},
		{"truncated signature", valid[:len(valid)-10], "token_invalid"},
		{"truncated to two segments", parts[0] + "." + parts[1], "token_malformed"},
		{"truncated mid-payload", parts[0] + "." + parts[1][:len(parts[1])/2], "token_malformed"},
		{"standard base64 padding", parts[0] + "=." + parts[1] + "." + parts[2], "token_malformed"},
		{"not base64", "!!!." + parts[1] + "." + parts[2], "token_malformed"},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("nope")) + "." + parts[1] + "." + parts[2], "token_malformed"},
		{"five segments (JWE)", valid + ".e30.e30", "token_malformed"},
		{"duplicate iss claim", dupIssToken(t, s, rsa), "token_malformed"},
		{"crit header", mint(rsa, devidp.Header{"crit": []string{"exp"}, "exp": 1}, claims), "token_invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := s.sidecar.Get(t, "/contacts", c.token)
			s.assertRefused(t, resp, body, http.StatusUnauthorized, c.reason, c.token)
		})
	}
	// Bad signatures under known kids must not refetch (go-oidc's
	// RemoteKeySet does): one fetch loaded the keys, none followed.
	if n := s.iss.JWKSFetches() - fetchesBefore; n != 1 {
		t.Fatalf("the issuer's JWKS was fetched %d times; want 1 (no refetch for bad signatures)", n)
	}
	if n := attacker.JWKSFetches() + attacker.DiscoveryFetches(); n != 0 {
		t.Fatalf("the attacker's issuer was fetched %d time(s); jku/x5u/iss of unknown issuers must never be followed", n)
	}
	// The valid token still works: the refusals are not a side effect of a
	// broken setup.
	resp, body := s.sidecar.Get(t, "/contacts", valid)
	s.assertAdmitted(t, resp, body)
}

func TestOIDCAuthRefusesIDTokenWhereAccessTokenRequired(t *testing.T) {
	s := startOIDCSetup(t, "caddyfiles/test/oidc_auth_strict.Caddyfile", nil)
	claims := s.iss.AccessClaims("user-123", "connector-api", devidp.Claims{"scope": "contacts:read"})
	for _, typ := range []any{"JWT", nil, "jwt", "application/jwt"} {
		idToken := mintBy(t, s.iss, s.iss.KeyFor("RS256"), devidp.Header{"typ": typ}, claims)
		resp, body := s.sidecar.Get(t, "/contacts", idToken)
		s.assertRefused(t, resp, body, http.StatusUnauthorized, "token_type_invalid", idToken)
	}
	for _, typ := range []string{"at+jwt", "application/at+JWT"} {
		tok := mintBy(t, s.iss, s.iss.KeyFor("RS256"), devidp.Header{"typ": typ}, claims)
		resp, body := s.sidecar.Get(t, "/contacts", tok)
		s.assertAdmitted(t, resp, body)
		s.upstream.Reset()
	}
}

func TestOIDCAuthRequireScope(t *testing.T) {
	s := startOIDCSetup(t, "caddyfiles/test/oidc_auth_strict.Caddyfile", nil)
	for _, c := range []devidp.Claims{
		{"scope": "contacts:write"},
		{"scope": nil},
		{"scope": "contacts:read-all"},
		{"scp": []string{"contacts:write"}},
	} {
		tok := s.iss.MustMint(s.iss.AccessClaims("user-123", "connector-api", c))
		resp, body := s.sidecar.Get(t, "/contacts", tok)
		s.assertRefused(t, resp, body, http.StatusForbidden, "insufficient_scope", tok)
		if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `scope="contacts:read"`) {
			t.Fatalf("WWW-Authenticate %q does not name the required scope", ch)
		}
	}
	for _, c := range []devidp.Claims{
		{"scope": "openid contacts:read"},
		{"scp": []string{"contacts:read"}},
	} {
		tok := s.iss.MustMint(s.iss.AccessClaims("user-123", "connector-api", c))
		resp, body := s.sidecar.Get(t, "/contacts", tok)
		s.assertAdmitted(t, resp, body)
	}
}

func mintBy(t *testing.T, iss *devidp.Issuer, key *devidp.Key, h devidp.Header, c devidp.Claims) string {
	t.Helper()
	if h == nil {
		h = devidp.Header{"typ": "at+jwt"}
	}
	tok, err := iss.MintWith(key, h, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64JSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// dupIssToken is a correctly signed token whose payload names iss twice: a
// JSON parser that reads the first and one that reads the last would disagree
// on who issued it.
func dupIssToken(t *testing.T, s *oidcSetup, key *devidp.Key) string {
	t.Helper()
	c := s.iss.AccessClaims("user-123", "connector-api", nil)
	body, _ := json.Marshal(c)
	payload := `{"iss":"https://evil.example",` + string(body[1:])
	tok := mintBy(t, s.iss, key, nil, c)
	parts := strings.Split(tok, ".")
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + parts[2]
}
