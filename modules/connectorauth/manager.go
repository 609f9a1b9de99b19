package connectorauth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// How often every replica looks for state changes in storage, and how old
// its last look may be before it stops trusting what it knows. A
// disconnect on any replica reaches the others within PollInterval plus
// one storage read; a replica that cannot read storage for StaleAfter cuts
// its in-flight requests and refuses new ones, since it could not see a
// disconnect.
const (
	PollInterval = 500 * time.Millisecond
	StaleAfter   = 1500 * time.Millisecond
)

// Why a request's context is cancelled (context.Cause).
var (
	// ErrDisconnected: the connection was disconnected while the request
	// was in flight.
	ErrDisconnected = errors.New("the connection was disconnected")
	// ErrUnconfirmed: this replica could not read the connections' state
	// from storage for longer than StaleAfter.
	ErrUnconfirmed = errors.New("the connection's state could not be confirmed from storage")
)

// managers holds one Manager per storage, shared by every connector_auth
// handler and kept across config reloads, so that cached access tokens and
// the requests in flight survive a reload.
var managers = caddy.NewUsagePool()

// Manager keeps the connections of one Caddy storage: it reads and writes
// them, caches access tokens in memory, refreshes them once per expiry, and
// polls storage for changes made by other replicas.
type Manager struct {
	poolKey string
	st      atomic.Pointer[store]
	logger  *zap.Logger

	mu      sync.Mutex
	entries map[entryKey]*entry

	flights singleflight.Group

	// lastPoll is when storage was last read successfully (UnixNano).
	lastPoll   atomic.Int64
	lastChange string // the change key's value at the last poll; under pollMu
	// pollMu serialises reading storage and applying it to entries, so that
	// an older read is never applied after a newer one.
	pollMu sync.Mutex

	// countedAt and countDirty pace the connections gauge.
	countedAt  time.Time // poller only
	countDirty atomic.Bool

	stop context.CancelFunc
	done chan struct{}
	// ctx lives as long as the manager: refreshes and revocations run in it,
	// not in a request's context, which may end while others wait for them.
	ctx context.Context
}

type entryKey struct{ tenant, connector string }

// OpenManager returns the manager of ctx's storage, starting it on first
// use. Release it with Release when the caller is cleaned up.
func OpenManager(ctx caddy.Context) (*Manager, error) {
	storage := ctx.Storage()
	if storage == nil {
		return nil, errors.New("no storage is configured")
	}
	key := "connections:" + storageID(storage)
	val, loaded, err := managers.LoadOrNew(key, func() (caddy.Destructor, error) {
		return newManager(key, storage, caddy.Log().Named("connections")), nil
	})
	if err != nil {
		return nil, err
	}
	m := val.(*Manager)
	if loaded {
		// the same storage, configured again: use the new value (a storage
		// module may hold a client the old config will close)
		m.st.Store(newStore(storage))
	}
	return m, nil
}

// storageID names a storage so that a reload that keeps the same storage
// finds the same manager.
func storageID(s certmagic.Storage) string {
	if str, ok := s.(fmt.Stringer); ok {
		return fmt.Sprintf("%T:%s", s, str.String())
	}
	return fmt.Sprintf("%T", s)
}

// NewManager starts a manager of storage outside the shared pool, for tests
// and tools; Caddy modules use OpenManager. Stop it with Destruct.
func NewManager(storage certmagic.Storage, logger *zap.Logger) *Manager {
	return newManager("", storage, logger)
}

func newManager(key string, storage certmagic.Storage, logger *zap.Logger) *Manager {
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		poolKey: key,
		logger:  logger,
		entries: make(map[entryKey]*entry),
		stop:    cancel,
		done:    make(chan struct{}),
		ctx:     ctx,
	}
	m.st.Store(newStore(storage))
	go m.poll()
	return m
}

// Release gives back the reference OpenManager took.
func (m *Manager) Release() error {
	_, err := managers.Delete(m.poolKey)
	return err
}

// Destruct stops polling when the last config using the storage is gone.
func (m *Manager) Destruct() error {
	m.stop()
	<-m.done
	return nil
}

func (m *Manager) store() *store { return m.st.Load() }

// fresh reports whether storage was read successfully within StaleAfter.
func (m *Manager) fresh() bool {
	return time.Since(time.Unix(0, m.lastPoll.Load())) < StaleAfter
}

