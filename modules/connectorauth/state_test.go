package connectorauth

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestEffectiveState(t *testing.T) {
	cred := &Credential{RefreshToken: "rt"}
	for _, c := range []struct {
		name string
		conn *Connection
		mk   *marker
		want string
	}{
		{"never connected", nil, nil, StateDisconnected},
		{"connected", &Connection{State: StateConnected, Generation: "g1", Credential: cred}, nil, StateConnected},
		{"marker of this generation", &Connection{State: StateConnected, Generation: "g1", Credential: cred}, &marker{Generation: "g1"}, StateDisconnected},
		{"marker of an ended generation", &Connection{State: StateConnected, Generation: "g2", Credential: cred}, &marker{Generation: "g1"}, StateConnected},
		{"reauthorization required", &Connection{State: StateReauthorizationRequired, Generation: "g1", Credential: cred}, nil, StateReauthorizationRequired},
		{"disconnected record", &Connection{State: StateDisconnected, Generation: "g1"}, nil, StateDisconnected},
		{"connected without credential", &Connection{State: StateConnected, Generation: "g1"}, nil, StateDisconnected},
		{"unknown state", &Connection{State: "paused", Generation: "g1", Credential: cred}, nil, StateDisconnected},
	} {
		if got := effectiveState(c.conn, c.mk); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestTransitions(t *testing.T) {
	allowed := map[[3]string]bool{
		{"", StateConnected, causeConnect}:                                         true,
		{StateDisconnected, StateConnected, causeConnect}:                          true,
		{StateReauthorizationRequired, StateConnected, causeConnect}:               true,
		{StateConnected, StateDisconnected, causeDisconnect}:                       true,
		{StateReauthorizationRequired, StateDisconnected, causeDisconnect}:         true,
		{StateConnected, StateReauthorizationRequired, causeRefresh}:               true,
		{StateConnected, StateConnected, causeRefresh}:                             true,
		{StateDisconnected, StateConnected, causeRefresh}:                          false, // a refresh never revives
		{StateReauthorizationRequired, StateConnected, causeRefresh}:               false,
		{StateDisconnected, StateReauthorizationRequired, causeRefresh}:            false,
		{StateConnected, StateDisconnected, causeRefresh}:                          false,
		{StateDisconnected, StateReauthorizationRequired, causeDisconnect}:         false,
		{StateReauthorizationRequired, StateReauthorizationRequired, causeConnect}: false,
	}
	for tr, want := range allowed {
		if got := checkTransition(tr[0], tr[1], tr[2]) == nil; got != want {
			t.Errorf("%s -> %s by %s allowed = %v, want %v", tr[0], tr[1], tr[2], got, want)
		}
	}
}

// TestEntryCutsRequestsWhenLeavingConnected: leaving connected cancels the
// requests in flight with the cause and purges the token; a new generation
// while connected purges the token only; a late connected write of an ended
// generation stays disconnected.
func TestEntryCutsRequestsWhenLeavingConnected(t *testing.T) {
	e := newEntry("acme", "crm")
	e.setState(StateConnected, "g1", ErrDisconnected)
	live := e.live
	e.token = &accessToken{value: "at", refreshAt: time.Now().Add(time.Hour), generation: "g1"}

	e.setState(StateConnected, "g2", ErrDisconnected) // reconnected with a new credential
	if live.Err() != nil {
		t.Fatal("a reconnect cut the requests in flight")
	}
	if e.token != nil {
		t.Fatal("a new generation kept the old access token")
	}

	e.setState(StateDisconnected, "g2", ErrDisconnected)
	if !errors.Is(context.Cause(live), ErrDisconnected) {
		t.Fatalf("requests in flight: cause %v, want ErrDisconnected", context.Cause(live))
	}
	if e.live.Err() != nil {
		t.Fatal("the next requests' context is already cancelled")
	}
	if e.endedGeneration != "g2" {
		t.Fatalf("ended generation %q, want g2", e.endedGeneration)
	}

	m := &Manager{}
	m.apply(nil, e, &Connection{State: StateConnected, Generation: "g2", Credential: &Credential{RefreshToken: "rt"}}, nil)
	if e.state != StateDisconnected {
		t.Fatal("a late write of the ended generation revived the connection")
	}
	m.apply(nil, e, &Connection{State: StateConnected, Generation: "g3", Credential: &Credential{RefreshToken: "rt"}}, nil)
	if e.state != StateConnected {
		t.Fatal("a new connect was not applied")
	}
}

func TestValidName(t *testing.T) {
	for s, want := range map[string]bool{
		"acme": true, "crm-v2": true, "a.b_c": true, "": false, ".": false, "..": false, ".hidden": false,
		"a/b": false, "a b": false, "a\x00": false, "ä": false, string(make([]byte, MaxNameLength+1)): false,
	} {
		if ValidName(s) != want {
			t.Errorf("ValidName(%q) = %v", s, !want)
		}
	}
}
