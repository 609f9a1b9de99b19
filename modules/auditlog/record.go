package auditlog

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Record is one line of the audit log. The field names are a contract: log
// pipelines, `privacy-sidecar audit verify` and docs/audit_log.md depend on
// them (TestRecordFieldsAreDocumented keeps that page and these fields the
// same). It holds names, codes, counts, path patterns and pseudonyms, never a
// token, a header value, a query value, a body or a raw subject. Fields are
// written in this order; the omitempty ones only when non-empty.
type Record struct {
	// TS is when the request arrived: RFC 3339 with nanoseconds, UTC.
	TS string `json:"ts"`
	// RequestID is Caddy's {http.request.uuid} for the request.
	RequestID string `json:"request_id"`
	// Decision is "allow" or "deny".
	Decision string `json:"decision"`
	// Reason is "ok" when allowed, else the refusing module's reason code
	// or one audit_log sets (upstream_unavailable, client_closed,
	// handler_error, audit_unavailable).
	Reason string `json:"reason"`
	// Status is the status the client got (a handler error's status when
	// handle_errors wrote the page).
	Status int `json:"status"`
	// Method is the request method.
	Method string `json:"method"`
	// Host is the request's Host.
	Host string `json:"host"`
	// Path is the request path, never with the query string.
	Path string `json:"path"`
	// QueryParams are query parameter names only (at most 16, unique); a
	// name that is not a short identifier, or a parameter without "=", is
	// "?". Values are never written.
	QueryParams []string `json:"query_params,omitempty"`
	// Tenant is the tenant tenant_guard established from the token, also on
	// its refusals.
	Tenant string `json:"tenant"`
	// Subject is the pseudonym (32 hex digits) of the token's sub, or ""
	// without a verified token.
	Subject string `json:"subject"`
	// ClientID is the pseudonym of the token's client, or "".
	ClientID string `json:"client_id"`
	// Issuer is the verified token's iss.
	Issuer string `json:"issuer"`
	// Scopes are the verified token's scopes.
	Scopes []string `json:"scopes"`
	// Connector is the route's connector (tenant_guard's connector).
	Connector string `json:"connector"`
	// Policy is the scope_trim policy that applied, connector@version.
	Policy string `json:"policy"`
	// Endpoint is the matched policy endpoint's path pattern.
	Endpoint string `json:"endpoint,omitempty"`
	// FieldsRemoved counts the values scope_trim withheld.
	FieldsRemoved int `json:"fields_removed"`
	// Withheld lists the withheld paths as patterns ("data.#.email"):
	// field names, never values.
	Withheld []string `json:"withheld"`
	// RecordsReleased counts the records scope_trim's record rules
	// released (docs/records.md).
	RecordsReleased int `json:"records_released,omitempty"`
	// RecordsWithheld counts the records the rules withheld.
	RecordsWithheld int `json:"records_withheld,omitempty"`
	// RecordIDs are the released records' ids as per-tenant pseudonyms
	// (recordPseudonym: 32 hex digits), at most sidecar.MaxRecordIDs.
	RecordIDs []string `json:"record_ids,omitempty"`
	// RecordIDsOmitted counts released records whose id is not listed
	// (past the limit, without an id, or with pseudonymize off).
	RecordIDsOmitted int `json:"record_ids_omitted,omitempty"`
	// HeadersRemoved names the upstream response headers scope_trim's
	// allowlist dropped (at most 16, names only).
	HeadersRemoved []string `json:"headers_removed,omitempty"`
	// HeadersRemovedOmitted counts the dropped headers beyond the 16 named.
	HeadersRemovedOmitted int `json:"headers_removed_omitted,omitempty"`
	// SpoofedHeaders are the names of client-sent identity headers that
	// were removed (at most 16): as the client spelled them, or
	// "Connection: <rule>" and "Trailer: <rule>" for the rule a Connection
	// token or a trailer matched.
	SpoofedHeaders []string `json:"spoofed_headers,omitempty"`
	// SpoofedHeadersOmitted counts the removals beyond the 16 named.
	SpoofedHeadersOmitted int `json:"spoofed_headers_omitted,omitempty"`
	// SecurityEvent is the reason this request is a security event, if it
	// is one.
	SecurityEvent string `json:"security_event,omitempty"`
	// BytesOut counts the response body bytes the handlers wrote.
	BytesOut int64 `json:"bytes_out"`
	// DurationMS is the time in the handler chain, in milliseconds with
	// microsecond precision (three decimals).
	DurationMS float64 `json:"duration_ms"`
	// Stream is set on the records of an NDJSON answer: "start" on the
	// one written before its first record is released, then how it ended
	// on the closing one: "complete", "cut" (the sidecar ended it; reason
	// says why) or "client_gone".
	Stream string `json:"stream,omitempty"`
	// StreamRecords counts the NDJSON records sent (closing record).
	StreamRecords int `json:"stream_records,omitempty"`
	// InterruptedBy says what cut a request in flight: "disconnect" (its
	// connection was disconnected) or "state_unconfirmed" (the connection's
	// state could not be read from storage).
	InterruptedBy string `json:"interrupted_by,omitempty"`
	// Event marks a record about a connection rather than a request:
	// connect, disconnect, refresh, refresh_failure or revocation. Its
	// request fields are empty; the fields below describe it.
	Event string `json:"event,omitempty"`
	// Grant is the connection's grant: refresh_token or client_credentials.
	Grant string `json:"grant,omitempty"`
	// Rotated is true when a refresh gave a new refresh token (stored
	// before the access token was used).
	Rotated bool `json:"rotated,omitempty"`
	// TokenError is the token or revocation endpoint's error code
	// (invalid_grant, http_503, timeout, ...), never its text.
	TokenError string `json:"token_error,omitempty"`
	// DisconnectedAt is when a disconnect happened (its receipt's
	// disconnected_at).
	DisconnectedAt string `json:"disconnected_at,omitempty"`
	// Revoked names the token types a disconnect or revocation revoked at
	// the provider, never a token.
	Revoked []string `json:"revoked,omitempty"`
	// RevocationErrors says, per token type, why a revocation failed or was
	// not attempted.
	RevocationErrors []string `json:"revocation_errors,omitempty"`
	// Deleted is true when a disconnect deleted the stored credential.
	Deleted bool `json:"deleted,omitempty"`
	// Cut names the members the writer shortened to keep the record
	// within MaxRecordBytes, with how much it cut (see Cuts).
	Cut Cuts `json:"cut,omitempty"`
	// Instance names the writing sidecar and its per-start suffix.
	Instance string `json:"instance"`
	// Seq numbers the records of one chain: 1, 2, 3, ...
	Seq uint64 `json:"seq"`
	// PrevHash is the previous record's Hash; 64 zeros for the first.
	PrevHash string `json:"prev_hash"`
	// Hash is the hex SHA-256 of the record's canonical JSON without the
	// hash member.
	Hash string `json:"hash"`

	// start, when set and TS is empty, is written as ts without first
	// formatting it into a string.
	start time.Time
}