// poll reads the change key every PollInterval and, when another replica
// changed something, reloads every connection this replica holds.
func (m *Manager) poll() {
	defer close(m.done)
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	m.pollOnce(m.ctx)
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		if err := m.pollOnce(m.ctx); err != nil && !m.fresh() {
			m.cutAll(ErrUnconfirmed)
		}
		updateStateGauge(m)
	}
}

// pollOnce reads the change key and applies what changed. Requests call
// it too, when the poller is late.
func (m *Manager) pollOnce(ctx context.Context) error {
	m.pollMu.Lock()
	defer m.pollMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, StaleAfter)
	defer cancel()
	val, err := m.store().changes(ctx)
	if err != nil {
		if m.fresh() {
			m.logger.Warn("cannot read connection changes from storage", zap.Error(err))
		}
		return err
	}
	if val != m.lastChange {
		m.reloadAll(ctx)
		m.lastChange = val
		m.countDirty.Store(true)
	}
	m.lastPoll.Store(time.Now().UnixNano())
	return nil
}

// reloadAll rereads every connection this replica holds. A connection
// that cannot be read is no longer known: its requests in flight are cut,
// and the next request reads it again (and is refused if that fails), so
// that one unreadable record never stops the others.
func (m *Manager) reloadAll(ctx context.Context) {
	m.mu.Lock()
	list := make([]*entry, 0, len(m.entries))
	for _, e := range m.entries {
		list = append(list, e)
	}
	m.mu.Unlock()
	for _, e := range list {
		// the connector as configured now, else the one that last used the
		// entry (a request of a config being unloaded may still be running)
		c := lookupOn(m, e.connector)
		if c == nil {
			e.mu.Lock()
			c = e.user
			e.mu.Unlock()
		}
		if c == nil {
			continue
		}
		conn, mk, err := m.store().load(ctx, c.keys, e.tenant, e.connector)
		if err != nil {
			m.logger.Error("cannot read a connection from storage", zap.String("tenant", e.tenant), zap.String("connector", e.connector), zap.Error(err))
			e.mu.Lock()
			e.loaded = false
			if e.state == StateConnected {
				e.cutInFlight(ErrUnconfirmed)
			}
			e.token = nil
			e.mu.Unlock()
			continue
		}
		m.apply(c, e, conn, mk)
	}
}

// cutAll cancels every request in flight on any connection.
func (m *Manager) cutAll(cause error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.entries {
		e.mu.Lock()
		e.cutInFlight(cause)
		e.mu.Unlock()
	}
}

// entry returns the in-memory state of c's connection for tenant,
// creating it unloaded.
func (m *Manager) entry(c *Connector, tenant string) *entry {
	k := entryKey{tenant, c.Name}
	m.mu.Lock()
	e := m.entries[k]
	if e == nil {
		e = newEntry(tenant, c.Name)
		m.entries[k] = e
	}
	m.mu.Unlock()
	e.mu.Lock()
	e.user = c
	e.mu.Unlock()
	return e
}

// apply makes the entry reflect what storage says, cutting requests in
// flight and purging the cached access token when the connection stopped
// being usable or became another generation. An access token purged
// because another replica disconnected the connection is revoked.
func (m *Manager) apply(c *Connector, e *entry, conn *Connection, mk *marker) {
	state := effectiveState(conn, mk)
	gen := ""
	if conn != nil {
		gen = conn.Generation
	}
	e.mu.Lock()
	if gen != "" && gen == e.endedGeneration {
		state = StateDisconnected // a late write of a generation already ended here
	}
	var purged *accessToken
	if state != StateConnected || gen != e.generation {
		purged = e.token
	}
	changed := e.setState(state, gen, ErrDisconnected)
	if conn != nil {
		e.stored = statusOf(conn, state)
	}
	e.loaded = true
	e.mu.Unlock()
	if changed && state == StateDisconnected && purged != nil && c != nil {
		// Another replica disconnected the connection. Deleting the refresh
		// token does not invalidate access tokens already issued at every
		// provider (HubSpot says so), so each replica revokes its own.
		go c.revokeOrphan(e.tenant, purged)
	}
}

// randomID returns 128 random bits in hex.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Interface guards
var _ caddy.Destructor = (*Manager)(nil)

// applyNow is apply under pollMu, for writers other than the poller.
func (m *Manager) applyNow(c *Connector, e *entry, conn *Connection, mk *marker) {
	m.pollMu.Lock()
	defer m.pollMu.Unlock()
	m.apply(c, e, conn, mk)
}
