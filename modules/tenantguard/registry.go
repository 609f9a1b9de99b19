package tenantguard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// Tenant states and connector states in the registry.
const (
	StatusActive          = "active"
	StatusSuspended       = "suspended"
	ConnectorConnected    = "connected"
	ConnectorDisconnected = "disconnected"
)

// maxRegistryFileSize bounds one registry file; a larger one is a mistake.
const maxRegistryFileSize = 16 << 20

// Registry is the loaded tenant registry. It is immutable once loaded, so
// every request of one config reads it without a lock; a reload loads a new one.
type Registry struct {
	tenants map[string]*Tenant
}

// Tenant is one tenant as the registry declares it.
type Tenant struct {
	ID        string
	Suspended bool
	// Issuers are the token issuers allowed to speak for the tenant, compared exactly.
	Issuers []string
	// Connected holds the tenant's connectors: true when connected.
	Connected map[string]bool
	// Source is where the tenant was declared (file:line), for error messages.
	Source string
}

func (t *Tenant) allowsIssuer(issuer string) bool {
	return slices.Contains(t.Issuers, issuer)
}

// check returns the refusal, if any, for a request of tenant whose token
// came from issuer, on a route serving connector. The issuer is checked
// before the status, so that a token from another tenant's IdP learns
// nothing about this tenant's state.
func (reg *Registry) check(tenant, issuer, connector string, routeHasConnector bool) (int, string, string) {
	t := reg.tenants[tenant]
	switch {
	case t == nil:
		return http.StatusForbidden, sidecar.ReasonTenantUnknown, tenantUnknownDetail
	case !t.allowsIssuer(issuer):
		return http.StatusForbidden, sidecar.ReasonIssuerNotAllowedForTenant, issuerNotAllowedDetail
	case t.Suspended:
		return http.StatusForbidden, sidecar.ReasonTenantSuspended, tenantSuspendedDetail
	case routeHasConnector && !t.Connected[connector]:
		return http.StatusForbidden, sidecar.ReasonConnectorDisconnected, connectorDisconnectedDetail
	}
	return 0, "", ""
}

// Len is the number of tenants.
func (reg *Registry) Len() int { return len(reg.tenants) }

// Tenant returns the tenant with the id, or nil.
func (reg *Registry) Tenant(id string) *Tenant { return reg.tenants[id] }

// LoadRegistry reads the registry at path: one JSON file, or a directory
// whose *.json files (except *.schema.json) are read in name order. Every
// error names the file, the line and what is wrong.
func LoadRegistry(path string) (*Registry, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tenant registry %s: %w; check the tenants path", path, err)
	}
	files := []string{path}
	if info.IsDir() {
		files, err = registryFiles(path)
		if err != nil {
			return nil, err
		}
	}
	reg := &Registry{tenants: make(map[string]*Tenant)}
	for _, file := range files {
		data, err := readLimited(file)
		if err != nil {
			return nil, err
		}
		tenants, err := ParseRegistry(file, data)
		if err != nil {
			return nil, err
		}
		for _, t := range tenants {
			if prev, dup := reg.tenants[t.ID]; dup {
				return nil, fmt.Errorf("tenant registry %s: tenant %q is declared twice (also at %s); keep one", t.Source, t.ID, prev.Source)
			}
			reg.tenants[t.ID] = t
		}
	}
	return reg, nil
}

// RegistryDigest is the digest of the registry's files, in load order (see
// sidecar.FilesDigest): the Caddyfile adapter puts it in the config so that
// a registry edit alone makes `caddy reload` apply it.
func RegistryDigest(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	files := []string{path}
	if info.IsDir() {
		if files, err = registryFiles(path); err != nil {
			return "", err
		}
	}
	return sidecar.FilesDigest(files)
}

func registryFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("tenant registry %s: %w", dir, err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(name, ".json") && !strings.HasSuffix(name, ".schema.json") {
			files = append(files, filepath.Join(dir, name))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("tenant registry %s: the directory holds no *.json file; add one or point tenants at a file", dir)
	}
	sort.Strings(files)
	return files, nil
}

