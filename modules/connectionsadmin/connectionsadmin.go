// Package connectionsadmin implements the connections admin API (module
// admin.api.sidecar_connections) on Caddy's admin endpoint, so it inherits
// its listener, its host and origin checks and, for remote administration,
// its mutual TLS and access control:
//
//	PUT    /sidecar/connections/<tenant>/<connector>   connect (store the credential)
//	GET    /sidecar/connections/<tenant>               every connector's state
//	GET    /sidecar/connections/<tenant>/<connector>   one connector's state
//	DELETE /sidecar/connections/<tenant>/<connector>   disconnect, answer the receipt
//	DELETE /sidecar/connections/<tenant>               disconnect every connector
//
// Answers never carry a secret. Serve the admin endpoint on localhost (the
// default) or through remote admin with mutual TLS only: whoever reaches it
// can connect and disconnect every tenant's integrations.
package connectionsadmin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/alysio/privacy-sidecar/modules/connectorauth"
)

func init() {
	caddy.RegisterModule(Admin{})
}

// PathPrefix is where the API is served.
const PathPrefix = "/sidecar/connections/"

// maxBody bounds a connect request's body.
const maxBody = 64 << 10

// Admin is the connections admin API. It has no configuration: Caddy loads
// every admin.api module with its admin endpoint.
type Admin struct{}

// CaddyModule returns the Caddy module information.
func (Admin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.sidecar_connections",
		New: func() caddy.Module { return new(Admin) },
	}
}

// Routes returns the API's one route.
func (a *Admin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: PathPrefix, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

func (a *Admin) serve(w http.ResponseWriter, r *http.Request) error {
	tenant, connector, err := parsePath(r.URL.Path)
	if err != nil {
		return apiError(http.StatusNotFound, err)
	}
	switch {
	case r.Method == http.MethodGet && connector == "":
		list, err := connectorauth.TenantStatus(r.Context(), tenant)
		if err != nil {
			return fail(err)
		}
		return answer(w, http.StatusOK, map[string]any{"tenant": tenant, "connections": list})
	case r.Method == http.MethodGet:
		c, err := lookup(connector)
		if err != nil {
			return err
		}
		s, err := c.Status(r.Context(), tenant)
		if err != nil {
			return fail(err)
		}
		return answer(w, http.StatusOK, statusAnswer{Tenant: tenant, Status: *s})
	case r.Method == http.MethodPut && connector != "":
		c, err := lookup(connector)
		if err != nil {
			return err
		}
		cred, err := readCredential(r)
		if err != nil {
			return apiError(http.StatusBadRequest, err)
		}
		s, err := c.Connect(r.Context(), tenant, cred)
		if err != nil {
			return fail(err)
		}
		return answer(w, http.StatusOK, statusAnswer{Tenant: tenant, Status: *s})
	case r.Method == http.MethodDelete && connector == "":
		receipts, err := connectorauth.DisconnectTenant(r.Context(), tenant)
		if err != nil {
			return fail(err)
		}
		return answer(w, http.StatusOK, map[string]any{"tenant": tenant, "receipts": receipts})
	case r.Method == http.MethodDelete:
		c, err := lookup(connector)
		if err != nil {
			return err
		}
		receipt, err := c.Disconnect(r.Context(), tenant)
		if err != nil {
			return fail(err)
		}
		return answer(w, http.StatusOK, receipt)
	}
	w.Header().Set("Allow", "GET, PUT, DELETE")
	return apiError(http.StatusMethodNotAllowed, fmt.Errorf("%s is not allowed here: GET or DELETE a tenant; GET, PUT or DELETE a tenant's connector", r.Method))
}

// statusAnswer is one connection's state, with its tenant.
type statusAnswer struct {
	Tenant string `json:"tenant"`
	connectorauth.Status
}

// parsePath splits /sidecar/connections/<tenant>[/<connector>].
func parsePath(p string) (tenant, connector string, err error) {
	rest, ok := strings.CutPrefix(p, PathPrefix)
	if !ok {
		return "", "", errors.New("not a connections path")
	}
	tenant, connector, _ = strings.Cut(rest, "/")
	if !connectorauth.ValidName(tenant) {
		return "", "", errors.New("the path must be /sidecar/connections/<tenant>[/<connector>], with names of letters, digits, '-', '_' and '.'")
	}
	if connector != "" && !connectorauth.ValidName(connector) {
		return "", "", errors.New("the connector in the path is not a valid name")
	}
	return tenant, connector, nil
}

func lookup(name string) (*connectorauth.Connector, error) {
	c := connectorauth.Lookup(name)
	if c == nil {
		return nil, apiError(http.StatusNotFound, fmt.Errorf("connector %q: %w", name, connectorauth.ErrUnknownConnector))
	}
	return c, nil
}

// readCredential reads a connect request's body: one JSON object with
// refresh_token, or client_id and client_secret, each once and a string.
// Errors never repeat what was sent.
func readCredential(r *http.Request) (connectorauth.Credential, error) {
	var cred connectorauth.Credential
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return cred, errors.New("the body could not be read")
	}
	if len(body) > maxBody {
		return cred, fmt.Errorf("the body is larger than %d bytes", maxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return cred, errors.New(`the body must be a JSON object: {"refresh_token": "..."} or {"client_id": "...", "client_secret": "..."}`)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return cred, errors.New("the body is not valid JSON")
		}
		key, _ := tok.(string)
		var target *string
		switch key {
		case "refresh_token":
			target = &cred.RefreshToken
		case "client_id":
			target = &cred.ClientID
		case "client_secret":
			target = &cred.ClientSecret
		default:
			return cred, errors.New("unknown member in the body: only refresh_token, client_id and client_secret are accepted")
		}
		if seen[key] {
			return cred, fmt.Errorf("member %s appears twice", key)
		}
		seen[key] = true
		if err := dec.Decode(target); err != nil {
			return cred, fmt.Errorf("member %s must be a string", key)
		}
	}
	if _, err := dec.Token(); err != nil {
		return cred, errors.New("the body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return cred, errors.New("the body must hold one JSON object and nothing after it")
	}
	return cred, nil
}

func answer(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err = w.Write(append(body, '\n'))
	return err
}

// fail maps an operation's error to an answer: 400 for a request that is
// wrong, 503 for storage or the audit log.
func fail(err error) error {
	var in *connectorauth.InputError
	if errors.As(err, &in) {
		return apiError(http.StatusBadRequest, err)
	}
	return apiError(http.StatusServiceUnavailable, err)
}

func apiError(status int, err error) error {
	var ae caddy.APIError
	if errors.As(err, &ae) {
		return ae
	}
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

// Interface guards
var _ caddy.AdminRouter = (*Admin)(nil)
