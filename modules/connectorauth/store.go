package connectorauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sync"

	"github.com/caddyserver/certmagic"
)

// Storage layout under Caddy's storage (the `storage` global option). Names
// appear in keys; everything stored under them is encrypted.
//
//	sidecar/connections/<tenant>/<connector>         the connection record
//	sidecar/connection-markers/<tenant>/<connector>  a disconnect marker
//	sidecar/connection-keys/<tenant>/<key id>        the tenant's data key, wrapped
//	sidecar/connection-changes                       random; rewritten on every state change
const (
	prefixRecords = "sidecar/connections"
	prefixMarkers = "sidecar/connection-markers"
	prefixKeys    = "sidecar/connection-keys"
	keyChanges    = "sidecar/connection-changes"
)

func recordKey(tenant, connector string) string { return path.Join(prefixRecords, tenant, connector) }
func markerKey(tenant, connector string) string { return path.Join(prefixMarkers, tenant, connector) }
func dataKeyKey(tenant, keyID string) string    { return path.Join(prefixKeys, tenant, keyID) }

// lockName is the storage lock that serialises writes of one connection's
// record across replicas (refreshes that rotate the refresh token, state
// changes, the end of a disconnect).
func lockName(tenant, connector string) string {
	return "sidecar_connection_" + tenant + "_" + connector
}

func dataKeyLockName(tenant string) string { return "sidecar_connection_key_" + tenant }

// ErrUnreadable: a stored connection exists but cannot be read with the
// connector's key (another key, a changed or moved record, a lost data key).
var ErrUnreadable = errors.New("the stored connection cannot be read with this connector's key")

// envelope is what storage holds: the key id and the sealed JSON.
type envelope struct {
	Version int    `json:"v"`
	KeyID   string `json:"kid"`
	Sealed  []byte `json:"sealed"` // base64 in JSON
}

// store reads and writes encrypted connection records in one Caddy storage.
type store struct {
	storage certmagic.Storage

	mu       sync.Mutex
	dataKeys map[string][]byte // tenant + "\x00" + key id -> data key
}

func newStore(s certmagic.Storage) *store {
	return &store{storage: s, dataKeys: make(map[string][]byte)}
}

