package auditlog

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestPseudonymsPerTenantAndForget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	p, err := newPseudonymizer([]byte("unit-test-secret-0123456789"), path)
	if err != nil {
		t.Fatal(err)
	}
	a1, _ := p.pseudonym("acme", "sub", "https://idp", "alice")
	a2, _ := p.pseudonym("acme", "sub", "https://idp", "alice")
	b, _ := p.pseudonym("acme", "sub", "https://idp", "bob")
	g, _ := p.pseudonym("globex", "sub", "https://idp", "alice")
	other, _ := p.pseudonym("acme", "sub", "https://other", "alice")
	client, _ := p.pseudonym("acme", "client", "https://idp", "alice")
	if a1 != a2 || a1 == b || a1 == g || a1 == other || a1 == client || len(a1) != 32 {
		t.Fatalf("pseudonyms %s %s %s %s %s %s", a1, a2, b, g, other, client)
	}
	if empty, _ := p.pseudonym("acme", "sub", "https://idp", ""); empty != "" {
		t.Fatalf("empty subject pseudonym %q", empty)
	}

	// Another process (with the same secret) sees the same pseudonyms.
	p2, _ := newPseudonymizer([]byte("unit-test-secret-0123456789"), path)
	if again, _ := p2.pseudonym("acme", "sub", "https://idp", "alice"); again != a1 {
		t.Fatal("the salt was not persisted")
	}
	// A different secret gives different pseudonyms.
	p3, _ := newPseudonymizer([]byte("another-secret-0123456789"), path)
	if x, _ := p3.pseudonym("acme", "sub", "https://idp", "alice"); x == a1 {
		t.Fatal("the secret does not enter the pseudonym")
	}

	before, _ := readKeyring(path)
	if err := forgetTenant(path, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := forgetTenant(path, "acme"); err == nil {
		t.Fatal("forgetting twice succeeded")
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), before.Salts["acme"]) {
		t.Fatal("the salt survived forget")
	}
	p.lastCheck.Store(0) // the next lookup looks at the file again
	after, _ := p.pseudonym("acme", "sub", "https://idp", "alice")
	if after == a1 {
		t.Fatal("the running pseudonymizer kept the forgotten salt")
	}
	if g2, _ := p.pseudonym("globex", "sub", "https://idp", "alice"); g2 != g {
		t.Fatal("forgetting acme changed globex")
	}
	kr, _ := readKeyring(path)
	if kr.Forgotten["acme"] == "" || kr.Salts["acme"] == before.Salts["acme"] {
		t.Fatalf("keyring after forget: %+v", kr)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("keyring mode %v, want 0600", fi.Mode().Perm())
	}
}

// A salt that forget removed is never written back by a process that had it
// cached when it adds another tenant.
func TestForgottenSaltIsNotResurrected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	p, _ := newPseudonymizer([]byte("unit-test-secret-0123456789"), path)
	_, _ = p.pseudonym("acme", "sub", "i", "alice")
	old, _ := readKeyring(path)
	if err := forgetTenant(path, "acme"); err != nil {
		t.Fatal(err)
	}
	_, _ = p.pseudonym("initech", "sub", "i", "bob") // writes the keyring
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), old.Salts["acme"]) {
		t.Fatal("a cached salt was written back after forget")
	}
}

func TestConcurrentNewTenantsKeepEverySalt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, _ := newPseudonymizer([]byte("unit-test-secret-0123456789"), path)
			for _, tenant := range []string{"a", "b", "c", "d"} {
				if _, err := p.pseudonym(tenant, "sub", "i", "x"); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	kr, err := readKeyring(path)
	if err != nil || len(kr.Salts) != 4 {
		t.Fatalf("keyring %+v %v", kr, err)
	}
}

func TestCorruptKeyringIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	_ = os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := newPseudonymizer([]byte("unit-test-secret-0123456789"), path); err == nil || !strings.Contains(err.Error(), "restore it from backup") {
		t.Fatalf("corrupt keyring: %v", err)
	}
}