func readLimited(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("tenant registry %s: %w", file, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRegistryFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("tenant registry %s: %w", file, err)
	}
	if len(data) > maxRegistryFileSize {
		return nil, fmt.Errorf("tenant registry %s: larger than %d bytes; split it into files in a directory", file, maxRegistryFileSize)
	}
	return data, nil
}

// ParseRegistry parses and validates one registry document. name is used in
// error messages only.
//
// It walks the JSON tokens itself rather than unmarshalling into structs,
// so that every problem, including an unknown or repeated key (which
// encoding/json would silently accept, keeping the last), is reported with
// its line.
func ParseRegistry(name string, data []byte) ([]*Tenant, error) {
	p := &registryParser{name: name, data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	tenants, err := p.document()
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("tenant registry %s:%d: invalid JSON: %v", name, p.line(se.Offset), se)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("tenant registry %s:%d: invalid JSON: the document ends early", name, p.line(int64(len(data))))
		}
		return nil, err
	}
	return tenants, nil
}

type registryParser struct {
	name string
	data []byte
	dec  *json.Decoder
}

// line is the 1-based line holding the byte at offset.
func (p *registryParser) line(offset int64) int {
	if offset > int64(len(p.data)) {
		offset = int64(len(p.data))
	}
	if offset < 0 {
		offset = 0
	}
	return bytes.Count(p.data[:offset], []byte{'\n'}) + 1
}

// errorf reports a problem at the token just read.
func (p *registryParser) errorf(format string, args ...any) error {
	return fmt.Errorf("tenant registry %s:%d: %s", p.name, p.line(p.dec.InputOffset()), fmt.Sprintf(format, args...))
}

func (p *registryParser) where() string {
	return fmt.Sprintf("%s:%d", p.name, p.line(p.dec.InputOffset()))
}

func (p *registryParser) document() ([]*Tenant, error) {
	var tenants []*Tenant
	seenTenants := false
	err := p.object("the document", func(key string) error {
		switch key {
		case "$schema", "description":
			_, err := p.str(key)
			return err
		case "tenants":
			seenTenants = true
			var err error
			tenants, err = p.tenants()
			return err
		}
		return p.errorf("unknown key %q at the top level; expected tenants, $schema or description", key)
	})
	if err != nil {
		return nil, err
	}
	if !seenTenants {
		return nil, p.errorf(`the document has no "tenants" list`)
	}
	if _, err := p.dec.Token(); err != io.EOF {
		return nil, p.errorf("unexpected data after the document; a file holds one JSON object")
	}
	return tenants, nil
}

func (p *registryParser) tenants() ([]*Tenant, error) {
	var out []*Tenant
	seen := map[string]string{}
	err := p.array("tenants", func() error {
		t, err := p.tenant()
		if err != nil {
			return err
		}
		if prev, dup := seen[t.ID]; dup {
			return fmt.Errorf("tenant registry %s: tenant %q is declared twice (also at %s); keep one", t.Source, t.ID, prev)
		}
		seen[t.ID] = t.Source
		out = append(out, t)
		return nil
	})
	return out, err
}

