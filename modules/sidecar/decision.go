package sidecar

import (
	"context"
	"net/http"
)

// Decision is what the sidecar decided about one request and why. audit_log
// creates it when the request arrives and writes it when the response has
// been sent; the other modules fill it in on the way. Handlers of one request
// run on one goroutine, so it needs no lock.
//
// It never holds a token, a header value or a response value: only names,
// codes, counts and path patterns.
type Decision struct {
	// Reason is the first refusal's reason code; empty while allowed.
	Reason string
	// Status is the refusal's HTTP status, 0 while allowed.
	Status int
	// Identity is the verified identity, once oidc_auth established it.
	Identity *Identity
	// Tenant is the verified tenant, once tenant_guard established it.
	Tenant string
	// Connector is the connector the route serves.
	Connector string
	// Policy names the policy file (connector and version) that trimmed the response.
	Policy string
	// Endpoint is the policy endpoint's path pattern that matched.
	Endpoint string
	// FieldsRemoved counts the values withheld from the response.
	FieldsRemoved int
	// Withheld lists the withheld paths as patterns ("data.#.email"), never values.
	Withheld []string
	// SpoofedHeaders lists identity header names a client sent and the sidecar
	// removed; a non-empty list is a security event.
	SpoofedHeaders []string
	// RecordsReleased and RecordsWithheld count the records that record
	// rules released and withheld (scope_trim records).
	RecordsReleased, RecordsWithheld int
	// RecordIDs are the ids of the first MaxRecordIDs released records, as
	// the connector wrote them: audit_log writes them only as per-tenant
	// pseudonyms. They are the one response value a decision holds; never
	// log them.
	RecordIDs []string
	// RecordIDsOmitted counts released records whose id is not in
	// RecordIDs (past MaxRecordIDs, or without an id).
	RecordIDsOmitted int
}

// MaxRecordIDs bounds the record ids one decision (and so one audit record)
// lists; the rest are counted in RecordIDsOmitted.
const MaxRecordIDs = 64

// Deny records a refusal. The first refusal wins: later handlers cannot
// rewrite why a request was refused.
func (d *Decision) Deny(status int, reason string) {
	if d == nil || d.Reason != "" {
		return
	}
	d.Status, d.Reason = status, reason
}

// Denied reports whether a refusal was recorded.
func (d *Decision) Denied() bool { return d != nil && d.Reason != "" }

// AddWithheld records one withheld path pattern, keeping the list unique.
func (d *Decision) AddWithheld(pattern string, count int) {
	if d == nil {
		return
	}
	d.FieldsRemoved += count
	for _, p := range d.Withheld {
		if p == pattern {
			return
		}
	}
	if d.Withheld == nil {
		d.Withheld = make([]string, 0, 8) // a trimmed response usually withholds several
	}
	d.Withheld = append(d.Withheld, pattern)
}

// AddSpoofedHeader records a removed client-sent identity header name.
func (d *Decision) AddSpoofedHeader(name string) {
	if d == nil {
		return
	}
	for _, n := range d.SpoofedHeaders {
		if n == name {
			return
		}
	}
	d.SpoofedHeaders = append(d.SpoofedHeaders, name)
}

type decisionKey struct{}

// WithDecision returns r carrying a new decision record, and the record.
// When r already carries one, it returns r and that record unchanged.
func WithDecision(r *http.Request) (*http.Request, *Decision) {
	if d := DecisionFrom(r); d != nil {
		return r, d
	}
	d := new(Decision)
	return r.WithContext(context.WithValue(r.Context(), decisionKey{}, d)), d
}

// DecisionFrom returns the request's decision record, or nil. Every method
// of *Decision accepts nil, so handlers need not check.
func DecisionFrom(r *http.Request) *Decision {
	d, _ := r.Context().Value(decisionKey{}).(*Decision)
	return d
}

// AddRecords adds what record rules decided about a response or a stream.
// ids beyond MaxRecordIDs in all are counted as omitted.
func (d *Decision) AddRecords(released, withheld int, ids []string, omitted int) {
	if d == nil {
		return
	}
	d.RecordsReleased += released
	d.RecordsWithheld += withheld
	d.RecordIDsOmitted += omitted
	for _, id := range ids {
		if len(d.RecordIDs) >= MaxRecordIDs {
			d.RecordIDsOmitted++
			continue
		}
		d.RecordIDs = append(d.RecordIDs, id)
	}
}