// Cuts names the members the writer shortened to keep a record within
// MaxRecordBytes: for a list, how many entries it left out; for a string,
// how many bytes it cut from the end; 1 for any other value it left out.
type Cuts map[string]int

// genesisHash is the prev_hash of a chain's first record.
const genesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// appendHead appends the canonical JSON of every field that does not depend
// on the chain (everything up to duration_ms), without the closing brace.
// It runs outside the sink's lock.
func appendHead(b []byte, rec *Record) []byte {
	b = append(b, `{"ts":`...)
	if rec.TS == "" && !rec.start.IsZero() {
		b = append(b, '"')
		b = rec.start.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	} else {
		b = appendString(b, rec.TS)
	}
	b = append(b, `,"request_id":`...)
	b = appendString(b, rec.RequestID)
	b = append(b, `,"decision":`...)
	b = appendString(b, rec.Decision)
	b = append(b, `,"reason":`...)
	b = appendString(b, rec.Reason)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(rec.Status), 10)
	b = append(b, `,"method":`...)
	b = appendString(b, rec.Method)
	b = append(b, `,"host":`...)
	b = appendString(b, rec.Host)
	b = append(b, `,"path":`...)
	b = appendString(b, rec.Path)
	if len(rec.QueryParams) > 0 {
		b = append(b, `,"query_params":`...)
		b = appendStrings(b, rec.QueryParams)
	}
	b = append(b, `,"tenant":`...)
	b = appendString(b, rec.Tenant)
	b = append(b, `,"subject":`...)
	b = appendString(b, rec.Subject)
	b = append(b, `,"client_id":`...)
	b = appendString(b, rec.ClientID)
	b = append(b, `,"issuer":`...)
	b = appendString(b, rec.Issuer)
	b = append(b, `,"scopes":`...)
	b = appendStrings(b, rec.Scopes)
	b = append(b, `,"connector":`...)
	b = appendString(b, rec.Connector)
	b = append(b, `,"policy":`...)
	b = appendString(b, rec.Policy)
	if rec.Endpoint != "" {
		b = append(b, `,"endpoint":`...)
		b = appendString(b, rec.Endpoint)
	}
	b = append(b, `,"fields_removed":`...)
	b = strconv.AppendInt(b, int64(rec.FieldsRemoved), 10)
	b = append(b, `,"withheld":`...)
	b = appendStrings(b, rec.Withheld)
	if rec.RecordsReleased != 0 {
		b = append(b, `,"records_released":`...)
		b = strconv.AppendInt(b, int64(rec.RecordsReleased), 10)
	}
	if rec.RecordsWithheld != 0 {
		b = append(b, `,"records_withheld":`...)
		b = strconv.AppendInt(b, int64(rec.RecordsWithheld), 10)
	}
	if len(rec.RecordIDs) > 0 {
		b = append(b, `,"record_ids":`...)
		b = appendStrings(b, rec.RecordIDs)
	}
	if rec.RecordIDsOmitted != 0 {
		b = append(b, `,"record_ids_omitted":`...)
		b = strconv.AppendInt(b, int64(rec.RecordIDsOmitted), 10)
	}
	if len(rec.HeadersRemoved) > 0 {
		b = append(b, `,"headers_removed":`...)
		b = appendStrings(b, rec.HeadersRemoved)
	}
	if rec.HeadersRemovedOmitted != 0 {
		b = append(b, `,"headers_removed_omitted":`...)
		b = strconv.AppendInt(b, int64(rec.HeadersRemovedOmitted), 10)
	}
	if len(rec.SpoofedHeaders) > 0 {
		b = append(b, `,"spoofed_headers":`...)
		b = appendStrings(b, rec.SpoofedHeaders)
	}
	if rec.SpoofedHeadersOmitted != 0 {
		b = append(b, `,"spoofed_headers_omitted":`...)
		b = strconv.AppendInt(b, int64(rec.SpoofedHeadersOmitted), 10)
	}
	if rec.SecurityEvent != "" {
		b = append(b, `,"security_event":`...)
		b = appendString(b, rec.SecurityEvent)
	}
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, rec.BytesOut, 10)
	b = append(b, `,"duration_ms":`...)
	// Three decimals (microseconds) so that a verifier re-encoding the parsed
	// value produces the same bytes.
	b = strconv.AppendFloat(b, rec.DurationMS, 'f', 3, 64)
	if rec.Stream != "" {
		b = append(b, `,"stream":`...)
		b = appendString(b, rec.Stream)
	}
	if rec.StreamRecords != 0 {
		b = append(b, `,"stream_records":`...)
		b = strconv.AppendInt(b, int64(rec.StreamRecords), 10)
	}
	b = appendEvent(b, rec)
	if len(rec.Cut) > 0 {
		b = append(b, `,"cut":`...)
		b = appendCut(b, rec.Cut)
	}
	return b
}

