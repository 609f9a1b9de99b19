package oidcauth

import (
	"encoding/json"
	"strconv"
	"strings"
)

// defaultReservedHeaders name the headers that upstreams commonly trust as
// identity. A trailing "*" matches every name with that prefix; names are
// compared under the sidecar's folding rule (sidecar.HeaderNames: case, '_'
// and '.'). The tenant header is not here: tenant_guard owns it.
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
