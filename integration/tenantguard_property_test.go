package integration

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// tgSafeSet is the documented tenant id safe set, written independently of
// the module.
var tgSafeSet = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// tgHeader is one raw header line as the client sends it.
type tgHeader struct{ name, value string }

// tgRandomSpelling is X-Tenant-ID with random letter case and random '_'
// or '.' for '-'.
func tgRandomSpelling(rng *rand.Rand) string {
	name := []byte("x-tenant-id")
	for i, c := range name {
		switch {
		case c == '-' && rng.IntN(3) == 0:
			name[i] = "_."[rng.IntN(2)]
		case c != '-' && rng.IntN(2) == 0:
			name[i] = c - ('a' - 'A')
		}
	}
	return string(name)
}

// tgRandomHeaders mixes tenant headers in random spellings, duplicates,
// good and bad values, Connection headers naming the tenant header, and
// unrelated headers.
func tgRandomHeaders(rng *rand.Rand) []tgHeader {
	values := []string{
		"acme", "globex", "ACME", "Acme", "ac me", "acme,globex", "acme, acme", "acme;globex",
		"", "acmé", "acme.", "acme-1", "*", `"acme"`, " acme", "acme\t", strings.Repeat("a", 129),
	}
	var hs []tgHeader
	for n := rng.IntN(5); n > 0; n-- {
		switch rng.IntN(6) {
		case 0:
			v := tgRandomSpelling(rng)
			if rng.IntN(2) == 0 {
				v += ", keep-alive"
			}
			hs = append(hs, tgHeader{"Connection", v})
		case 1:
			hs = append(hs, tgHeader{"X-Other", "acme"})
		default:
			hs = append(hs, tgHeader{tgRandomSpelling(rng), values[rng.IntN(len(values))]})
		}
	}
	return hs
}

// tgExpected is the rules for one request: the refusal reason, or
// "" when the request must reach the upstream. The server trims spaces and
// tabs around values and merges names that differ only in case; names with
// '_' or '.' are other headers, which must never count.
func tgExpected(hs []tgHeader, tokenTenant string, inject bool) string {
	var values []string
	for _, h := range hs {
		if strings.EqualFold(h.name, "X-Tenant-ID") {
			values = append(values, strings.Trim(h.value, " \t"))
		}
	}
	switch {
	case len(values) == 0 && inject:
		return ""
	case len(values) == 0:
		return "tenant_missing"
	case len(values) > 1 || !tgSafeSet.MatchString(values[0]):
		return "tenant_malformed"
	case values[0] != tokenTenant:
		return "tenant_mismatch"
	}
	return ""
}

// TestTenantGuardPropertyRandomHeaders sends a few hundred random header
// combinations through the binary, with tokens for two tenants, on a route
// with and one without inject: every request the rules refuse is refused
// with the right reason and never reaches the upstream, and every request
// that passes reaches it with exactly the token's tenant, once.
func TestTenantGuardPropertyRandomHeaders(t *testing.T) {
	const n = 300
	s := startTenantGuard(t)
	tokens := map[string]string{
		"acme":   s.acme(),
		"globex": tgToken(s.acmeIdP, devidp.Claims{"tenant_id": "globex"}),
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x7e4a47))
	passed, refused := 0, 0
	for i := 0; i < n; i++ {
		hs := tgRandomHeaders(rng)
		tenant := []string{"acme", "globex"}[rng.IntN(2)]
		inject := rng.IntN(2) == 0
		route := "plain"
		if inject {
			route = "inject"
		}
		path := fmt.Sprintf("/%s/prop-%d", route, i)
		req := NewRequest(t, http.MethodGet, path, tokens[tenant])
		for _, h := range hs {
			req.Header[h.name] = append(req.Header[h.name], h.value)
		}
		resp, body := s.sidecar.Do(t, req)
		want := tgExpected(hs, tenant, inject)
		describe := fmt.Sprintf("case %d (seed %d, token tenant %s, inject %v, headers %q)", i, seed, tenant, inject, hs)
		if want != "" {
			var p tgProblem
			_ = json.Unmarshal(body, &p)
			if p.Reason != want {
				t.Fatalf("%s: got %d %s, want refusal %s", describe, resp.StatusCode, body, want)
			}
			s.assertNotReached(t, path)
			refused++
			continue
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: got %d %s, want it forwarded", describe, resp.StatusCode, body)
		}
		s.assertForwarded(t, path, resp, body, tenant)
		passed++
	}
	if passed < n/20 || refused < n/20 {
		t.Fatalf("generator is lopsided: %d passed, %d refused", passed, refused)
	}
	t.Logf("%d forwarded, %d refused", passed, refused)
}
