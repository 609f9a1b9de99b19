package tenantguard

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// tenantFromIdentity returns the tenant the verified token names at path.
// A string must already be a valid tenant id: it is not trimmed or folded,
// because the token is the source of truth and a guard that rewrites it could
// make two tenants equal. An integer claim (JSON number without fraction) is
// read in decimal, since some IdPs issue numeric organisation ids.
func tenantFromIdentity(id *sidecar.Identity, path string) (string, bool) {
	v, ok := id.Claim(path)
	if !ok {
		return "", false
	}
	var s string
	switch t := v.(type) {
	case string:
		s = t
	case json.Number:
		if _, err := strconv.ParseInt(string(t), 10, 64); err != nil {
			return "", false
		}
		s = string(t)
	case float64:
		// Only integers exactly representable in a float64 are unambiguous.
		if t != math.Trunc(t) || math.Abs(t) > 1<<53 {
			return "", false
		}
		s = strconv.FormatInt(int64(t), 10)
	default:
		return "", false
	}
	if !ValidTenantID(s) {
		return "", false
	}
	return s, true
}
