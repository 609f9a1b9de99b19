package scopetrim

import (
	"bytes"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"github.com/tidwall/gjson"
)

// recordMembers are the members of the record being judged, as the
// trimmer read them while trimming it. Rules read record.owner_id from
// here rather than parse the record a second time with gjson, which cost
// about as much as the rule's evaluation on the load harness's contacts
// page.
//
// The table is used only when the trimmer walked all of the record's
// members (indexed): a record withheld or copied whole is not walked
// member by member, and its rules read it with gjson as before. The
// scanner refuses an object with two equal keys (compared unescaped), so a
// key is in the table at most once, and the member found is the one gjson
// and encoding/json would read.
type recordMembers struct {
	list []recordMember
	// keys holds the keys written with escapes, unescaped (the scanner's
	// arena, where they were, is reused by later keys).
	keys []byte
	// start is where the record starts in the trimmer's source: offsets
	// are relative to it, so that they index the record's own bytes.
	start   int
	indexed bool
	// dropped: the record has more members, or longer escaped keys, than
	// a table holds (maxNotedMembers, maxNotedKeyBytes); it is read with
	// gjson. A pooled trimmer keeps its table, so a table must stay small
	// whatever the record.
	dropped bool
}

// maxNotedMembers and maxNotedKeyBytes bound a record's table: records
// have tens of members, and a record beyond either is read with gjson.
const (
	maxNotedMembers  = 256
	maxNotedKeyBytes = 4096
)

// recordMember is one member: offsets, not slices, so that noting one is
// a plain copy (slices would cost a write barrier each while the
// collector runs).
type recordMember struct {
	keyStart, keyEnd     int // in the record, or in keys when escaped
	valueStart, valueEnd int // in the record
	escaped              bool
}

// startRecord prepares the table for the record at t.pos: it is emptied
// and, when the record is an object, the members call that reads it (if
// the trimmer descends into it) fills it. The caller clears noteRecord
// once the record is read, descended into or not, so that no other object
// is taken for the record.
func (t *trimmer) startRecord() {
	m := &t.rec.members
	m.list, m.keys, m.start, m.indexed, m.dropped = m.list[:0], m.keys[:0], t.pos, false, false
	t.noteRecord = t.src[t.pos] == '{'
}

// noteMember adds the member whose key starts at keyStart (keyLen bytes
// with the quotes; key is the key unescaped when escaped) and whose value
// runs from valueStart to t.pos.
func (t *trimmer) noteMember(keyStart, keyLen int, key []byte, escaped bool, valueStart int) {
	m := &t.rec.members
	if len(m.list) >= maxNotedMembers || escaped && len(m.keys)+len(key) > maxNotedKeyBytes {
		m.dropped = true
		return
	}
	e := recordMember{
		keyStart: keyStart + 1 - m.start, keyEnd: keyStart + keyLen - 1 - m.start,
		valueStart: valueStart - m.start, valueEnd: t.pos - m.start,
	}
	if escaped {
		e.keyStart, e.escaped = len(m.keys), true
		m.keys = append(m.keys, key...)
		e.keyEnd = len(m.keys)
	}
	m.list = append(m.list, e)
}

// find returns the bytes of the value of the member named key in record
// (the bytes the table was noted from).
func (m *recordMembers) find(record []byte, key string) ([]byte, bool) {
	for i := range m.list {
		e := &m.list[i]
		k := record
		if e.escaped {
			k = m.keys
		}
		if string(k[e.keyStart:e.keyEnd]) == key {
			return record[e.valueStart:e.valueEnd], true
		}
	}
	return nil, false
}

// forget zeroes the keys copied out of the last record.
func (m *recordMembers) forget() {
	clear(m.keys[:cap(m.keys)])
	*m = recordMembers{list: m.list[:0], keys: m.keys[:0]}
}

// parseValue is gjson.Parse of one validated JSON value, without its work
// for a string written without escapes (the common case: ids, owners).
func parseValue(raw []byte) gjson.Result {
	if s, ok := plainString(raw); ok {
		return gjson.Result{Type: gjson.String, Raw: unsafeString(raw), Str: s}
	}
	return gjson.Parse(unsafeString(raw))
}

// memberValue is resultValue(parseValue(raw)).
func memberValue(raw []byte) ref.Val {
	if s, ok := plainString(raw); ok {
		return types.String(s)
	}
	return resultValue(gjson.Parse(unsafeString(raw)))
}

// plainString returns the content of a validated JSON string written
// without escapes, which is its value (what gjson returns for it too).
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || bytes.IndexByte(raw, '\\') >= 0 {
		return "", false
	}
	return unsafeString(raw[1 : len(raw)-1]), true
}