func (p *registryParser) tenant() (*Tenant, error) {
	t := &Tenant{Connected: map[string]bool{}}
	var status string
	var sawIssuers bool
	err := p.object("a tenant", func(key string) error {
		var err error
		switch key {
		case "id":
			t.Source = p.where()
			if t.ID, err = p.str(key); err == nil && !ValidTenantID(t.ID) {
				err = p.errorf("tenant id %q must be 1 to %d letters, digits, '-', '_' or '.'", t.ID, MaxTenantIDLength)
			}
		case "status":
			if status, err = p.str(key); err == nil && status != StatusActive && status != StatusSuspended {
				err = p.errorf("status %q is not one of %s, %s", status, StatusActive, StatusSuspended)
			}
		case "issuers":
			sawIssuers = true
			t.Issuers, err = p.issuers()
		case "connectors":
			err = p.connectors(t.Connected)
		case "description":
			_, err = p.str(key)
		default:
			err = p.errorf("unknown key %q in a tenant; expected id, status, issuers, connectors or description", key)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case t.ID == "":
		return nil, p.errorf(`a tenant has no "id"`)
	case status == "":
		return nil, fmt.Errorf("tenant registry %s: tenant %q has no \"status\"; set active or suspended", t.Source, t.ID)
	case !sawIssuers || len(t.Issuers) == 0:
		return nil, fmt.Errorf("tenant registry %s: tenant %q lists no issuers; name the issuer URLs allowed to speak for it", t.Source, t.ID)
	}
	t.Suspended = status == StatusSuspended
	return t, nil
}

func (p *registryParser) issuers() ([]string, error) {
	var out []string
	err := p.array("issuers", func() error {
		iss, err := p.str("an issuer")
		if err != nil {
			return err
		}
		if u, perr := url.Parse(iss); perr != nil || u.Scheme == "" || u.Host == "" {
			return p.errorf("issuer %q is not an absolute URL; write it exactly as the token's iss claim", iss)
		}
		if slices.Contains(out, iss) {
			return p.errorf("issuer %q is listed twice", iss)
		}
		out = append(out, iss)
		return nil
	})
	return out, err
}

func (p *registryParser) connectors(into map[string]bool) error {
	return p.array("connectors", func() error {
		var id, state string
		var at string
		err := p.object("a connector", func(key string) error {
			var err error
			switch key {
			case "id":
				at = p.where()
				if id, err = p.str(key); err == nil && !ValidTenantID(id) {
					err = p.errorf("connector id %q must be 1 to %d letters, digits, '-', '_' or '.'", id, MaxTenantIDLength)
				}
			case "state":
				if state, err = p.str(key); err == nil && state != ConnectorConnected && state != ConnectorDisconnected {
					err = p.errorf("connector state %q is not one of %s, %s", state, ConnectorConnected, ConnectorDisconnected)
				}
			case "description":
				_, err = p.str(key)
			default:
				err = p.errorf("unknown key %q in a connector; expected id, state or description", key)
			}
			return err
		})
		switch {
		case err != nil:
			return err
		case id == "":
			return p.errorf(`a connector has no "id"`)
		case state == "":
			return fmt.Errorf("tenant registry %s: connector %q has no \"state\"; set connected or disconnected", at, id)
		}
		if _, dup := into[id]; dup {
			return fmt.Errorf("tenant registry %s: connector %q is listed twice for this tenant", at, id)
		}
		into[id] = state == ConnectorConnected
		return nil
	})
}

// object reads one JSON object, calling member for each key with the decoder
// positioned at the value, and refuses repeated keys.
func (p *registryParser) object(what string, member func(key string) error) error {
	tok, err := p.dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return p.errorf("%s must be a JSON object, found %s", what, describe(tok))
	}
	seen := map[string]bool{}
	for p.dec.More() {
		tok, err := p.dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if seen[key] {
			return p.errorf("key %q is repeated in %s; JSON readers disagree on which copy counts, keep one", key, what)
		}
		seen[key] = true
		if err := member(key); err != nil {
			return err
		}
	}
	_, err = p.dec.Token() // the closing brace
	return err
}

// array reads one JSON array, calling element with the decoder positioned at
// each element.
func (p *registryParser) array(what string, element func() error) error {
	tok, err := p.dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return p.errorf("%s must be a JSON array, found %s", what, describe(tok))
	}
	for p.dec.More() {
		if err := element(); err != nil {
			return err
		}
	}
	_, err = p.dec.Token() // the closing bracket
	return err
}

func (p *registryParser) str(what string) (string, error) {
	tok, err := p.dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", p.errorf("%s must be a string, found %s", what, describe(tok))
	}
	return s, nil
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		if v == '[' {
			return "an array"
		}
		return fmt.Sprintf("%q", string(v))
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}
