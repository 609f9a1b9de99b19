package auditlog

import (
	"reflect"
	"unicode/utf8"
)

// MaxRecordBytes is the largest audit line, its newline included. The
// writer never writes a longer one (it cuts values, noting them in the
// record's cut member), and every reader (verify, the resume at start,
// access, report) refuses a longer line as not written by the sidecar: a
// record the sidecar wrote can always be read back, so it can always
// restart.
const MaxRecordBytes = 64 << 10

// maxInstanceBytes bounds the encoded instance name, so that the chain
// members after the head have a known size.
const maxInstanceBytes = 256

// maxHeadBytes is what the members before the chain members may take:
// MaxRecordBytes less the largest tail (instance, seq, prev_hash, hash and
// the newline, under 512 bytes).
const maxHeadBytes = MaxRecordBytes - 512

// cutLevels are the successive limits applied to a record that is too
// large: strings to so many bytes, lists to so many entries (an entry
// longer than the string limit is left out, not shortened: a shortened
// scope or id would be a different value).
var cutLevels = []struct{ str, list int }{{1024, 64}, {256, 8}, {64, 0}}

// uncut are the members never cut: the chain members, and ts, decision,
// reason and status, which are short and what a record is for.
var uncut = map[string]bool{
	"ts": true, "decision": true, "reason": true, "status": true,
	"cut": true, "instance": true, "seq": true, "prev_hash": true, "hash": true,
}

// boundHead returns head, or when head is longer than maxHeadBytes, the
// head of rec re-encoded after cutting its longest values. It is the rare
// path: one length comparison on every record.
func boundHead(head []byte, rec *Record) []byte {
	if len(head) <= maxHeadBytes {
		return head
	}
	v := reflect.ValueOf(rec).Elem()
	for _, lim := range cutLevels {
		for _, m := range recordMembers {
			if !uncut[m.name] {
				cutValue(rec, m.name, v.Field(m.index), lim.str, lim.list)
			}
		}
		if head = appendHead(head[:0], rec); len(head) <= maxHeadBytes {
			return head
		}
	}
	// Only a value of another kind (a nested object) can still be too
	// large: leave out every member that may be empty.
	for _, m := range recordMembers {
		f := v.Field(m.index)
		if !uncut[m.name] && m.omitEmpty && !isEmptyValue(f) {
			f.SetZero()
			noteCut(rec, m.name, 1)
		}
	}
	return appendHead(head[:0], rec)
}

// cutValue shortens one string or list of strings to the limits.
func cutValue(rec *Record, name string, f reflect.Value, maxStr, maxList int) {
	switch {
	case f.Kind() == reflect.String && f.Len() > maxStr:
		s := f.String()
		n := maxStr
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		f.SetString(s[:n])
		noteCut(rec, name, len(s)-n)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		kept := reflect.MakeSlice(f.Type(), 0, min(f.Len(), maxList))
		dropped := 0
		for i := 0; i < f.Len(); i++ {
			if e := f.Index(i); e.Len() <= maxStr && kept.Len() < maxList {
				kept = reflect.Append(kept, e)
			} else {
				dropped++
			}
		}
		if dropped > 0 {
			f.Set(kept)
			noteCut(rec, name, dropped)
		}
	}
}

func noteCut(rec *Record, name string, n int) {
	if rec.Cut == nil {
		rec.Cut = Cuts{}
	}
	rec.Cut[name] += n
}