// dataKey returns the tenant's data key for k, creating and storing it
// (under a storage lock, so that replicas agree on one) when there is none.
func (s *store) dataKey(ctx context.Context, k *keyring, tenant string, create bool) ([]byte, error) {
	cacheKey := tenant + "\x00" + k.id
	s.mu.Lock()
	dk := s.dataKeys[cacheKey]
	s.mu.Unlock()
	if dk != nil {
		return dk, nil
	}
	dk, err := s.loadDataKey(ctx, k, tenant)
	if errors.Is(err, fs.ErrNotExist) && create {
		dk, err = s.createDataKey(ctx, k, tenant)
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.dataKeys[cacheKey] = dk
	s.mu.Unlock()
	return dk, nil
}

func (s *store) forgetDataKey(k *keyring, tenant string) {
	s.mu.Lock()
	delete(s.dataKeys, tenant+"\x00"+k.id)
	s.mu.Unlock()
}

func (s *store) loadDataKey(ctx context.Context, k *keyring, tenant string) ([]byte, error) {
	raw, err := s.storage.Load(ctx, dataKeyKey(tenant, k.id))
	if err != nil {
		return nil, err
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil || env.Version != 1 || env.KeyID != k.id {
		return nil, fmt.Errorf("the stored data key of tenant %q is not readable: %w", tenant, ErrUnreadable)
	}
	return k.unwrap(tenant, env.Sealed)
}

func (s *store) createDataKey(ctx context.Context, k *keyring, tenant string) ([]byte, error) {
	lock := dataKeyLockName(tenant)
	if err := s.storage.Lock(ctx, lock); err != nil {
		return nil, fmt.Errorf("locking tenant %q's data key: %w", tenant, err)
	}
	defer s.storage.Unlock(context.WithoutCancel(ctx), lock) //nolint:errcheck
	dk, err := s.loadDataKey(ctx, k, tenant)                 // another replica may have won
	if !errors.Is(err, fs.ErrNotExist) {
		return dk, err
	}
	if dk, err = newDataKey(); err != nil {
		return nil, err
	}
	wrapped, err := k.wrap(tenant, dk)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(envelope{Version: 1, KeyID: k.id, Sealed: wrapped})
	if err != nil {
		return nil, err
	}
	if err := s.storage.Store(ctx, dataKeyKey(tenant, k.id), raw); err != nil {
		return nil, fmt.Errorf("storing tenant %q's data key: %w", tenant, err)
	}
	return dk, nil
}

// put encrypts v under the tenant's data key and stores it at key. The
// storage key is the additional data: a record copied to another tenant or
// connector does not decrypt.
func (s *store) put(ctx context.Context, k *keyring, tenant, key string, v any) error {
	dk, err := s.dataKey(ctx, k, tenant, true)
	if err != nil {
		return err
	}
	plain, err := json.Marshal(v)
	if err != nil {
		return err
	}
	sealed, err := seal(dk, plain, []byte(key))
	clear(plain)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(envelope{Version: 1, KeyID: k.id, Sealed: sealed})
	if err != nil {
		return err
	}
	return s.storage.Store(ctx, key, raw)
}

// get loads and decrypts the value at key into v. A missing key is
// fs.ErrNotExist.
func (s *store) get(ctx context.Context, k *keyring, tenant, key string, v any) error {
	raw, err := s.storage.Load(ctx, key)
	if err != nil {
		return err
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil || env.Version != 1 {
		return fmt.Errorf("%s is not a connection record: %w", key, ErrUnreadable)
	}
	if env.KeyID != k.id {
		return fmt.Errorf("%s was encrypted with another `key` (id %s, this connector's is %s): %w", key, env.KeyID, k.id, ErrUnreadable)
	}
	plain, err := s.openWith(ctx, k, tenant, key, env.Sealed)
	if err != nil {
		return err
	}
	defer clear(plain)
	return json.Unmarshal(plain, v)
}

func (s *store) openWith(ctx context.Context, k *keyring, tenant, key string, sealed []byte) ([]byte, error) {
	dk, err := s.dataKey(ctx, k, tenant, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: the tenant's data key is gone: %w", key, ErrUnreadable)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	plain, err := open(dk, sealed, []byte(key))
	if err == nil {
		return plain, nil
	}
	// the cached data key may be outdated (the tenant's key was recreated
	// on another replica): read it again once
	s.forgetDataKey(k, tenant)
	if dk, err = s.dataKey(ctx, k, tenant, false); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if plain, err = open(dk, sealed, []byte(key)); err != nil {
		return nil, fmt.Errorf("%s does not decrypt: it was changed, moved or written with another key: %w", key, ErrUnreadable)
	}
	return plain, nil
}

// load reads a connection's record and marker. Either is nil when absent.
func (s *store) load(ctx context.Context, k *keyring, tenant, connector string) (*Connection, *marker, error) {
	var c Connection
	err := s.get(ctx, k, tenant, recordKey(tenant, connector), &c)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, nil
	case err != nil:
		return nil, nil, err
	}
	if c.Tenant != tenant || c.Connector != connector {
		return nil, nil, fmt.Errorf("the record of %s/%s names %s/%s: %w", tenant, connector, c.Tenant, c.Connector, ErrUnreadable)
	}
	var m marker
	err = s.get(ctx, k, tenant, markerKey(tenant, connector), &m)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &c, nil, nil
	case err != nil:
		return nil, nil, err
	}
	return &c, &m, nil
}

func (s *store) saveRecord(ctx context.Context, k *keyring, c *Connection) error {
	return s.put(ctx, k, c.Tenant, recordKey(c.Tenant, c.Connector), c)
}

func (s *store) saveMarker(ctx context.Context, k *keyring, tenant, connector string, m *marker) error {
	return s.put(ctx, k, tenant, markerKey(tenant, connector), m)
}

func (s *store) deleteMarker(ctx context.Context, tenant, connector string) error {
	err := s.storage.Delete(ctx, markerKey(tenant, connector))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// changed rewrites the change key, which every replica polls, with a new
// random value.
func (s *store) changed(ctx context.Context) error {
	return s.storage.Store(ctx, keyChanges, []byte(randomID()))
}

// changes returns the change key's value ("" when there has been none).
func (s *store) changes(ctx context.Context) (string, error) {
	raw, err := s.storage.Load(ctx, keyChanges)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return string(raw), err
}

// connectorsOf lists the connector names that have a record for tenant.
func (s *store) connectorsOf(ctx context.Context, tenant string) ([]string, error) {
	return s.names(ctx, path.Join(prefixRecords, tenant))
}

// tenants lists the tenants that have connection records.
func (s *store) tenants(ctx context.Context) ([]string, error) {
	return s.names(ctx, prefixRecords)
}

// names lists the valid names directly under prefix in storage; none when
// the prefix does not exist yet.
func (s *store) names(ctx context.Context, prefix string) ([]string, error) {
	keys, err := s.storage.List(ctx, prefix, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		if name := path.Base(k); ValidName(name) {
			names = append(names, name)
		}
	}
	return names, nil
}

// lock takes the connection's storage lock; the returned function releases it.
func (s *store) lock(ctx context.Context, tenant, connector string) (unlock func(), err error) {
	name := lockName(tenant, connector)
	if err := s.storage.Lock(ctx, name); err != nil {
		return nil, err
	}
	return func() { _ = s.storage.Unlock(context.Background(), name) }, nil
}
