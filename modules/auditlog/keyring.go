package auditlog

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// keyringFile is the on-disk keyring: one random salt per tenant. Deleting a
// tenant's salt (crypto-shredding) makes every pseudonym derived from it
// unlinkable, because the pseudonym key can no longer be recomputed.
type keyringFile struct {
	Version int               `json:"version"`
	Salts   map[string]string `json:"salts"`
	// Forgotten records when each tenant's salt was destroyed, as evidence
	// of the erasure. It holds no key material.
	Forgotten map[string]string `json:"forgotten,omitempty"`
}

// keyringCheckInterval is how often a running sidecar looks for changes
// made by `privacy-sidecar audit forget`.
const keyringCheckInterval = time.Second

// pseudonymizer turns subjects, client IDs and record ids into per-tenant
// pseudonyms.
type pseudonymizer struct {
	secret []byte
	path   string
	// readOnly never adds a salt: for commands that query the log, where a
	// tenant without a salt (forgotten) must stay without one.
	readOnly bool

	mu        sync.RWMutex
	tenants   map[string]*tenantKey
	modTime   time.Time
	size      int64
	lastCheck atomic.Int64
}

// tenantKey is one tenant's derived pseudonym key, with a pool of keyed
// HMACs so that a pseudonym costs no key setup, and a bounded cache of
// recent pseudonyms (the same few subjects make most requests). The cache
// goes with the key when the tenant is forgotten.
type tenantKey struct {
	pool  sync.Pool // of *keyedMAC
	mu    sync.RWMutex
	cache map[pseudonymInput]string
	// ids caches record id pseudonyms apart from cache, so that the many
	// ids of list answers do not push the few subjects out
	ids map[string]string
}

type pseudonymInput struct{ kind, issuer, value string }

// keyedMAC is a keyed HMAC and a scratch buffer for its message.
type keyedMAC struct {
	h   hash.Hash
	msg []byte
}

// maxCachedPseudonyms bounds each tenant's cache; when full it starts over.
const maxCachedPseudonyms = 4096

func newPseudonymizer(secret []byte, path string) (*pseudonymizer, error) {
	p := &pseudonymizer{secret: secret, path: path, tenants: map[string]*tenantKey{}}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the keyring directory: %v", err)
	}
	if _, err := readKeyring(path); err != nil {
		return nil, err
	}
	return p, nil
}

// pseudonym returns the pseudonym of (issuer, value) in tenant; kind keeps
// subjects and client IDs in separate spaces. Empty values stay empty.
func (p *pseudonymizer) pseudonym(tenant, kind, issuer, value string) (string, error) {
	if value == "" {
		return "", nil
	}
	tk, err := p.key(tenant)
	if err != nil {
		return "", err
	}
	in := pseudonymInput{kind, issuer, value}
	tk.mu.RLock()
	ps, ok := tk.cache[in]
	tk.mu.RUnlock()
	if ok {
		return ps, nil
	}
	ps = tk.compute(in)
	tk.mu.Lock()
	if len(tk.cache) >= maxCachedPseudonyms {
		clear(tk.cache)
	}
	tk.cache[in] = ps
	tk.mu.Unlock()
	return ps, nil
}

// Pseudonym kinds: each is its own space, so a value means nothing across
// kinds (a record id equal to a subject gets another pseudonym).
const (
	kindSubject = "sub"
	kindClient  = "client"
	kindRecord  = "record"
)

// RecordPseudonym returns the pseudonym of a connector's record id for
// tenant, as audit records list it in record_ids: HMAC-SHA256 under the
// tenant's keyring key of "record" 0x00 0x00 id (no issuer), separated from
// subject and client pseudonyms by its kind. It is what `privacy-sidecar
// audit access --record ID` computes to find a record's releases; after
// `audit forget` it cannot be computed any more.
func (p *pseudonymizer) RecordPseudonym(tenant, recordID string) (string, error) {
	tk, err := p.key(tenant)
	if err != nil {
		return "", err
	}
	return recordPseudonym(tk, recordID), nil
}

