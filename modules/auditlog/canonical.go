package auditlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The canonical encoding of a record is the one the writer produces: the
// Record's members in the order of its fields, no whitespace, members
// tagged omitempty left out when empty, strings escaped by appendString,
// integers in decimal, floats with three decimals, map keys sorted. It is
// derived here from the Record type by reflection, so that a field added to
// Record is verified without touching the verifier; the writer's hand-written
// fast path (appendHead, appendTail) must produce the same bytes, which
// TestWriterEncodingIsCanonical checks for every field. Record fields must
// have concrete types: an interface-typed value (a number decoded as
// float64) cannot be re-encoded as it was written.

// member is one JSON member of a struct, derived from one of its fields.
type member struct {
	name      string
	index     int
	omitEmpty bool
}

var membersByType sync.Map // reflect.Type -> []member

// membersOf lists the JSON members of struct type t in field order: every
// exported field with a json tag other than "-".
func membersOf(t reflect.Type) []member {
	if ms, ok := membersByType.Load(t); ok {
		return ms.([]member)
	}
	var ms []member
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("json")
		if !f.IsExported() || !ok || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		ms = append(ms, member{name: name, index: i, omitEmpty: slices.Contains(strings.Split(opts, ","), "omitempty")})
	}
	membersByType.Store(t, ms)
	return ms
}

// recordMembers are Record's members; the last is "hash", which the hash
// does not cover.
var recordMembers = membersOf(reflect.TypeFor[Record]())

// appendCanonicalBody appends the canonical encoding of rec without its
// hash member: the bytes the record's hash covers.
func appendCanonicalBody(b []byte, rec *Record) []byte {
	return appendMembers(b, reflect.ValueOf(rec).Elem(), recordMembers[:len(recordMembers)-1])
}

func appendMembers(b []byte, v reflect.Value, ms []member) []byte {
	b = append(b, '{')
	first := true
	for _, m := range ms {
		f := v.Field(m.index)
		if m.omitEmpty && isEmptyValue(f) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, m.name)
		b = append(b, ':')
		b = appendCanonical(b, f)
	}
	return append(b, '}')
}

// appendCanonical appends v in the canonical encoding.
func appendCanonical(b []byte, v reflect.Value) []byte {
	switch v.Kind() {
	case reflect.String:
		return appendString(b, v.String())
	case reflect.Bool:
		return strconv.AppendBool(b, v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.AppendUint(b, v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		// three decimals: durations in milliseconds to the microsecond,
		// and a parsed value re-encodes to the same bytes
		return strconv.AppendFloat(b, v.Float(), 'f', 3, 64)
	case reflect.Slice, reflect.Array:
		b = append(b, '[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonical(b, v.Index(i))
		}
		return append(b, ']')
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(x, y reflect.Value) int { return strings.Compare(x.String(), y.String()) })
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k.String())
			b = append(b, ':')
			b = appendCanonical(b, v.MapIndex(k))
		}
		return append(b, '}')
	case reflect.Struct:
		return appendMembers(b, v, membersOf(v.Type()))
	case reflect.Pointer:
		if v.IsNil() {
			return append(b, "null"...)
		}
		return appendCanonical(b, v.Elem())
	}
	// interfaces, channels, functions: not part of a record (see above)
	panic(fmt.Sprintf("auditlog: a record field of kind %s has no canonical encoding", v.Kind()))
}

// isEmptyValue is encoding/json's omitempty test.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}

// hashSuffixLen is the length of `,"hash":"<64 hex>"}`.
const hashSuffixLen = len(`,"hash":"`) + 64 + len(`"}`)

// splitHash returns the part of a line before its hash member and the hash,
// or ok=false when the line does not end with a well-formed hash member.
func splitHash(line []byte) (before []byte, hash []byte, ok bool) {
	if len(line) < hashSuffixLen+1 {
		return nil, nil, false
	}
	i := len(line) - hashSuffixLen
	suffix := line[i:]
	if !bytes.HasPrefix(suffix, []byte(`,"hash":"`)) || !bytes.HasSuffix(suffix, []byte(`"}`)) {
		return nil, nil, false
	}
	hash = suffix[len(`,"hash":"`) : len(`,"hash":"`)+64]
	for _, c := range hash {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return nil, nil, false
		}
	}
	return line[:i], hash, true
}

