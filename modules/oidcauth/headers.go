package oidcauth

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// defaultReservedHeaders name the headers that upstreams commonly trust as
// identity. A trailing "*" matches every name with that prefix. The tenant
// header is not here: tenant_guard owns it.
var defaultReservedHeaders = []string{
	"X-Auth-*",
	"X-Authenticated-*",
	"X-User*",
	"X-Forwarded-User",
	"X-Forwarded-Email",
	"X-Forwarded-Preferred-Username",
	"X-Forwarded-Groups",
	"X-Forwarded-Access-Token",
	"X-Remote-User",
	"X-Remote-Group*",
	"Remote-User",
	"X-Email",
	"X-Subject",
	"X-Client-ID",
	"X-Scopes",
	"X-Roles",
	"X-Oidc-*",
	"X-Jwt-*",
	"X-Id-Token",
	"X-Access-Token",
}

// headerMatcher matches header names after normalisation: lower case, and
// "_" read as "-", because proxies and frameworks (CGI, WSGI, some Node
// servers) treat X_User and X-User as the same header. Go canonicalises
// header keys but keeps underscores, so comparing keys is not enough.
type headerMatcher struct {
	exact    map[string]bool
	prefixes []string
}

func normaliseHeaderName(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

func newHeaderMatcher(patterns []string) headerMatcher {
	m := headerMatcher{exact: make(map[string]bool)}
	for _, p := range patterns {
		n := normaliseHeaderName(strings.TrimSpace(p))
		if n == "" {
			continue
		}
		if strings.HasSuffix(n, "*") {
			m.prefixes = append(m.prefixes, strings.TrimSuffix(n, "*"))
			continue
		}
		m.exact[n] = true
	}
	return m
}

func (m headerMatcher) matches(name string) bool {
	n := normaliseHeaderName(name)
	if m.exact[n] {
		return true
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// stripReserved deletes every header whose name matches and returns the
// removed names, sorted, as the client sent them (keys only, never values).
func (m headerMatcher) stripReserved(h http.Header) []string {
	var removed []string
	for name := range h {
		if m.matches(name) {
			removed = append(removed, name)
			delete(h, name)
		}
	}
	sort.Strings(removed)
	return removed
}

// headerValue renders a claim for a header: strings as they are, numbers
// exactly, booleans, arrays of scalars joined with ",", anything else as
// compact JSON. ok is false when the value cannot be sent safely (control
// characters would let a claim inject headers or be refused by the proxy).
func headerValue(v any) (string, bool) {
	var s string
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		s = x
	case json.Number:
		s = x.String()
	case bool:
		s = strconv.FormatBool(x)
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			p, ok := headerValue(e)
			if !ok {
				return "", false
			}
			parts = append(parts, p)
		}
		s = strings.Join(parts, ",")
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return "", false
		}
		s = string(b)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return "", false
		}
	}
	return s, true
}

// scrubConnection drops from the Connection header every token that names a
// reserved header, and returns the dropped names. The reverse proxy
// deletes the headers a client nominates as hop-by-hop after this handler
// has set the verified ones, which would let a client strip its own
// identity headers and reach the upstream anonymously.
func (m headerMatcher) scrubConnection(h http.Header) []string {
	values, ok := h["Connection"]
	if !ok {
		return nil
	}
	var scrubbed, kept []string
	for _, v := range values {
		var tokens []string
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.TrimSpace(tok)
			if tok == "" {
				continue
			}
			if m.matches(tok) {
				scrubbed = append(scrubbed, tok)
				continue
			}
			tokens = append(tokens, tok)
		}
		if len(tokens) > 0 {
			kept = append(kept, strings.Join(tokens, ", "))
		}
	}
	if len(scrubbed) == 0 {
		return nil
	}
	if len(kept) == 0 {
		delete(h, "Connection")
	} else {
		h["Connection"] = kept
	}
	return scrubbed
}
