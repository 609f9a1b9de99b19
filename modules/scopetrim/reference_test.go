package scopetrim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// refGrant is one policy grant as the slow reference sees it: a parsed path,
// the scope bit and the transform, matched against concrete paths directly,
// without the compiled tree.
type refGrant struct {
	segs []segment
	bit  uint64
	tf   transform
}

// refStep is one step of a concrete path: an object key or an array index.
type refStep struct {
	index bool
	key   string
}

func stepMatches(s segment, p refStep) bool {
	switch s.kind {
	case segElem:
		return p.index
	case segStar:
		return !p.index
	}
	return !p.index && s.key == p.key
}

// refCoverage returns the least restrictive transform the held grants give
// the value at path, and whether some held grant reaches below it.
func refCoverage(grants []refGrant, mask uint64, path []refStep) (transform, bool) {
	best, deeper := tfNone, false
	for _, g := range grants {
		if g.bit&mask == 0 {
			continue
		}
		n := min(len(g.segs), len(path))
		ok := true
		for i := 0; i < n; i++ {
			if !stepMatches(g.segs[i], path[i]) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if len(g.segs) <= len(path) {
			best = min(best, g.tf)
		} else {
			deeper = true
		}
	}
	return best, deeper
}

// refTrim is the slow reference: decode with encoding/json, keep what the
// grants allow, re-encode. It cannot see duplicate keys or key order, which
// is why the fast trimmer exists.
func refTrim(v any, grants []refGrant, scopes uint64, path []refStep, inherited transform, h *hasher) (any, bool) {
	best, deeper := refCoverage(grants, scopes, path)
	best = min(best, inherited)
	if best == tfRaw {
		return v, true
	}
	switch x := v.(type) {
	case map[string]any:
		if best == tfNone && !deeper {
			return nil, false
		}
		out := map[string]any{}
		for k, cv := range x {
			if r, ok := refTrim(cv, grants, scopes, append(path, refStep{key: k}), best, h); ok {
				out[k] = r
			}
		}
		return out, true
	case []any:
		if best == tfNone && !deeper {
			return nil, false
		}
		out := make([]any, len(x))
		for i, cv := range x {
			if r, ok := refTrim(cv, grants, scopes, append(path, refStep{index: true}), best, h); ok {
				out[i] = r
			}
		}
		return out, true
	}
	if best == tfNone {
		return nil, false
	}
	if v == nil || best == tfNull {
		return nil, true
	}
	if best == tfRedact {
		return RedactMarker, true
	}
	var text string
	switch x := v.(type) {
	case string:
		text = x
	case json.Number:
		text = string(x)
	case bool:
		if best == tfMask {
			return "****", true
		}
		text = strconv.FormatBool(x)
	}
	if best == tfHash {
		return string(h.appendHex(nil, []byte(text))), true
	}
	return string(mask([]byte(text))), true
}

func decodeUseNumber(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data")
	}
	return v, nil
}

// fuzzPolicies are the policies the differential and fuzz tests draw from.
var fuzzPolicies = []string{
	`{"a":["a","b.#.c"],"b":[{"path":"b.#","transform":"mask"},"*.d"],"c":[{"path":"#.a","transform":"redact"},{"path":"e.*","transform":"null"}]}`,
	`{"a":["#.a.b","c.*.#"],"b":[{"path":"a","transform":"mask"}],"c":[{"path":"*","transform":"redact"},"d.e"]}`,
	`{"a":["*.a","*.b.#"],"b":[{"path":"b","transform":"hash"},{"path":"c.d","transform":"mask"}],"c":["e\\.f","#.#.a"]}`,
	`{"a":["d"],"b":["#"],"c":["a.a.a.a",{"path":"b.*.c","transform":"null"}]}`,
}

// fuzzEndpoint compiles policy i and returns it with its grants for the reference.
func fuzzEndpoint(t testing.TB, i int) (*endpoint, []refGrant) {
	fields := fuzzPolicies[i%len(fuzzPolicies)]
	ep := mustCompile(t, `{"connector":"f","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/f"},"fields":`+fields+`}]}`)[0]
	var parsed map[string][]fieldFile
	if err := json.Unmarshal([]byte(fields), &parsed); err != nil {
		t.Fatal(err)
	}
	var grants []refGrant
	for scope, list := range parsed {
		for _, f := range list {
			segs, err := parsePath(f.Path)
			if err != nil {
				t.Fatal(err)
			}
			grants = append(grants, refGrant{segs: segs, bit: ep.bits[scope], tf: transformNames[f.Transform]})
		}
	}
	return ep, grants
}