// diagnose says why line is not the canonical encoding of a value of struct
// type t (a Record or a Checkpoint), member by member: whitespace, a
// duplicate member, one differing only in case, an unknown one, members out
// of order, a missing or empty one, a value not written as the writer
// writes it. The last member (the hash or signature) is only checked for
// presence and place. It returns "" when it finds nothing.
func diagnose(line []byte, t reflect.Type) string {
	ms := membersOf(t)
	index := make(map[string]int, len(ms))
	for i, m := range ms {
		index[m.name] = i
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, line); err != nil {
		return "not an audit record: not JSON (" + err.Error() + ")"
	}
	if !bytes.Equal(compact.Bytes(), line) {
		return fmt.Sprintf("whitespace outside strings at byte %d: the writer writes none", firstDifference(compact.Bytes(), line)+1)
	}
	if len(line) == 0 || line[0] != '{' {
		return "not an audit record: not a JSON object"
	}
	type found struct {
		name string
		raw  []byte
	}
	var members []found
	pos := 1
	for pos < len(line) && line[pos] != '}' {
		if len(members) > 0 {
			if line[pos] != ',' {
				return fmt.Sprintf("not an audit record: unexpected byte at %d", pos+1)
			}
			pos++
		}
		end := stringEnd(line, pos)
		if end < 0 {
			return "not an audit record: a member name is not a string"
		}
		rawName := line[pos:end]
		var name string
		if err := json.Unmarshal(rawName, &name); err != nil {
			return "not an audit record: a member name is not a string"
		}
		if canon := appendString(nil, name); !bytes.Equal(canon, rawName) {
			return fmt.Sprintf("member name %s is escaped differently from how the writer writes it (%s)", rawName, canon)
		}
		pos = end + 1 // past ':'
		dec := json.NewDecoder(bytes.NewReader(line[pos:]))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Sprintf("not an audit record: the value of member %q is not JSON", name)
		}
		n := int(dec.InputOffset())
		members = append(members, found{name, line[pos : pos+n]})
		pos += n
	}

	// names: duplicates, case, unknown
	seen := map[string]int{}
	for i, f := range members {
		if j, dup := seen[f.name]; dup {
			return fmt.Sprintf("member %q appears twice (members %d and %d): a reader taking the first sees %s, one taking the last %s",
				f.name, j+1, i+1, members[j].raw, f.raw)
		}
		seen[f.name] = i
		if _, known := index[f.name]; known {
			continue
		}
		for _, m := range ms {
			if strings.EqualFold(m.name, f.name) {
				return fmt.Sprintf("member %q differs only in case from %q: readers that match names loosely take it for %q", f.name, m.name, m.name)
			}
		}
		return fmt.Sprintf("not an audit record: unknown member %q", f.name)
	}
	// order
	last := -1
	for _, f := range members {
		idx := index[f.name]
		if idx < last {
			return fmt.Sprintf("members out of order: %q comes after %q, the writer writes it before", f.name, ms[last].name)
		}
		last = idx
	}
	// presence and values
	for mi, m := range ms {
		i, ok := seen[m.name]
		if !ok {
			if !m.omitEmpty {
				return fmt.Sprintf("member %q is missing", m.name)
			}
			continue
		}
		v := reflect.New(t.Field(m.index).Type)
		dec := json.NewDecoder(bytes.NewReader(members[i].raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v.Interface()); err != nil {
			return fmt.Sprintf("member %q: %s is not a valid value (%v)", m.name, members[i].raw, err)
		}
		if m.omitEmpty && isEmptyValue(v.Elem()) {
			return fmt.Sprintf("member %q is empty: the writer leaves it out", m.name)
		}
		if mi == len(ms)-1 {
			continue // the hash or signature: checked on its own
		}
		if canon := appendCanonical(nil, v.Elem()); !bytes.Equal(canon, members[i].raw) {
			return fmt.Sprintf("member %q: %s is not written as the writer writes it (%s)", m.name, members[i].raw, canon)
		}
	}
	return ""
}

// stringEnd returns the index just past the JSON string starting at
// line[pos] and its following ':', or -1.
func stringEnd(line []byte, pos int) int {
	if pos >= len(line) || line[pos] != '"' {
		return -1
	}
	for i := pos + 1; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case '"':
			if i+1 < len(line) && line[i+1] == ':' {
				return i + 1
			}
			return -1
		}
	}
	return -1
}

func firstDifference(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// memberValue returns the member of rec with the JSON name name, and
// whether the Record type has one: the readers of members that other
// modules add to the record (records_released, event, ...) need no change
// here when they appear, and work before they do.
func memberValue(rec *Record, name string) (reflect.Value, bool) {
	i := slices.IndexFunc(recordMembers, func(m member) bool { return m.name == name })
	if i < 0 {
		return reflect.Value{}, false
	}
	return reflect.ValueOf(rec).Elem().Field(recordMembers[i].index), true
}

// memberString is a string member of rec by JSON name, or "".
func memberString(rec *Record, name string) string {
	if f, ok := memberValue(rec, name); ok && f.Kind() == reflect.String {
		return f.String()
	}
	return ""
}

// memberInt is an integer member of rec by JSON name, or 0.
func memberInt(rec *Record, name string) int {
	f, ok := memberValue(rec, name)
	if !ok {
		return 0
	}
	switch f.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(f.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int(f.Uint())
	}
	return 0
}