// compute is HMAC-SHA256(tenant key, kind 0x00 issuer 0x00 value),
// truncated to 128 bits, in hex.
func (tk *tenantKey) compute(in pseudonymInput) string {
	km := tk.pool.Get().(*keyedMAC)
	km.h.Reset()
	km.msg = append(append(append(append(append(km.msg[:0], in.kind...), 0), in.issuer...), 0), in.value...)
	km.h.Write(km.msg)
	var sum [sha256.Size]byte
	km.h.Sum(sum[:0])
	tk.pool.Put(km)
	return hex.EncodeToString(sum[:16])
}

// recordPseudonym is the pseudonym of a connector record's id under a
// tenant's key: the subject pseudonym's construction (compute) with kind
// "record" and no issuer, so that forgetting the tenant unlinks record ids
// as it unlinks subjects. Anything that looks a record up by its id (an
// access report) computes the same function with the same tenant key.
func recordPseudonym(tk *tenantKey, id string) string {
	return tk.compute(pseudonymInput{kind: kindRecord, value: id})
}

// recordPseudonyms appends the pseudonyms of ids in tenant to dst.
func (p *pseudonymizer) recordPseudonyms(dst []string, tenant string, ids []string) ([]string, error) {
	tk, err := p.key(tenant)
	if err != nil {
		return dst, err
	}
	for _, id := range ids {
		tk.mu.RLock()
		ps, ok := tk.ids[id]
		tk.mu.RUnlock()
		if !ok {
			ps = recordPseudonym(tk, id)
			tk.mu.Lock()
			if len(tk.ids) >= maxCachedPseudonyms {
				clear(tk.ids)
			}
			tk.ids[id] = ps
			tk.mu.Unlock()
		}
		dst = append(dst, ps)
	}
	return dst, nil
}