// randomDoc writes a random document without duplicate keys, with keys from
// a small alphabet (so the policies hit them) sometimes written with escapes.
func randomDoc(r *rand.Rand, b *strings.Builder, depth int) {
	choice := r.Intn(10)
	if depth > 5 {
		choice = 6 + r.Intn(4)
	}
	switch {
	case choice < 3:
		b.WriteByte('{')
		keys := r.Perm(7)[:r.Intn(6)]
		for i, k := range keys {
			if i > 0 {
				b.WriteString(ws(r) + "," + ws(r))
			}
			key := []string{"a", "b", "c", "d", "e", "e.f", "#"}[k]
			if r.Intn(4) == 0 {
				fmt.Fprintf(b, `"\u%04x%s"`, key[0], key[1:])
			} else {
				b.WriteString(strconv.Quote(key))
			}
			b.WriteString(ws(r) + ":" + ws(r))
			randomDoc(r, b, depth+1)
		}
		b.WriteByte('}')
	case choice < 6:
		b.WriteByte('[')
		n := r.Intn(4)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString("," + ws(r))
			}
			randomDoc(r, b, depth+1)
		}
		b.WriteByte(']')
	case choice == 6:
		b.WriteString([]string{`"plain"`, `"ada@example.com"`, `"\u00e9t\u00e9 \"q\" \\ \n"`, `"日本語テキスト"`, `""`, `"\ud83d\ude00x"`}[r.Intn(6)])
	case choice == 7:
		b.WriteString([]string{"0", "-1", "12345678901234567890123", "1.5e-7", "-0.0", "3E+2"}[r.Intn(6)])
	case choice == 8:
		b.WriteString([]string{"true", "false"}[r.Intn(2)])
	default:
		b.WriteString("null")
	}
}

func ws(r *rand.Rand) string { return []string{"", "", "", " ", "\n\t"}[r.Intn(5)] }

// TestDifferentialAgainstEncodingJSON compares the trimmer with the slow
// reference on random documents, policies and scope sets.
func TestDifferentialAgainstEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewSource(20261128))
	h := newHasher([]byte("differential-key"))
	for i := 0; i < 20000; i++ {
		var b strings.Builder
		randomDoc(r, &b, 0)
		doc := b.String()
		ep, grants := fuzzEndpoint(t, i)
		mask := uint64(r.Intn(8))
		tr := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}, mask: mask, hash: h}
		out, err := tr.trim(nil, []byte(doc), ep.root)
		if err != nil {
			t.Fatalf("doc %s: %v", doc, err)
		}
		checkTrimProperties(t, ep, grants, mask, []byte(doc), out, h)
	}
}

// checkTrimProperties asserts, for an accepted document: the output is
// valid JSON; it equals the reference's; every kept token is byte-identical
// to the input's when no transform applies; trimming again changes nothing
// (policies without hash).
func checkTrimProperties(t *testing.T, ep *endpoint, grants []refGrant, mask uint64, doc, out []byte, h *hasher) {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("doc %s: output %s is not valid JSON", doc, out)
	}
	if !json.Valid(doc) {
		t.Fatalf("accepted %q, which encoding/json refuses", doc)
	}
	if hasDuplicateKey(doc) {
		t.Fatalf("accepted %q, which repeats a key in an object", doc)
	}
	in, err := decodeUseNumber(doc)
	if err != nil {
		t.Fatalf("doc %q: %v", doc, err)
	}
	want, ok := refTrim(in, grants, mask, nil, tfNone, h)
	if !ok {
		want = nil
	}
	got, err := decodeUseNumber(out)
	if err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if !reflect.DeepEqual(got, want) {
		wb, _ := json.Marshal(want)
		t.Fatalf("mask %b doc %s\n got %s\nwant %s", mask, doc, out, wb)
	}
	if !usesTransforms(grants, mask) {
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		for {
			start := dec.InputOffset()
			tok, err := dec.Token()
			if err != nil {
				break
			}
			switch tok.(type) {
			case string, json.Number:
				raw := bytes.TrimLeft(out[start:dec.InputOffset()], " \t\r\n,:")
				if !bytes.Contains(doc, raw) {
					t.Fatalf("token %s of the output is not in the input %s", raw, doc)
				}
			}
		}
	}
	if !ep.usesHash || mask&hashBits(grants) == 0 {
		tr := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}, mask: mask, hash: h}
		again, err := tr.trim(nil, out, ep.root)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("trimming twice changed %s into %s (%v)", out, again, err)
		}
	}
}

