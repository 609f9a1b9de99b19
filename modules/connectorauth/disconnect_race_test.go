package connectorauth

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestDisconnectLeavesANewerConnect: a disconnect marks its generation,
// then waits for the connection's storage lock; a connect that another
// replica makes in between (under that lock) starts a new generation. The
// disconnect ends the generation it marked, and revokes that generation's
// refresh token, never the new one: the connect that was answered
// "connected" stays connected, with its credential.
func TestDisconnectLeavesANewerConnect(t *testing.T) {
	srv := newOAuthServer(t)
	dir := t.TempDir()
	a, b := replica(t, dir, srv, "crm"), replica(t, dir, srv, "crm")
	ctx := context.Background()
	first, second := srv.issue(), srv.issue()
	if _, err := a.Connect(ctx, "acme", Credential{RefreshToken: first}); err != nil {
		t.Fatal(err)
	}

	// The test holds the lock as replica b's connect would, so that the
	// disconnect stops after marking its generation.
	st := b.mgr.store()
	unlock, err := st.lock(ctx, "acme", "crm")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		r   *Receipt
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := a.Disconnect(ctx, "acme")
		done <- result{r, err}
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st.storage.Exists(ctx, markerKey("acme", "crm")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the disconnect did not mark the connection")
		}
	}
	// what Connect does under the lock: a new generation, the old marker gone
	newer := &Connection{Tenant: "acme", Connector: "crm", State: StateConnected, Generation: randomID(),
		ConnectedAt: time.Now().UTC(), Credential: &Credential{RefreshToken: second}}
	if err := st.saveRecord(ctx, b.keys, newer); err != nil {
		t.Fatal(err)
	}
	if err := st.deleteMarker(ctx, "acme", "crm"); err != nil {
		t.Fatal(err)
	}
	if err := st.changed(ctx); err != nil {
		t.Fatal(err)
	}
	unlock()

	var res result
	select {
	case res = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the disconnect did not finish")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	stored, mk, err := st.load(ctx, b.keys, "acme", "crm")
	if err != nil {
		t.Fatal(err)
	}
	if stored == nil || stored.Generation != newer.Generation || effectiveState(stored, mk) != StateConnected ||
		stored.Credential == nil || stored.Credential.RefreshToken != second {
		t.Fatalf("the newer connect was undone by the older disconnect: %+v, marker %+v", stored, mk)
	}
	srv.mu.Lock()
	firstValid, secondValid := srv.refresh[first], srv.refresh[second]
	srv.mu.Unlock()
	if firstValid || !secondValid {
		t.Fatalf("revoked the wrong refresh token: first still valid %v, second still valid %v (receipt %+v)", firstValid, secondValid, res.r)
	}
	if !slices.Contains(res.r.Revoked, hintRefreshToken) {
		t.Fatalf("receipt %+v: the disconnected generation's refresh token was not revoked", res.r)
	}
	if _, err := b.Acquire(ctx, "acme", ""); err != nil {
		t.Fatalf("the newer connection cannot be used: %v", err)
	}
}
