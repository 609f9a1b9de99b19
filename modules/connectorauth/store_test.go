package connectorauth

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

func testStore(t *testing.T) (*store, string) {
	t.Helper()
	dir := t.TempDir()
	return newStore(&certmagic.FileStorage{Path: dir}), dir
}

func mustKeyring(t *testing.T, secret string) *keyring {
	t.Helper()
	k, err := newKeyring(secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestStoredConnectionIsUnreadableWithoutKey: the record, the marker and
// the tenant's data key are stored encrypted; no secret, state or time is
// in any stored byte, and the key itself is nowhere.
func TestStoredConnectionIsUnreadableWithoutKey(t *testing.T) {
	st, dir := testStore(t)
	k := mustKeyring(t, testKey)
	ctx := context.Background()
	// distinctive values: a short one could appear in base64 by chance
	secret := "rt-SECRET-do-not-store-in-clear-4711"
	const tenant, generation, lastError = "acme-tenant-0042", "generation-0123456789", "refresh failed: timeout-at-the-endpoint"
	conn := &Connection{Tenant: tenant, Connector: "crm", State: StateConnected, Generation: generation,
		ConnectedAt: time.Now(), LastError: lastError, Credential: &Credential{RefreshToken: secret}}
	if err := st.saveRecord(ctx, k, conn); err != nil {
		t.Fatal(err)
	}
	if err := st.saveMarker(ctx, k, tenant, "crm", &marker{Generation: generation, DisconnectedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, plain := range []string{secret, "refresh_token", `"state"`, generation, lastError, testKey, tenant} {
			if bytes.Contains(data, []byte(plain)) {
				t.Errorf("%s holds %q in clear: %s", path, plain, data)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != 3 { // record, marker, data key
		t.Errorf("%d files stored, want 3", files)
	}
	got, mk, err := st.load(ctx, k, tenant, "crm")
	if err != nil || got.Credential.RefreshToken != secret || mk == nil || mk.Generation != generation {
		t.Fatalf("load = %+v, %+v, %v", got, mk, err)
	}
	if s := effectiveState(got, mk); s != StateDisconnected {
		t.Errorf("a record with a marker for its generation is %s, want disconnected", s)
	}
}

// TestStoredConnectionRefusesTampering: a changed byte, a record moved to
// another tenant or connector, and another key all fail to load.
func TestStoredConnectionRefusesTampering(t *testing.T) {
	st, _ := testStore(t)
	k := mustKeyring(t, testKey)
	ctx := context.Background()
	conn := &Connection{Tenant: "acme", Connector: "crm", State: StateConnected, Generation: "g1", Credential: &Credential{RefreshToken: "rt"}}
	if err := st.saveRecord(ctx, k, conn); err != nil {
		t.Fatal(err)
	}
	// globex gets a data key of its own
	if err := st.saveRecord(ctx, k, &Connection{Tenant: "globex", Connector: "crm", State: StateConnected, Generation: "g2", Credential: &Credential{RefreshToken: "x"}}); err != nil {
		t.Fatal(err)
	}
	raw, err := st.storage.Load(ctx, recordKey("acme", "crm"))
	if err != nil {
		t.Fatal(err)
	}

	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	env.Sealed[len(env.Sealed)/2] ^= 1
	flipped, _ := json.Marshal(env)
	for name, c := range map[string]struct {
		key string
		raw []byte
		k   *keyring
	}{
		"flipped byte":       {recordKey("acme", "crm"), flipped, k},
		"moved to connector": {recordKey("acme", "erp"), raw, k},
		"moved to tenant":    {recordKey("globex", "crm"), raw, k},
		"another key":        {recordKey("acme", "crm"), raw, mustKeyring(t, strings.Repeat("z", MinKeyLength))},
	} {
		if err := st.storage.Store(ctx, c.key, c.raw); err != nil {
			t.Fatal(err)
		}
		tenant, connector := strings.Split(c.key, "/")[2], strings.Split(c.key, "/")[3]
		if got, _, err := st.load(ctx, c.k, tenant, connector); err == nil {
			t.Errorf("%s: loaded %+v, want an error", name, got)
		} else if strings.Contains(err.Error(), "rt") && strings.Contains(err.Error(), `"rt"`) {
			t.Errorf("%s: the error repeats the secret: %v", name, err)
		}
		_ = st.storage.Store(ctx, recordKey("acme", "crm"), raw)
	}
}

// TestReplicasAgreeOnOneDataKey: replicas creating a tenant's data key at
// the same time end with one key, and read each other's records.
func TestReplicasAgreeOnOneDataKey(t *testing.T) {
	dir := t.TempDir()
	k := mustKeyring(t, testKey)
	ctx := context.Background()
	stores := []*store{newStore(&certmagic.FileStorage{Path: dir}), newStore(&certmagic.FileStorage{Path: dir}), newStore(&certmagic.FileStorage{Path: dir})}
	var wg sync.WaitGroup
	for i, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &Connection{Tenant: "acme", Connector: "c" + string(rune('0'+i)), State: StateConnected, Generation: "g", Credential: &Credential{RefreshToken: "rt"}}
			if err := st.saveRecord(ctx, k, c); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	fresh := newStore(&certmagic.FileStorage{Path: dir})
	for i := range stores {
		if c, _, err := fresh.load(ctx, k, "acme", "c"+string(rune('0'+i))); err != nil || c == nil {
			t.Errorf("record %d unreadable by another replica: %v", i, err)
		}
	}
}

func TestKeyringRefusesShortKeys(t *testing.T) {
	if _, err := newKeyring(strings.Repeat("k", MinKeyLength-1)); err == nil {
		t.Fatal("a key shorter than 32 bytes was accepted")
	} else if strings.Contains(err.Error(), "kkkk") {
		t.Fatalf("the error repeats the key: %v", err)
	}
	a, b := mustKeyring(t, testKey), mustKeyring(t, testKey+"x")
	if a.id == b.id || a.kek == b.kek {
		t.Fatal("two keys gave the same key id or key-encryption key")
	}
}