func usesTransforms(grants []refGrant, mask uint64) bool {
	for _, g := range grants {
		if g.bit&mask != 0 && g.tf != tfRaw {
			return true
		}
	}
	return false
}

func hashBits(grants []refGrant) uint64 {
	var m uint64
	for _, g := range grants {
		if g.tf == tfHash {
			m |= g.bit
		}
	}
	return m
}

// FuzzTrim: any input gives valid JSON or an error; an accepted input is
// valid for encoding/json; the output matches the reference, keeps kept
// tokens byte-identical and is stable under a second trim.
func FuzzTrim(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[{"c":"x"}]}`, `[{"a":{"b":[1,2]}}]`, `{"e.f":"\u0065","d":{"e":[]}}`, `{"a":1,"a":2}`, "\"\xff\"", `[[[[[]]]]]`, `{"c":{"x":[true,false,null]}}`,
		// arrays of records, where the trimmer predicts keys from the record before
		`{"data":[{"a":1,"b":2},{"a":1,"b":2,"a":3}]}`, `{"data":[{"a":1,"b":2},{"b":1,"a":2,"b":3}]}`,
		`[{"a":1,"b":2},{"a":1,"\u0062":2},{"a":1,"b":2,"\u0061":0}]`, `[{"c":{"x":1},"d":2},{"c":{"x":1,"x":1},"d":2}]`,
		`[{"a" :1,"b":2},{"a" :1,"b" : 2},{"a":1, "b":2}]`} {
		for sel := 0; sel < 32; sel += 7 {
			f.Add([]byte(s), uint8(sel))
		}
	}
	h := newHasher([]byte("fuzz-key"))
	eps := make([]*endpoint, len(fuzzPolicies))
	grants := make([][]refGrant, len(fuzzPolicies))
	for i := range fuzzPolicies {
		eps[i], grants[i] = fuzzEndpoint(f, i)
	}
	f.Fuzz(func(t *testing.T, doc []byte, sel uint8) {
		i := int(sel) % len(fuzzPolicies)
		mask := uint64(sel>>2) & 7
		tr := &trimmer{scanner: scanner{maxDepth: 16}, mask: mask, hash: h}
		out, err := tr.trim(nil, doc, eps[i].root)
		if err != nil {
			var se *scanError
			if !errors.As(err, &se) || se.Reason == "" {
				t.Fatalf("an error without a reason: %v", err)
			}
			return
		}
		checkTrimProperties(t, eps[i], grants[i], mask, doc, out, h)
	})
}

// randomRecord writes an object whose keys follow base with random
// departures (keys left out, swapped, added or written with escapes), as
// the records of an array mostly repeat one another's keys. With dup, a key
// of the record is repeated (possibly escaped) and its offset in b
// returned; -1 otherwise.
func randomRecord(r *rand.Rand, b *strings.Builder, base []string, dup bool) int {
	keys := append([]string(nil), base...)
	switch r.Intn(4) {
	case 0:
		i := r.Intn(len(keys))
		keys = append(keys[:i], keys[i+1:]...)
	case 1:
		i, j := r.Intn(len(keys)), r.Intn(len(keys))
		keys[i], keys[j] = keys[j], keys[i]
	case 2:
		keys = append(keys, "x"+strconv.Itoa(r.Intn(3)))
	}
	dupAt, dupOffset := -1, -1
	if dup && len(keys) > 0 {
		dupAt = 1 + r.Intn(len(keys))
		keys = append(keys[:dupAt], append([]string{keys[r.Intn(dupAt)]}, keys[dupAt:]...)...)
	}
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString("," + ws(r))
		}
		if i == dupAt {
			dupOffset = b.Len()
		}
		if r.Intn(8) == 0 {
			fmt.Fprintf(b, `"\u%04x%s"`, k[0], k[1:])
		} else {
			b.WriteString(strconv.Quote(k))
		}
		b.WriteString(ws(r) + ":" + ws(r))
		if r.Intn(5) == 0 {
			randomRecord(r, b, base[:1+r.Intn(len(base))], false)
		} else {
			randomDoc(r, b, 5)
		}
	}
	b.WriteByte('}')
	return dupOffset
}

// TestRecordArraysTrimLikeSingleRecords checks the key prediction for the
// records of an array (see shape): an array of records trims to what its
// records trim to one by one, with the same withheld counts, agrees with the
// reference, and a repeated key in any record is refused at its offset.
func TestRecordArraysTrimLikeSingleRecords(t *testing.T) {
	r := rand.New(rand.NewSource(20261129))
	h := newHasher([]byte("records-key"))
	bases := [][]string{{"a", "b", "c", "d"}, {"e.f", "a", "#", "c", "e", "b"}, {"a"}, manyKeyNames(20)}
	for i := 0; i < 2000; i++ {
		ep, grants := fuzzEndpoint(t, i)
		mask := uint64(r.Intn(8))
		base := bases[r.Intn(len(bases))]
		n := 1 + r.Intn(6)
		dupIn := -1
		if r.Intn(3) == 0 {
			dupIn = r.Intn(n)
		}
		var b strings.Builder
		var records []string
		dupOffset := -1
		b.WriteByte('[')
		for j := 0; j < n; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			var rb strings.Builder
			off := randomRecord(r, &rb, base, j == dupIn)
			if off >= 0 {
				dupOffset = b.Len() + off
			}
			b.WriteString(rb.String())
			records = append(records, rb.String())
		}
		b.WriteByte(']')
		if dupOffset < 0 {
			dupIn = -1 // the record had no key to repeat
		}
		doc := b.String()
		tr := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}, mask: mask, hash: h}
		out, err := tr.trim(nil, []byte(doc), ep.root)
		if dupIn >= 0 {
			var se *scanError
			if !errors.As(err, &se) || se.Reason != sidecar.ReasonUpstreamDuplicate || se.Offset != dupOffset {
				t.Fatalf("doc %s: got %v, want a duplicate key at byte %d", doc, err, dupOffset)
			}
			continue
		}
		if err != nil {
			t.Fatalf("doc %s: %v", doc, err)
		}
		checkTrimProperties(t, ep, grants, mask, []byte(doc), out, h)
		patterns, counts := tr.withheldPatterns()
		if string(out) == "null" {
			continue // the whole array is withheld
		}
		var parts []string
		sum := map[string]int{}
		for _, rec := range records {
			one := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}, mask: mask, hash: h}
			o, err := one.trim(nil, []byte("["+rec+"]"), ep.root)
			if err != nil {
				t.Fatalf("record %s: %v", rec, err)
			}
			parts = append(parts, string(o[1:len(o)-1]))
			ps, cs := one.withheldPatterns()
			for k, p := range ps {
				sum[p] += cs[k]
			}
		}
		if want := "[" + strings.Join(parts, ",") + "]"; string(out) != want {
			t.Fatalf("doc %s:\n got %s\nwant %s", doc, out, want)
		}
		got := map[string]int{}
		for k, p := range patterns {
			got[p] = counts[k]
		}
		if !reflect.DeepEqual(got, sum) {
			t.Fatalf("doc %s: withheld %v, want %v", doc, got, sum)
		}
	}
}

func manyKeyNames(n int) []string {
	var keys []string
	for i := 0; i < n; i++ {
		keys = append(keys, "k"+strconv.Itoa(i))
	}
	return append(keys, "a", "b")
}

// hasDuplicateKey reports whether some object of doc (valid JSON) has a key
// twice after unescaping: encoding/json accepts that, the trimmer must not.
func hasDuplicateKey(doc []byte) bool {
	type frame struct {
		object, wantKey bool
		seen            map[string]bool
	}
	var stack []*frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if n := len(stack); n > 0 && stack[n-1].wantKey {
			if tok == json.Delim('}') {
				stack = stack[:n-1]
				valueDone()
				continue
			}
			key := tok.(string)
			if stack[n-1].seen[key] {
				return true
			}
			stack[n-1].seen[key], stack[n-1].wantKey = true, false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, wantKey: true, seen: map[string]bool{}})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}

func TestHasDuplicateKey(t *testing.T) {
	for doc, want := range map[string]bool{
		`{"a":1,"b":{"a":1}}`:             false,
		`[{"a":1},{"a":1}]`:               false,
		`{"a":1,"a":2}`:                   true,
		`{"a":[{"b":1}],"\u0061":0}`:      true,
		`[{"x":{"c":1,"d":[1,{"c":2}]}}]`: false,
		`[{"x":{"c":1,"d":[1],"c":2}}]`:   true,
	} {
		if got := hasDuplicateKey([]byte(doc)); got != want {
			t.Errorf("hasDuplicateKey(%s) = %v, want %v", doc, got, want)
		}
	}
}
