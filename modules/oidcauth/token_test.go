package oidcauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
	"github.com/caddyserver/caddy/v2"
)

func seg(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }

func TestParseToken(t *testing.T) {
	hdr := seg(`{"alg":"RS256","kid":"k1","typ":"at+jwt"}`)
	pay := seg(`{"iss":"https://i","aud":["a","b"],"exp":2000000000,"nbf":1000000000.5,"iat":1000000000,"sub":"s","n":12345678901234567890}`)
	sig := seg("sig")
	good := hdr + "." + pay + "." + sig

	t.Run("valid", func(t *testing.T) {
		tok, err := parseToken(good)
		if err != nil {
			t.Fatal(err)
		}
		if tok.alg != "RS256" || tok.kid != "k1" || tok.typ != "at+jwt" || tok.iss != "https://i" ||
			strings.Join(tok.aud, ",") != "a,b" || !tok.hasExp || tok.exp.Unix() != 2000000000 ||
			tok.nbf.UnixMilli() != 1000000000500 || !tok.hasIat {
			t.Fatalf("parsed %+v", tok)
		}
		if n, ok := tok.claims["n"].(json.Number); !ok || n.String() != "12345678901234567890" {
			t.Fatalf("large integer not kept exactly: %#v", tok.claims["n"])
		}
	})

	cases := map[string]struct {
		token  string
		reason string
	}{
		"empty":                 {"", sidecar.ReasonTokenMalformed},
		"one segment":           {"abc", sidecar.ReasonTokenMalformed},
		"two segments":          {hdr + "." + pay, sidecar.ReasonTokenMalformed},
		"four segments":         {good + ".x", sidecar.ReasonTokenMalformed},
		"empty header":          {"." + pay + "." + sig, sidecar.ReasonTokenMalformed},
		"padding":               {hdr + "=." + pay + "." + sig, sidecar.ReasonTokenMalformed},
		"std alphabet":          {hdr + "." + pay + "." + "ab+/", sidecar.ReasonTokenMalformed},
		"flipped trailing bits": {hdr + "." + pay + "." + "cx", sidecar.ReasonTokenMalformed},
		"header array":          {seg(`["RS256"]`) + "." + pay + "." + sig, sidecar.ReasonTokenMalformed},
		"header null":           {seg(`null`) + "." + pay + "." + sig, sidecar.ReasonTokenMalformed},
		"no alg":                {seg(`{"kid":"k"}`) + "." + pay + "." + sig, sidecar.ReasonTokenMalformed},
		"alg number":            {seg(`{"alg":256}`) + "." + pay + "." + sig, sidecar.ReasonTokenMalformed},
		"kid number":            {seg(`{"alg":"RS256","kid":1}`) + "." + pay + "." + sig, sidecar.ReasonTokenMalformed},
		"duplicate alg":         {seg(`{"alg":"none","alg":"RS256"}`) + "." + pay + "." + sig, sidecar.ReasonTokenMalformed},
		"trailing data":         {seg(`{"alg":"RS256"} {}`) + "." + pay + "." + sig, sidecar.ReasonTokenMalformed},
		"crit":                  {seg(`{"alg":"RS256","crit":["x"],"x":1}`) + "." + pay + "." + sig, sidecar.ReasonTokenInvalid},
		"b64 false":             {seg(`{"alg":"RS256","b64":false}`) + "." + pay + "." + sig, sidecar.ReasonTokenInvalid},
		"payload not JSON":      {hdr + "." + seg("hello") + "." + sig, sidecar.ReasonTokenMalformed},
		"duplicate iss":         {hdr + "." + seg(`{"iss":"a","iss":"b","exp":1}`) + "." + sig, sidecar.ReasonTokenMalformed},
		"escaped duplicate iss": {hdr + "." + seg(`{"iss":"a","i\u0073s":"b","exp":1}`) + "." + sig, sidecar.ReasonTokenMalformed},
		"nested duplicate":      {hdr + "." + seg(`{"iss":"https://i","org":{"id":"a","id":"b"},"exp":1}`) + "." + sig, sidecar.ReasonTokenMalformed},
		"duplicate in array":    {hdr + "." + seg(`{"x":[{"r":1,"r":2}],"exp":1}`) + "." + sig, sidecar.ReasonTokenMalformed},
		"too deep":              {hdr + "." + seg(`{"x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+`}`) + "." + sig, sidecar.ReasonTokenMalformed},
		"invalid UTF-8":         {hdr + "." + seg("{\"sub\":\"\xff\",\"exp\":1}") + "." + sig, sidecar.ReasonTokenMalformed},
		"payload array":         {hdr + "." + seg(`[1]`) + "." + sig, sidecar.ReasonTokenMalformed},
		"iss number":            {hdr + "." + seg(`{"iss":1}`) + "." + sig, sidecar.ReasonTokenMalformed},
		"aud object":            {hdr + "." + seg(`{"aud":{"a":1}}`) + "." + sig, sidecar.ReasonTokenMalformed},
		"aud mixed array":       {hdr + "." + seg(`{"aud":["a",1]}`) + "." + sig, sidecar.ReasonTokenMalformed},
		"exp string":            {hdr + "." + seg(`{"exp":"2000000000"}`) + "." + sig, sidecar.ReasonTokenMalformed},
		"exp huge":              {hdr + "." + seg(`{"exp":1e300}`) + "." + sig, sidecar.ReasonTokenMalformed},
		"exp negative":          {hdr + "." + seg(`{"exp":-1}`) + "." + sig, sidecar.ReasonTokenMalformed},
		"nbf bool":              {hdr + "." + seg(`{"exp":1,"nbf":true}`) + "." + sig, sidecar.ReasonTokenMalformed},
		"huge header":           {seg(`{"alg":"RS256","x":"`+strings.Repeat("a", 5000)+`"}`) + "." + pay + "." + sig, sidecar.ReasonTokenMalformed},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parseToken(c.token)
			var pe *parseError
			if !errors.As(err, &pe) || pe.reason != c.reason {
				t.Fatalf("parseToken error %v, want reason %s", err, c.reason)
			}
			if c.token != "" && len(c.token) > 8 && strings.Contains(pe.Error(), c.token) {
				t.Fatal("the error quotes the token")
			}
		})
	}
}

func TestPrecheck(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	m := &OIDCAuth{
		Leeway:    caddy.Duration(30 * time.Second),
		algs:      map[string]bool{"RS256": true, "ES256": true},
		tokenType: "at+jwt",
		issuers: map[string]*issuer{
			"https://a": {cfg: &Issuer{Issuer: "https://a"}, audiences: []string{"api", "api2"}},
		},
	}
	base := func() *preToken {
		return &preToken{alg: "RS256", typ: "at+jwt", iss: "https://a", aud: []string{"x", "api2"},
			exp: now.Add(time.Minute), hasExp: true, nbf: now, hasNbf: true, iat: now, hasIat: true}
	}
	if _, err := m.precheck(base(), now); err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	cases := map[string]struct {
		mutate func(*preToken)
		reason string
	}{
		"alg none":           {func(p *preToken) { p.alg = "none" }, sidecar.ReasonAlgorithmNotAllowed},
		"alg HS256":          {func(p *preToken) { p.alg = "HS256" }, sidecar.ReasonAlgorithmNotAllowed},
		"alg not listed":     {func(p *preToken) { p.alg = "PS256" }, sidecar.ReasonAlgorithmNotAllowed},
		"alg case":           {func(p *preToken) { p.alg = "rs256" }, sidecar.ReasonAlgorithmNotAllowed},
		"unsigned":           {func(p *preToken) { p.unsigned = true }, sidecar.ReasonTokenMalformed},
		"unknown issuer":     {func(p *preToken) { p.iss = "https://b" }, sidecar.ReasonIssuerUnknown},
		"issuer slash":       {func(p *preToken) { p.iss = "https://a/" }, sidecar.ReasonIssuerUnknown},
		"no issuer":          {func(p *preToken) { p.iss = "" }, sidecar.ReasonIssuerUnknown},
		"typ JWT":            {func(p *preToken) { p.typ = "JWT" }, sidecar.ReasonTokenTypeInvalid},
		"typ missing":        {func(p *preToken) { p.typ = "" }, sidecar.ReasonTokenTypeInvalid},
		"no exp":             {func(p *preToken) { p.hasExp = false }, sidecar.ReasonTokenInvalid},
		"expired":            {func(p *preToken) { p.exp = now.Add(-31 * time.Second) }, sidecar.ReasonTokenExpired},
		"nbf beyond leeway":  {func(p *preToken) { p.nbf = now.Add(31 * time.Second) }, sidecar.ReasonTokenNotYetValid},
		"iat beyond leeway":  {func(p *preToken) { p.iat = now.Add(31 * time.Second) }, sidecar.ReasonTokenNotYetValid},
		"audience mismatch":  {func(p *preToken) { p.aud = []string{"other"} }, sidecar.ReasonAudienceMismatch},
		"no audience":        {func(p *preToken) { p.aud = nil }, sidecar.ReasonAudienceMismatch},
		"audience substring": {func(p *preToken) { p.aud = []string{"ap"} }, sidecar.ReasonAudienceMismatch},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := base()
			c.mutate(p)
			_, err := m.precheck(p, now)
			var pe *parseError
			if !errors.As(err, &pe) || pe.reason != c.reason {
				t.Fatalf("precheck error %v, want reason %s", err, c.reason)
			}
		})
	}
	for name, mutate := range map[string]func(*preToken){
		"expired within leeway": func(p *preToken) { p.exp = now.Add(-29 * time.Second) },
		"nbf within leeway":     func(p *preToken) { p.nbf = now.Add(29 * time.Second) },
		"iat within leeway":     func(p *preToken) { p.iat = now.Add(29 * time.Second) },
		"typ with prefix":       func(p *preToken) { p.typ = "application/AT+JWT" },
	} {
		p := base()
		mutate(p)
		if _, err := m.precheck(p, now); err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
	}
}