// key returns the tenant's key, creating and persisting a salt for a tenant
// seen for the first time.
func (p *pseudonymizer) key(tenant string) (*tenantKey, error) {
	p.refresh()
	p.mu.RLock()
	tk := p.tenants[tenant]
	p.mu.RUnlock()
	if tk != nil {
		return tk, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if tk := p.tenants[tenant]; tk != nil {
		return tk, nil
	}
	if p.readOnly {
		salt, err := existingSalt(p.path, tenant)
		if err != nil {
			return nil, err
		}
		tk = p.derive(tenant, salt)
		p.tenants[tenant] = tk
		return tk, nil
	}
	salt, err := ensureSalt(p.path, tenant)
	if err != nil {
		return nil, err
	}
	tk = p.derive(tenant, salt)
	p.tenants[tenant] = tk
	return tk, nil
}

// derive computes the tenant key: HKDF-SHA256 with the configured secret as
// input key material, the tenant's salt, and the tenant name as info.
func (p *pseudonymizer) derive(tenant string, salt []byte) *tenantKey {
	key, err := hkdf.Key(sha256.New, p.secret, salt, "alysio audit pseudonym v1\x00"+tenant, 32)
	if err != nil { // only for absurd lengths
		panic(err)
	}
	tk := &tenantKey{cache: make(map[pseudonymInput]string), ids: make(map[string]string)}
	tk.pool.New = func() any { return &keyedMAC{h: hmac.New(sha256.New, key)} }
	return tk
}

// refresh drops cached tenant keys when the keyring file changed on disk (a
// tenant was forgotten), at most once per keyringCheckInterval.
func (p *pseudonymizer) refresh() {
	now := time.Now().UnixNano()
	last := p.lastCheck.Load()
	if now-last < int64(keyringCheckInterval) || !p.lastCheck.CompareAndSwap(last, now) {
		return
	}
	fi, err := os.Stat(p.path)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil && fi.ModTime().Equal(p.modTime) && fi.Size() == p.size {
		return
	}
	if err == nil {
		p.modTime, p.size = fi.ModTime(), fi.Size()
	}
	// Keys are re-derived on demand from whatever salts remain.
	clear(p.tenants)
}

// ensureSalt returns the tenant's salt from the keyring file, adding a new
// random one under the file lock if the tenant has none. Only the new salt is
// merged into what is on disk, so a salt that `audit forget` removed is
// never written back from memory.
func ensureSalt(path, tenant string) ([]byte, error) {
	unlock, err := lockKeyring(path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	kr, err := readKeyring(path)
	if err != nil {
		return nil, err
	}
	if s, ok := kr.Salts[tenant]; ok {
		return base64.RawURLEncoding.DecodeString(s)
	}
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	kr.Salts[tenant] = base64.RawURLEncoding.EncodeToString(salt)
	if err := writeKeyring(path, kr); err != nil {
		return nil, err
	}
	return salt, nil
}

// TenantForgottenError is returned for a tenant whose salt is not in the
// keyring: forgotten (At says when), or never audited.
type TenantForgottenError struct {
	Tenant, Keyring, At string
}

func (e *TenantForgottenError) Error() string {
	if e.At != "" {
		return fmt.Sprintf("tenant %q was forgotten on %s: its pseudonyms can no longer be computed, so nothing can be linked to it", e.Tenant, e.At)
	}
	return fmt.Sprintf("tenant %q has no pseudonym salt in %s: never audited there, or the keyring is not the one the log was written with", e.Tenant, e.Keyring)
}

// existingSalt returns the tenant's salt without adding one.
func existingSalt(path, tenant string) ([]byte, error) {
	kr, err := readKeyring(path)
	if err != nil {
		return nil, err
	}
	s, ok := kr.Salts[tenant]
	if !ok {
		return nil, &TenantForgottenError{Tenant: tenant, Keyring: path, At: kr.Forgotten[tenant]}
	}
	return base64.RawURLEncoding.DecodeString(s)
}

// forgetTenant removes a tenant's salt from the keyring file.
func forgetTenant(path, tenant string) error {
	unlock, err := lockKeyring(path)
	if err != nil {
		return err
	}
	defer unlock()
	kr, err := readKeyring(path)
	if err != nil {
		return err
	}
	if _, ok := kr.Salts[tenant]; !ok {
		return fmt.Errorf("tenant %q has no salt in keyring %s (never audited, or already forgotten)", tenant, path)
	}
	delete(kr.Salts, tenant)
	if kr.Forgotten == nil {
		kr.Forgotten = map[string]string{}
	}
	kr.Forgotten[tenant] = time.Now().UTC().Format(time.RFC3339)
	return writeKeyring(path, kr)
}

func readKeyring(path string) (*keyringFile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &keyringFile{Version: 1, Salts: map[string]string{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the audit keyring: %v", err)
	}
	kr := new(keyringFile)
	if err := json.Unmarshal(data, kr); err != nil {
		return nil, fmt.Errorf("the audit keyring %s is not valid JSON (%v): restore it from backup; do not delete it, or every pseudonym changes", path, err)
	}
	if kr.Version != 1 {
		return nil, fmt.Errorf("the audit keyring %s has version %d; this sidecar reads version 1", path, kr.Version)
	}
	if kr.Salts == nil {
		kr.Salts = map[string]string{}
	}
	return kr, nil
}

// writeKeyring replaces the keyring atomically: a reader never sees half a
// file, and the old content is unlinked rather than left beside it.
func writeKeyring(path string, kr *keyringFile) error {
	data, err := json.MarshalIndent(kr, "", "\t")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keyring-*")
	if err != nil {
		return fmt.Errorf("writing the audit keyring: %v", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the audit keyring: %v", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing the audit keyring: %v", err)
	}
	return nil
}
