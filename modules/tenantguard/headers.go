package tenantguard

import (
	"fmt"
	"net/http"
	"slices"
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

// scrubDisguised removes every header that folds to the tenant header's
// name under the sidecar's folding rule ('_' and '.' read as '-': X_Tenant_ID,
// x-tenant_id, X.Tenant.ID...), and records each as a spoofed header. A key
// that differs from the canonical key only in case is the same header by
// HTTP's rules: net/http already merges those, and any that reach here
// another way are merged too, so checkTenantHeader sees every copy and
// refuses duplicates.
func scrubDisguised(h http.Header, key string, tenantHeader *sidecar.HeaderNames, decision *sidecar.Decision) {
	var buf [4]string // a disguised copy is rare, several rarer: no allocation for them
	disguised := buf[:0]
	for name, values := range h {
		switch {
		case name == key || !tenantHeader.Matches(name):
		case strings.EqualFold(name, key):
			delete(h, name)
			h[key] = append(h[key], values...)
		default:
			delete(h, name)
			disguised = append(disguised, name)
		}
	}
	if len(disguised) > 0 {
		slices.Sort(disguised) // a record lists them in a stable order
		for _, name := range disguised {
			decision.AddSpoofedHeader(name)
		}
	}
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
		return fmt.Errorf("header %q is not a valid header name; use a name like X-Tenant-ID", name)
	}
	for _, r := range reservedHeaders {
		if sidecar.SameHeaderName(name, r) {
			return fmt.Errorf("header %q is reserved by HTTP and would not reach the upstream intact; use a name like X-Tenant-ID", name)
		}
	}
	return nil
}
