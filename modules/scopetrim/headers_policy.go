package scopetrim

import (
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// endpointHeaders is what an endpoint allows of headers: the response
// headers beyond the safe set, the request headers (nil: no allowlist, every
// header but the override family is forwarded), and where the upstream may
// redirect or link to.
type endpointHeaders struct {
	response  map[string]bool // canonical names
	request   map[string]bool // canonical names; nil without an allowlist
	redirects *urlRule
}

// redirectsFile is an endpoint's "redirects" key: the same-route URLs the
// upstream may send in Location (of a 3xx, or of another answer when
// response_headers names it), Content-Location and Link.
type redirectsFile struct {
	Paths []string `json:"paths"`
	Query []string `json:"query,omitempty"`
}

// urlHeaders carry URLs: allowed only as the endpoint's redirects rule says.
var urlHeaders = map[string]bool{"Location": true, "Content-Location": true, "Link": true}

// sidecarResponseHeaders are set or removed by scope_trim itself whatever
// the upstream sent, so a policy cannot allow the upstream's: they describe
// the untrimmed body or the connection, or the sidecar forces them.
var sidecarResponseHeaders = func() map[string]bool {
	m := map[string]bool{
		"Cache-Control": true, "X-Content-Type-Options": true, "Via": true,
		"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Upgrade": true, "Te": true,
	}
	for _, k := range dropHeaders {
		m[k] = true
	}
	return m
}()

// overrideHeaders are the method and URL override headers: frameworks that
// honour them run another method (Rails, Laravel, Symfony, Express's
// method-override, ASP.NET) or route to another path (IIS URL Rewrite,
// Symfony's X-Original-URL/X-Rewrite-URL) than the one the policy judged.
// They never reach the connector, in any spelling.
var overrideHeaders = sidecar.NewHeaderNames(
	"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
	"X-Original-URL", "X-Rewrite-URL",
)

// defaultRequestHeaders always reach the connector under a request_headers
// allowlist, with the headers the sidecar set from verified data (oidc_auth's
// forward_header, the tenant header, Authorization with forward_token,
// connector_auth's token header).
var defaultRequestHeaders = map[string]bool{
	"Accept": true, "Accept-Encoding": true, // scope_trim rewrites Accept-Encoding to identity
	"Content-Type": true, "Content-Length": true, // a write's body framing
	"Traceparent": true, "Tracestate": true, // W3C trace context
}

func (h *endpointHeaders) compile(pol *policy, ef endpointFile) error {
	for _, list := range [][]string{pol.responseHeaders, ef.ResponseHeaders} {
		for _, name := range list {
			key, err := responseHeaderName(name)
			if err != nil {
				return err
			}
			if h.response == nil {
				h.response = make(map[string]bool)
			}
			h.response[key] = true
		}
	}
	if ef.Redirects != nil {
		rule, err := compileURLRule(ef.Redirects)
		if err != nil {
			return fmt.Errorf("redirects: %v", err)
		}
		h.redirects = rule
	}
	for name := range h.response {
		if urlHeaders[name] && h.redirects == nil {
			return fmt.Errorf("response_headers allows %s, whose URLs are checked against the endpoint's redirects; add \"redirects\": {\"paths\": [...]} to the endpoint", name)
		}
	}
	if pol.requestHeaders != nil || ef.RequestHeaders != nil {
		if err := h.allowRequest(pol.requestHeaders, ef.RequestHeaders); err != nil {
			return err
		}
	}
	return nil
}

// allowRequest turns the request allowlist on (when it was off) and adds the
// names of each list.
func (h *endpointHeaders) allowRequest(lists ...[]string) error {
	if h.request == nil {
		h.request = make(map[string]bool)
	}
	for _, list := range lists {
		for _, name := range list {
			key, err := requestHeaderName(name)
			if err != nil {
				return err
			}
			h.request[key] = true
		}
	}
	return nil
}

func responseHeaderName(name string) (string, error) {
	if !httpguts.ValidHeaderFieldName(name) || strings.Contains(name, "*") {
		return "", fmt.Errorf("response_headers: %q is not a header name; list exact names such as X-RateLimit-Remaining (no patterns)", name)
	}
	key := http.CanonicalHeaderKey(name)
	if sidecarResponseHeaders[key] {
		return "", fmt.Errorf("response_headers: %s is set or removed by scope_trim itself and cannot be allowed from the upstream; remove it", key)
	}
	return key, nil
}

// requestHeaderName checks a name of a request_headers list (policy or
// directive) and returns its canonical form.
func requestHeaderName(name string) (string, error) {
	if !httpguts.ValidHeaderFieldName(name) || strings.Contains(name, "*") {
		return "", fmt.Errorf("request_headers: %q is not a header name; list exact names such as If-Match (no patterns)", name)
	}
	if rule, ok := overrideHeaders.Match(name); ok {
		return "", fmt.Errorf("request_headers: %s is never forwarded: %s lets a client choose another method or path than the one the policy judged", name, rule)
	}
	key := http.CanonicalHeaderKey(name)
	switch strings.ToLower(key) {
	case "connection", "keep-alive", "proxy-connection", "upgrade", "te", "transfer-encoding", "trailer", "host":
		return "", fmt.Errorf("request_headers: %s is a hop-by-hop or framing header that the proxy handles; remove it", key)
	}
	return key, nil
}
