package connectorauth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// Client authentication styles at the token and revocation endpoints.
const (
	ClientAuthBasic = "basic" // HTTP Basic (RFC 6749 section 2.3.1); the default
	ClientAuthPost  = "post"  // client_id and client_secret in the form body
)

// Defaults for Settings.
const (
	DefaultTokenTimeout      = 10 * time.Second
	DefaultRevocationTimeout = 10 * time.Second
	DefaultRetryAfter        = 5 * time.Second
)

// Settings configure one connector. Every value is final: placeholders are
// resolved by the caller.
type Settings struct {
	Name          string
	TokenURL      string
	RevocationURL string
	ClientID      string
	ClientSecret  string
	Grant         string
	Scopes        []string
	ClientAuth    string
	// Key encrypts the connector's stored credentials.
	Key               string
	TokenTimeout      time.Duration
	RevocationTimeout time.Duration
	RetryAfter        time.Duration
	// ReusableRefreshTokens says the provider does not rotate refresh
	// tokens, so replicas may refresh without taking the storage lock.
	ReusableRefreshTokens bool
}

// Connector is one configured connector bound to the manager of its
// storage. Its fields do not change once made.
type Connector struct {
	Settings
	keys        *keyring
	mgr         *Manager
	client      *http.Client
	fingerprint string
	logger      *zap.Logger
}

// NewConnector checks s and binds it to mgr.
func NewConnector(s Settings, mgr *Manager, logger *zap.Logger) (*Connector, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if s.ClientAuth == "" {
		s.ClientAuth = ClientAuthBasic
	}
	if s.TokenTimeout <= 0 {
		s.TokenTimeout = DefaultTokenTimeout
	}
	if s.RevocationTimeout <= 0 {
		s.RevocationTimeout = DefaultRevocationTimeout
	}
	if s.RetryAfter <= 0 {
		s.RetryAfter = DefaultRetryAfter
	}
	keys, err := newKeyring(s.Key)
	if err != nil {
		return nil, fmt.Errorf("connector %q: key: %v", s.Name, err)
	}
	c := &Connector{Settings: s, keys: keys, mgr: mgr, logger: logger}
	c.client = &http.Client{
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		// A redirect would resend the form, refresh token included, to
		// wherever the endpoint points: refuse it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c.fingerprint = fingerprint(&s)
	return c, nil
}

// check validates the settings without resolving anything.
func (s *Settings) check() error {
	if !ValidName(s.Name) {
		return fmt.Errorf("connector %q: a connector name may contain only letters, digits, '-', '_' and '.', and may not start with '.'", s.Name)
	}
	if err := checkEndpoint("token_url", s.TokenURL, true); err != nil {
		return fmt.Errorf("connector %q: %v", s.Name, err)
	}
	if err := checkEndpoint("revocation_url", s.RevocationURL, false); err != nil {
		return fmt.Errorf("connector %q: %v", s.Name, err)
	}
	switch s.Grant {
	case GrantRefreshToken:
		if s.ClientID == "" {
			return fmt.Errorf("connector %q: the refresh_token grant needs client_id (and usually client_secret): the client the tenant authorised", s.Name)
		}
	case GrantClientCredentials:
	case "":
		return fmt.Errorf("connector %q: grant is required: refresh_token or client_credentials", s.Name)
	default:
		return fmt.Errorf("connector %q: grant must be refresh_token or client_credentials, not %q", s.Name, s.Grant)
	}
	switch s.ClientAuth {
	case "", ClientAuthBasic, ClientAuthPost:
	default:
		return fmt.Errorf("connector %q: client_auth must be basic or post, not %q", s.Name, s.ClientAuth)
	}
	if s.ClientSecret != "" && s.ClientID == "" {
		return fmt.Errorf("connector %q: client_secret without client_id", s.Name)
	}
	return nil
}

// checkEndpoint accepts an absolute http(s) URL without credentials or a
// fragment. Plain http is accepted because tests and local development
// run on loopback; production endpoints are https.
func checkEndpoint(field, raw string, required bool) error {
	if raw == "" {
		if required {
			return fmt.Errorf("%s is required", field)
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s is not a URL", field)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return fmt.Errorf("%s must be an absolute https URL", field)
	case u.User != nil:
		return fmt.Errorf("%s must not carry credentials; use client_id and client_secret", field)
	case u.Fragment != "":
		return fmt.Errorf("%s must not have a fragment", field)
	}
	return nil
}

// fingerprint identifies what an access token depends on, so that a config
// change (another endpoint, client or key) never reuses a cached token.
func fingerprint(s *Settings) string {
	h := sha256.New()
	for _, v := range []string{s.Name, s.TokenURL, s.ClientID, s.ClientSecret, s.Grant, strings.Join(s.Scopes, " "), s.ClientAuth, s.Key} {
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (c *Connector) authStyle() oauth2.AuthStyle {
	// Never auto-detect: x/oauth2 then retries a failed request with the
	// other style (internal/token.go, RetrieveToken), which sends a
	// rotating refresh token twice.
	if c.ClientAuth == ClientAuthPost {
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleInHeader
}

// The registry of configured connectors, for the admin API. connector_auth
// handlers register on Provision and unregister on Cleanup; during a reload
// both configs' handlers are registered and the newest wins.
var registry = struct {
	sync.Mutex
	byName map[string][]*Connector
}{byName: make(map[string][]*Connector)}

// Register makes c visible to the admin API until the returned function
// is called.
func Register(c *Connector) (unregister func()) {
	registry.Lock()
	registry.byName[c.Name] = append(registry.byName[c.Name], c)
	registry.Unlock()
	return func() {
		registry.Lock()
		defer registry.Unlock()
		list := registry.byName[c.Name]
		if i := slices.Index(list, c); i >= 0 {
			list = slices.Delete(list, i, i+1)
		}
		if len(list) == 0 {
			delete(registry.byName, c.Name)
		} else {
			registry.byName[c.Name] = list
		}
	}
}

// Lookup returns the most recently registered connector with the name, or nil.
func Lookup(name string) *Connector {
	registry.Lock()
	defer registry.Unlock()
	list := registry.byName[name]
	if len(list) == 0 {
		return nil
	}
	return list[len(list)-1]
}

// lookupOn returns the most recently registered connector with the name
// bound to m, or nil.
func lookupOn(m *Manager, name string) *Connector {
	registry.Lock()
	defer registry.Unlock()
	list := registry.byName[name]
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].mgr == m {
			return list[i]
		}
	}
	return nil
}

// Names lists the registered connectors, sorted.
func Names() []string {
	registry.Lock()
	defer registry.Unlock()
	names := make([]string, 0, len(registry.byName))
	for n := range registry.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ErrUnknownConnector: no connector_auth handler configures the connector.
var ErrUnknownConnector = errors.New("no connector_auth handler configures this connector")
