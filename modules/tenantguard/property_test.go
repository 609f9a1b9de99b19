package tenantguard

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// randomHeaderBlock builds a raw header block mixing the tenant header in
// random spellings ('_' for '-', any case), duplicates, good and bad values,
// Connection headers naming it, and unrelated headers.
func randomHeaderBlock(rng *rand.Rand) string {
	values := []string{
		"acme", "globex", "ACME", "Acme", "acme ", " acme", "ac me", "acme,globex", "acme, acme", "acme;globex",
		"", "acmé", "acme\t", "\tacme", "acme.", "acme-1", "*", "acme%00", `"acme"`, strings.Repeat("a", 129),
	}
	var b strings.Builder
	for n := rng.IntN(5); n > 0; n-- {
		switch rng.IntN(6) {
		case 0:
			b.WriteString("Connection: ")
			b.WriteString(randomSpelling(rng))
			if rng.IntN(2) == 0 {
				b.WriteString(", keep-alive")
			}
		case 1:
			b.WriteString("X-Other: acme")
		default:
			b.WriteString(randomSpelling(rng))
			b.WriteString(": ")
			b.WriteString(values[rng.IntN(len(values))])
		}
		b.WriteString("\r\n")
	}
	return b.String()
}

// randomSpelling is X-Tenant-ID with each letter's case and each
// separator ('-', '_' or '.') chosen at random.
func randomSpelling(rng *rand.Rand) string {
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

// TestPropertyRandomHeaders runs many random header combinations through
// net/http's parser and the guard, with and without inject, for two token
// tenants: the upstream never sees a tenant other than the token's, never
// sees a disguised copy, and never sees a request that should be refused.
func TestPropertyRandomHeaders(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x7e4a47))
	guards := []*TenantGuard{provision(t, &TenantGuard{}), provision(t, &TenantGuard{Inject: true})}
	passed, refused := 0, 0
	for i := 0; i < n; i++ {
		block := randomHeaderBlock(rng)
		m := guards[rng.IntN(2)]
		tenant := []string{"acme", "globex"}[rng.IntN(2)]
		if problem := judge(m, block, tenant); problem != "" {
			t.Fatalf("case %d (seed %d, inject %v, token tenant %s): %s\nheaders:\n%q", i, seed, m.Inject, tenant, problem, block)
		}
		if _, code, _, _, ok := runRaw(m, block, tenant); ok && code == 200 {
			passed++
		} else {
			refused++
		}
	}
	// A generator that only ever produced refusals would prove nothing.
	if passed < n/20 || refused < n/20 {
		t.Fatalf("generator is lopsided: %d passed, %d refused", passed, refused)
	}
	t.Logf("%d passed, %d refused", passed, refused)
}
