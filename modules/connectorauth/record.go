package connectorauth

import (
	"errors"
	"strings"
	"time"
)

// Connection states. They are a contract: the admin API answers them and
// the docs name them.
const (
	StateConnected               = "connected"
	StateDisconnected            = "disconnected"
	StateReauthorizationRequired = "reauthorization_required"
)

// Grants a connector may use toward the connected system.
const (
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// Connection is what storage holds for one tenant's connector, encrypted as
// a whole. A connection that never existed reads as disconnected.
type Connection struct {
	Tenant    string `json:"tenant"`
	Connector string `json:"connector"`
	State     string `json:"state"`
	// Generation is random per connect. A disconnect names the generation
	// it ended, so that a late write of an ended generation (a refresh that
	// raced the disconnect) never brings it back; only a new connect does.
	Generation     string    `json:"generation,omitempty"`
	ConnectedAt    time.Time `json:"connected_at,omitzero"`
	DisconnectedAt time.Time `json:"disconnected_at,omitzero"`
	LastRefresh    time.Time `json:"last_refresh,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	// Credential is the tenant's secret; nil once a disconnect deleted it.
	Credential *Credential `json:"credential,omitempty"`
}

// Credential is the secret a tenant granted: a refresh token, or client
// credentials of the tenant's own.
type Credential struct {
	RefreshToken string `json:"refresh_token,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
}

// Kind names the credential for audit records: never its value.
func (c *Credential) Kind() string {
	switch {
	case c == nil:
		return ""
	case c.RefreshToken != "":
		return GrantRefreshToken
	}
	return GrantClientCredentials // the tenant's client, or {} for the connector's own
}

// marker is the disconnect marker: written once by a disconnect, before
// anything else, and never by anyone else. A connection whose generation
// has a marker is disconnected whatever its record says.
type marker struct {
	Generation     string    `json:"generation"`
	DisconnectedAt time.Time `json:"disconnected_at"`
}

// effectiveState is the state a connection is in, given its record and
// its marker (either may be nil).
func effectiveState(c *Connection, m *marker) string {
	switch {
	case c == nil:
		return StateDisconnected
	case m != nil && m.Generation == c.Generation:
		return StateDisconnected
	case c.State == StateConnected && c.Credential == nil:
		return StateDisconnected // cannot be used; a bug or a hand edit
	}
	switch c.State {
	case StateConnected, StateReauthorizationRequired:
		return c.State
	}
	return StateDisconnected
}

// checkTransition says whether a connection in state from may go to state
// to by the given cause. Only a connect leaves disconnected or
// reauthorization_required; a refresh never revives a connection.
func checkTransition(from, to, cause string) error {
	switch {
	case to == StateConnected && cause == causeConnect:
		return nil
	case to == StateDisconnected && cause == causeDisconnect:
		return nil
	case to == StateReauthorizationRequired && cause == causeRefresh && from == StateConnected:
		return nil
	case to == StateConnected && cause == causeRefresh && from == StateConnected:
		return nil
	}
	return errors.New("connection state cannot go from " + from + " to " + to + " by " + cause)
}

// Causes of a state change.
const (
	causeConnect    = "connect"
	causeDisconnect = "disconnect"
	causeRefresh    = "refresh"
)

// MaxNameLength bounds a tenant or connector name, in bytes.
const MaxNameLength = 128

// ValidName reports whether s can name a tenant or connector in storage:
// 1 to 128 ASCII letters, digits, '-', '_' and '.', not starting with '.'
// (so never "." or ".."). Storage keys are built from names, so nothing
// else is accepted.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLength || s[0] == '.' {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.')
	}) < 0
}
