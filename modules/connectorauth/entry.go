package connectorauth

import (
	"context"
	"sync"
	"time"
)

// entry is this replica's view of one connection. Its fields are guarded
// by mu.
type entry struct {
	tenant, connector string

	mu sync.Mutex
	// user is the connector that last used the entry, to read it with when
	// no handler configures the connector any more.
	user *Connector
	// loaded is false until storage was read once.
	loaded     bool
	state      string
	generation string
	// endedGeneration is the generation this replica saw disconnected: a
	// record of it that still says connected (written by a refresh that
	// raced the disconnect) is not believed.
	endedGeneration string
	// stored is what the admin API reports from the record.
	stored Status

	// token is the cached access token, nil when there is none.
	token *accessToken
	// failedUntil holds back new refreshes for a moment after one failed,
	// so that a token endpoint that is down is not asked for every request.
	failedUntil time.Time
	failure     *Refusal
	lastRefresh time.Time
	lastError   string

	// live is cancelled, with the cause, when requests in flight on the
	// connection must stop; a new one replaces it at once.
	live context.Context
	cut  context.CancelCauseFunc
}

func newEntry(tenant, connector string) *entry {
	e := &entry{tenant: tenant, connector: connector, state: StateDisconnected}
	e.live, e.cut = context.WithCancelCause(context.Background())
	return e
}

// setState moves the entry to state and generation, purging the access
// token. Leaving connected cuts the requests in flight with cause. It
// reports whether the state or generation changed.
func (e *entry) setState(state, generation string, cause error) bool {
	if e.state == state && e.generation == generation {
		return false
	}
	if e.state == StateConnected && state != StateConnected {
		e.cutInFlight(cause)
	}
	if state == StateDisconnected {
		if generation != "" {
			e.endedGeneration = generation
		} else if e.generation != "" {
			e.endedGeneration = e.generation
		}
	}
	e.token = nil
	e.failedUntil = time.Time{}
	e.failure = nil
	e.state, e.generation = state, generation
	return true
}

// cutInFlight cancels the requests in flight and starts a new live context
// for the requests to come.
func (e *entry) cutInFlight(cause error) {
	e.cut(cause)
	e.live, e.cut = context.WithCancelCause(context.Background())
}

// accessToken is an access token cached in memory only.
type accessToken struct {
	value  string
	header []string // {"Bearer " + value}, made once
	// refreshAt is when it is no longer handed out: shortly before expiry.
	refreshAt time.Time
	// generation and fingerprint tie it to the connection and connector
	// config that obtained it.
	generation  string
	fingerprint string
}

func (t *accessToken) usable(now time.Time, generation, fingerprint string) bool {
	return t != nil && now.Before(t.refreshAt) && t.generation == generation && t.fingerprint == fingerprint
}
