package tenantguard

import (
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// MaxTenantIDLength bounds a tenant id, in bytes.
const MaxTenantIDLength = 128

// ValidTenantID reports whether s is a tenant id from the safe set: 1 to 128
// ASCII letters, digits, '-', '_' and '.'. Nothing else is accepted: no
// whitespace, no comma (so no list), no quotes, no non-ASCII look-alikes.
func ValidTenantID(s string) bool {
	if len(s) == 0 || len(s) > MaxTenantIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// headerResult is what checkTenantHeader found.
type headerResult uint8

const (
	headerOK headerResult = iota
	headerMissing
	headerMalformed
	headerMismatch
)

// checkTenantHeader judges the values of the tenant header against the
// token's tenant. One value, in the safe set, byte for byte equal: nothing
// is trimmed, folded or split, so what is checked is what is forwarded.
func checkTenantHeader(values []string, tenant string) headerResult {
	switch {
	case len(values) == 0:
		return headerMissing
	case len(values) > 1 || !ValidTenantID(values[0]):
		return headerMalformed
	case values[0] != tenant:
		return headerMismatch
	}
	return headerOK
}

// sameHeaderName reports whether a and b name the same header once case is
// ignored and '_' and '.' are read as '-', which is how CGI, WSGI and several
// proxies (and PHP, for '.') fold header names: X_Tenant_ID reaches such an
// upstream as X-Tenant-ID. It does not allocate.
//
// Caddy itself drops underscore and dot names before any handler unless the
// server allowlists them (expected_underscore_headers, expected_dot_headers);
// this guard does not rely on that default.
func sameHeaderName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if foldHeaderByte(a[i]) != foldHeaderByte(b[i]) {
			return false
		}
	}
	return true
}

func foldHeaderByte(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + ('a' - 'A')
	case c == '_', c == '.':
		return '-'
	}
	return c
}

// scrubDisguised removes every header that folds to the tenant header's
// name through '_' or '.' (X_Tenant_ID, x-tenant_id, X.Tenant.ID...), and records
// each as a spoofed header. A key that differs from the canonical key only in
// case is the same header by HTTP's rules: net/http already merges those, and
// any that reach here another way are merged too, so checkTenantHeader sees
// every copy and refuses duplicates.
func scrubDisguised(h http.Header, key string, decision *sidecar.Decision) {
	for name, values := range h {
		switch {
		case name == key || !sameHeaderName(name, key):
		case strings.EqualFold(name, key):
			delete(h, name)
			h[key] = append(h[key], values...)
		default:
			delete(h, name)
			decision.AddSpoofedHeader(name)
		}
	}
}

// neutraliseConnection removes the tenant header's name, in any spelling,
// from the Connection header. reverse_proxy deletes every header that the
// client's Connection header names, after this handler has run, so a
// client sending "Connection: X-Tenant-ID" would otherwise have the verified
// header stripped on its way to the upstream.
func neutraliseConnection(h http.Header, key string, decision *sidecar.Decision) {
	values, ok := h["Connection"]
	if !ok {
		return
	}
	found := false
	for _, v := range values {
		for token := range strings.SplitSeq(v, ",") {
			if sameHeaderName(strings.TrimSpace(token), key) {
				found = true
			}
		}
	}
	if !found {
		return
	}
	kept := make([]string, 0, len(values))
	for _, v := range values {
		var tokens []string
		for token := range strings.SplitSeq(v, ",") {
			token = strings.TrimSpace(token)
			if token != "" && !sameHeaderName(token, key) {
				tokens = append(tokens, token)
			}
		}
		if len(tokens) > 0 {
			kept = append(kept, strings.Join(tokens, ", "))
		}
	}
	if len(kept) == 0 {
		delete(h, "Connection")
	} else {
		h["Connection"] = kept
	}
	decision.AddSpoofedHeader("Connection: " + key)
}

// reservedHeaders are names the tenant header must not take: hop-by-hop
// headers never reach the upstream, and the others carry the request's
// framing or credentials.
var reservedHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Alt-Svc",
	"Host", "Content-Length", "Content-Type", "Authorization", "Cookie",
}

func validHeaderName(name string) error {
	if !httpguts.ValidHeaderFieldName(name) {
		return fmt.Errorf("tenant_guard: header %q is not a valid header name; use a name like X-Tenant-ID", name)
	}
	for _, r := range reservedHeaders {
		if sameHeaderName(name, r) {
			return fmt.Errorf("tenant_guard: header %q is reserved by HTTP and would not reach the upstream intact; use a name like X-Tenant-ID", name)
		}
	}
	return nil
}
