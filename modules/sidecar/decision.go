package sidecar

import (
	"context"
	"net/http"
	"slices"
)

// Decision is what the sidecar decided about one request and why. The first
// sidecar handler on the route creates it (WithDecision); the others fill it
// in on the way, and audit_log, when present, writes it once the response has
// been sent. Modules that need what an earlier one decided (scope_trim keys
// the hash transform by the tenant tenant_guard verified) read it from here
// whether or not audit_log runs. Handlers of one request
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
	// removed; a non-empty list is a security event. At most
	// MaxRecordedNames are listed.
	SpoofedHeaders []string
	// SpoofedHeadersOmitted counts the removals beyond the listed names.
	SpoofedHeadersOmitted int
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
	// HeadersRemoved lists the upstream response headers that scope_trim's
	// allowlist kept from the client (names only, at most MaxRecordedNames).
	HeadersRemoved []string
	// HeadersRemovedOmitted counts the removed headers beyond the listed names.
	HeadersRemovedOmitted int
	// VerifiedHeaders names the request headers whose values a sidecar
	// module set from verified data (oidc_auth's forward_header, the tenant
	// header, connector_auth's token header): scope_trim's request_headers
	// allowlist always forwards them.
	// Not audited: the record has the identity and the tenant themselves.
	VerifiedHeaders []string

	// InterruptedBy says what cut a request already in flight (an answer
	// already under way ends early): one of the InterruptedBy* values.
	InterruptedBy string
	// SecurityEvent raises the request as a security event under this name
	// when its reason alone would not (connector_auth: a request on a
	// connection its tenant disconnected).
	SecurityEvent string

	// Stream is set by scope_trim on an NDJSON answer: StreamStart when its
	// first record is about to be released, then how it ended. audit_log
	// writes a record at the start (Commit) and another at the end.
	Stream string
	// StreamRecords counts the NDJSON records sent to the client.
	StreamRecords int

	// commit writes the request's audit record ahead of a release; see Commit.
	commit func(status int, bytesOut int64) error
}

// Values of Decision.Stream.
const (
	StreamStart = "start"
	// StreamComplete: the upstream's stream ended and every record was sent.
	StreamComplete = "complete"
	// StreamCut: the sidecar ended the stream (a refused record, an upstream
	// failure); the decision's reason says why.
	StreamCut = "cut"
	// StreamClientGone: the client stopped reading.
	StreamClientGone = "client_gone"
)

// SetCommit is for audit_log: f writes the request's record now, as an answer
// with the given status and body length (-1: a stream) is about to be
// released, and returns an error when it could not.
func (d *Decision) SetCommit(f func(status int, bytesOut int64) error) {
	if d != nil {
		d.commit = f
	}
}

// Commit writes the request's audit record before an answer that carries
// upstream data is released: call it after the last decision about the
// answer and before its first byte goes to the client. On an error the
// record could not be written and the answer must not be released: refuse
// with 503 ReasonAuditUnavailable instead. Without audit_log it does nothing.
func (d *Decision) Commit(status int, bytesOut int64) error {
	if d == nil || d.commit == nil {
		return nil
	}
	return d.commit(status, bytesOut)
}

// MaxRecordIDs bounds the record ids one decision (and so one audit record)
// lists; the rest are counted in RecordIDsOmitted.
const MaxRecordIDs = 64

// MaxRecordedNames bounds each list of header names in a decision record:
// a request can carry tens of thousands of names (max_header_size raised
// for large tokens), and one audit record must stay small. Names beyond it
// are counted, not listed.
const MaxRecordedNames = 16

// Deny records a refusal. The first refusal wins: later handlers cannot
// rewrite why a request was refused.
func (d *Decision) Deny(status int, reason string) {
	if d == nil || d.Reason != "" {
		return
	}
	d.Status, d.Reason = status, reason
}

