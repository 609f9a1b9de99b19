package oidcauth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// FuzzParseToken feeds arbitrary bearer credentials to the pre-parser and
// the key-free checks. Properties: no panic; every refusal is a parseError
// with a documented reason and a message that does not quote the input; an
// accepted token has three segments, an alg, and claims.
func FuzzParseToken(f *testing.F) {
	// The seed corpus is in testdata/fuzz/FuzzParseToken; these add shapes.
	for _, s := range []string{
		"",
		"a.b.c",
		"eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
		"eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2kiLCJleHAiOjF9.",
	} {
		f.Add(s)
	}
	reasons := map[string]bool{
		sidecar.ReasonTokenMalformed: true, sidecar.ReasonTokenInvalid: true, sidecar.ReasonTokenExpired: true,
		sidecar.ReasonTokenNotYetValid: true, sidecar.ReasonIssuerUnknown: true, sidecar.ReasonAudienceMismatch: true,
		sidecar.ReasonAlgorithmNotAllowed: true, sidecar.ReasonTokenTypeInvalid: true,
	}
	m := &OIDCAuth{
		Leeway:    caddy.Duration(30 * time.Second),
		algs:      map[string]bool{"RS256": true, "ES256": true},
		tokenType: "at+jwt",
		issuers:   map[string]*issuer{"https://i": {cfg: &Issuer{Issuer: "https://i"}, audiences: []string{"api"}}},
	}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := parseToken(raw)
		if err == nil {
			if strings.Count(raw, ".") != 2 || tok.alg == "" || tok.claims == nil {
				t.Fatalf("accepted a token without three segments, an alg or claims: %q", raw)
			}
			_, err = m.precheck(tok, now)
			if err == nil {
				return
			}
		}
		var pe *parseError
		if !errors.As(err, &pe) {
			t.Fatalf("error %T is not a parseError", err)
		}
		if !reasons[pe.reason] {
			t.Fatalf("undocumented reason %q", pe.reason)
		}
		if len(raw) >= 8 && strings.Contains(pe.Error(), raw) {
			t.Fatalf("the error quotes the input")
		}
	})
}