// appendEvent appends the members from interrupted_by to deleted that are set:
// connector_auth's, written after stream_records and before cut.
func appendEvent(b []byte, rec *Record) []byte {
	if rec.InterruptedBy != "" {
		b = append(b, `,"interrupted_by":`...)
		b = appendString(b, rec.InterruptedBy)
	}
	if rec.Event != "" {
		b = append(b, `,"event":`...)
		b = appendString(b, rec.Event)
	}
	if rec.Grant != "" {
		b = append(b, `,"grant":`...)
		b = appendString(b, rec.Grant)
	}
	if rec.Rotated {
		b = append(b, `,"rotated":true`...)
	}
	if rec.TokenError != "" {
		b = append(b, `,"token_error":`...)
		b = appendString(b, rec.TokenError)
	}
	if rec.DisconnectedAt != "" {
		b = append(b, `,"disconnected_at":`...)
		b = appendString(b, rec.DisconnectedAt)
	}
	if len(rec.Revoked) > 0 {
		b = append(b, `,"revoked":`...)
		b = appendStrings(b, rec.Revoked)
	}
	if len(rec.RevocationErrors) > 0 {
		b = append(b, `,"revocation_errors":`...)
		b = appendStrings(b, rec.RevocationErrors)
	}
	if rec.Deleted {
		b = append(b, `,"deleted":true`...)
	}
	return b
}

// appendCut appends the cut map with its keys sorted, as the canonical
// encoding writes maps.
func appendCut(b []byte, cut Cuts) []byte {
	keys := make([]string, 0, len(cut))
	for k := range cut {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(cut[k]), 10)
	}
	return append(b, '}')
}

// appendTail appends the chain fields and the closing brace: together with
// appendHead, the exact bytes the record's hash covers.
func appendTail(b []byte, instance string, seq uint64, prevHash string) []byte {
	b = append(b, `,"instance":`...)
	b = appendString(b, instance)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"prev_hash":`...)
	b = appendString(b, prevHash)
	return append(b, '}')
}

// appendTailHex is appendTail for the writer, whose prev_hash is known to
// be hex and needs no escaping; the bytes are the same.
func appendTailHex(b []byte, instance string, seq uint64, prevHash *[64]byte) []byte {
	b = append(b, `,"instance":`...)
	b = appendString(b, instance)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"prev_hash":"`...)
	b = append(b, prevHash[:]...)
	return append(b, '"', '}')
}

// seal hashes the canonical body buf[start:] (which must end in '}') and
// turns buf into the written line: the body with the hash field added, and
// a newline. Bytes before start are kept.
func seal(buf []byte, start int) (line []byte, hash [64]byte) {
	sum := sha256.Sum256(buf[start:])
	hex.Encode(hash[:], sum[:])
	line = append(buf[:len(buf)-1], `,"hash":"`...)
	line = append(line, hash[:]...)
	line = append(line, '"', '}', '\n')
	return line, hash
}

// recordHash is the hash a record should carry: of its canonical encoding
// without the hash member.
func recordHash(rec *Record) string {
	return sha256Hex(appendCanonicalBody(nil, rec))
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes written as they are.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD
// written as the raw rune (not as \ufffd), so that decoding and re-encoding
// a record gives back the bytes that were hashed.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\uFFFD"...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' { // break JavaScript line parsing in some viewers
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