// Interrupt records that a request already in flight was cut, and why. The
// cut is the request's reason even over a refusal recorded before it: the
// handlers inside saw a broken answer, whose cause is the cut.
func (d *Decision) Interrupt(by string, status int, reason string) {
	if d == nil {
		return
	}
	d.InterruptedBy = by
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

// AddSpoofedHeader records a removed client-sent identity header name. A
// name already listed is not listed again; beyond MaxRecordedNames names,
// removals are only counted. The cost is bounded per call.
func (d *Decision) AddSpoofedHeader(name string) {
	if d == nil {
		return
	}
	d.SpoofedHeaders, d.SpoofedHeadersOmitted = addName(d.SpoofedHeaders, d.SpoofedHeadersOmitted, name)
}

// AddHeaderRemoved records an upstream response header name that the
// response header allowlist dropped, as AddSpoofedHeader does.
func (d *Decision) AddHeaderRemoved(name string) {
	if d == nil {
		return
	}
	d.HeadersRemoved, d.HeadersRemovedOmitted = addName(d.HeadersRemoved, d.HeadersRemovedOmitted, name)
}

// AddHeadersRemoved records the names as AddHeaderRemoved does, listing the
// alphabetically first ones (so that a record does not depend on map order)
// at a cost linear in len(names).
func (d *Decision) AddHeadersRemoved(names []string) {
	if d == nil || len(names) == 0 {
		return
	}
	var s nameSample
	for _, n := range names {
		s.add(n)
	}
	for _, n := range s.names {
		d.AddHeaderRemoved(n)
	}
	d.HeadersRemovedOmitted += s.more
}

// AddVerifiedHeader notes a request header the sidecar set from verified
// data.
func (d *Decision) AddVerifiedHeader(name string) {
	if d == nil {
		return
	}
	for _, n := range d.VerifiedHeaders {
		if n == name {
			return
		}
	}
	d.VerifiedHeaders = append(d.VerifiedHeaders, name)
}

func addName(list []string, omitted int, name string) ([]string, int) {
	for _, n := range list {
		if n == name {
			return list, omitted
		}
	}
	if len(list) >= MaxRecordedNames {
		return list, omitted + 1
	}
	return append(list, name), omitted
}

// addSpoofedSample records the sample's names (prefixed) and its count of
// names left out.
func (d *Decision) addSpoofedSample(s *nameSample, prefix string) {
	if d == nil || len(s.names) == 0 {
		return
	}
	for _, n := range s.names {
		d.AddSpoofedHeader(prefix + n)
	}
	d.SpoofedHeadersOmitted += s.more
}

// nameSample keeps the alphabetically first MaxRecordedNames names it is
// given and counts the others, so that what a record lists does not depend
// on map order, at a cost linear in the number of names.
type nameSample struct {
	names []string
	more  int
}

func (s *nameSample) add(name string) {
	if len(s.names) == MaxRecordedNames {
		s.more++
		if name >= s.names[len(s.names)-1] {
			return
		}
		s.names = s.names[:len(s.names)-1]
	}
	i := len(s.names)
	for i > 0 && s.names[i-1] > name {
		i--
	}
	s.names = append(s.names, "")
	copy(s.names[i+1:], s.names[i:])
	s.names[i] = name
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

// Values of Decision.InterruptedBy.
const (
	// InterruptedByDisconnect: connector_auth cut the request because its
	// connection was disconnected while it was in flight.
	InterruptedByDisconnect = "disconnect"
	// InterruptedByUnconfirmed: connector_auth cut the request because this
	// replica could not confirm the connection's state from storage.
	InterruptedByUnconfirmed = "state_unconfirmed"
)

// AddRecords adds what record rules decided about a response or a stream.
// ids beyond MaxRecordIDs in all are counted as omitted.
func (d *Decision) AddRecords(released, withheld int, ids []string, omitted int) {
	if d == nil {
		return
	}
	d.RecordsReleased += released
	d.RecordsWithheld += withheld
	d.RecordIDsOmitted += omitted
	if room := MaxRecordIDs - len(d.RecordIDs); room > 0 {
		// one allocation for a page of ids, not one per doubling
		d.RecordIDs = slices.Grow(d.RecordIDs, min(room, len(ids)))
	}
	for _, id := range ids {
		if len(d.RecordIDs) >= MaxRecordIDs {
			d.RecordIDsOmitted++
			continue
		}
		d.RecordIDs = append(d.RecordIDs, id)
	}
}
