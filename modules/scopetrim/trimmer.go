package scopetrim

import (
	"bytes"
	"sort"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// trimmer builds a response from the allowed paths of one document in a
// single pass: it validates every byte (including values it drops) and
// appends to its output only what the compiled allowlist grants, so nothing
// is ever forwarded by omission. A trimmer is reused across the records of
// one response and is not safe for concurrent use.
type trimmer struct {
	scanner
	out     []byte
	mask    uint64
	hash    *hasher
	scratch []byte

	// withheld counts removed values by pattern; see withheldAt.
	withheld []withheldEntry
	hint     int // where countWithheld starts looking
	patterns []string
	counts   []int
	removed  int

	// shapes remember the keys of the last object seen at a node; see
	// shape. They are valid for one trim, or for the documents trimNext
	// trims under the same root, mask and record filter (shapesFor).
	shapes     [maxShapes]shape
	nShapes    int
	shapeArena []byte
	shapesFor  shapeContext

	// rec judges records (an endpoint with record rules, 2xx answers
	// only); nil otherwise. It points at recState.
	rec         *recordFilter
	recState    recordFilter
	countMark   []int
	removedMark int
	// noteRecord asks the next members call to note the members it reads
	// in rec, for the rules (see recordMembers): it is the record itself.
	noteRecord bool
}

// decision is what happens to one value.
type decision uint8

const (
	dWithhold decision = iota
	dCopy
	dDescend
	dTransform
)

// forget zeroes what the trimmer still holds of the last document (its
// output, transformed values, keys copied out of it) and drops its
// references to the body: a pooled trimmer keeps nothing of the data that
// passed, as the body buffers do not.
func (t *trimmer) forget() {
	clear(t.out[:cap(t.out)])
	t.out = t.out[:0]
	clear(t.scratch[:cap(t.scratch)])
	clear(t.arena[:cap(t.arena)])
	clear(t.shapeArena[:cap(t.shapeArena)])
	t.forgetShapes()
	clear(t.keys[:cap(t.keys)])
	for _, set := range t.sets[:cap(t.sets)] {
		clear(set)
	}
	t.src = nil
}

// trim appends to dst the trimmed form of the JSON document src. On error
// dst may hold partial output that the caller must discard.
func (t *trimmer) trim(dst, src []byte, root *node) ([]byte, error) {
	t.forgetShapes()
	return t.document(dst, src, root)
}

// trimNext is trim for the next document of a stream, such as the next
// line of an NDJSON answer: the shapes learned from the documents before
// it are kept, as trim keeps those of an array's earlier elements, so that
// records repeating their keys in one order are not learned anew each
// time. Shapes learned under another root, mask or record filter are
// dropped (their decisions would be another caller's), and so are shapes
// whose copies of keys outgrew maxShapeArena (records whose keys keep
// changing would otherwise grow it with the stream).
func (t *trimmer) trimNext(dst, src []byte, root *node) ([]byte, error) {
	if ctx := (shapeContext{root: root, mask: t.mask, rec: t.rec != nil}); ctx != t.shapesFor || len(t.shapeArena) > maxShapeArena {
		t.forgetShapes()
		t.shapesFor = ctx
	}
	return t.document(dst, src, root)
}

// document trims src with the shapes the trimmer holds.
func (t *trimmer) document(dst, src []byte, root *node) ([]byte, error) {
	t.reset(src)
	t.out = dst
	t.ws()
	if t.pos >= len(src) {
		t.fail(sidecar.ReasonUpstreamInvalidJSON, "empty body")
		return dst, t.err
	}
	if !validStart(src[t.pos]) {
		t.fail(sidecar.ReasonUpstreamInvalidJSON, prefixProblem(src[t.pos:]))
		return dst, t.err
	}
	start := t.pos
	single := t.rec != nil && t.rec.rules.single
	if single {
		t.startRecord()
	}
	switch d, tf := t.decide(root, tfNone, src[t.pos]); d {
	case dWithhold:
		t.noteRecord = false
		if t.skip(0) {
			t.out = append(t.out, "null"...)
			t.elementWithheld(nil)
		}
	default:
		t.emit(root, d, tf, 0)
	}
	t.noteRecord = false
	if t.err != nil {
		return t.out, t.err
	}
	if single {
		t.rec.rootReleased = t.rec.judge(src[start:t.pos])
	}
	t.ws()
	if t.pos != len(src) {
		t.fail(sidecar.ReasonUpstreamInvalidJSON, "trailing data after the JSON value")
		return t.out, t.err
	}
	return t.out, nil
}

func validStart(c byte) bool {
	switch {
	case c == '{', c == '[', c == '"', c == '-', c == 't', c == 'f', c == 'n':
		return true
	}
	return c >= '0' && c <= '9'
}

// prefixProblem names a known non-JSON prefix without quoting the body.
func prefixProblem(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\xef\xbb\xbf")):
		return "byte order mark before the JSON value"
	case bytes.HasPrefix(b, []byte(")]}'")), bytes.HasPrefix(b, []byte("while(1);")),
		bytes.HasPrefix(b, []byte("for(;;);")), bytes.HasPrefix(b, []byte("while (1);")):
		return "XSSI prefix before the JSON value"
	}
	i := 0
	for i < len(b) && (b[i] == '_' || b[i] == '$' || b[i] == '.' || b[i]|0x20 >= 'a' && b[i]|0x20 <= 'z' || b[i] >= '0' && b[i] <= '9') {
		i++
	}
	if i > 0 && i < len(b) && b[i] == '(' {
		return "JSONP callback around the JSON value"
	}
	return "not a JSON value"
}

// decide says what happens to a value whose first byte is c, at node n (nil
// when the policy does not reach here) under the transform inherited from
// its ancestors.
func (t *trimmer) decide(n *node, inherited transform, c byte) (decision, transform) {
	best := inherited
	if n != nil && n.granted&t.mask != 0 {
		for tf := tfRaw; tf < best; tf++ {
			if n.grant[tf]&t.mask != 0 {
				best = tf
				break
			}
		}
	}
	if n != nil && n.recordPath && t.rec != nil {
		return t.decideOnRecordPath(n, best, c)
	}
	if best == tfRaw {
		return dCopy, tfRaw
	}
	if c == '{' || c == '[' {
		if best != tfNone || (n != nil && n.below&t.mask != 0) {
			return dDescend, best
		}
		return dWithhold, tfNone
	}
	if best == tfNone {
		return dWithhold, tfNone
	}
	return dTransform, best
}

// emit writes the value at t.pos according to d.
func (t *trimmer) emit(n *node, d decision, tf transform, depth int) {
	switch d {
	case dCopy:
		start := t.pos
		var ok bool
		if t.src[start] == '"' { // the common case, without skip's dispatch
			_, _, ok = t.str()
		} else {
			ok = t.skip(depth)
		}
		if ok {
			t.out = append(t.out, t.src[start:t.pos]...)
		}
	case dTransform:
		t.transformScalar(tf)
	case dDescend:
		if t.src[t.pos] == '{' {
			t.object(n, tf, depth)
		} else {
			t.array(n, tf, depth)
		}
	}
}

func (t *trimmer) object(n *node, inherited transform, depth int) {
	if !t.enter(depth) {
		return
	}
	if n != nil && n.records && t.rec != nil {
		t.fail(sidecar.ReasonUpstreamNotRecords, "an object where the policy's records.at names an array of records")
		return
	}
	sh := t.shapeFor(n, inherited)
	t.members(n, inherited, depth, sh)
	if sh != nil {
		sh.busy = false
	}
}

// members writes the members of the object at t.pos. With a shape, keys
// are first predicted from it; see shape.
func (t *trimmer) members(n *node, inherited transform, depth int, sh *shape) {
	t.out = append(t.out, '{')
	base := len(t.keys)
	first, wrote := true, false
	note := t.noteRecord // this object is a record: its members are noted
	t.noteRecord = false
	// predicted: the keys so far are sh.keys[:k], byte for byte, and are
	// not yet on the scanner's key stack. learning: the keys so far are
	// sh.keys[:k] or have been recorded there.
	predicted, learning, k := sh != nil, sh != nil, 0
	// Members copied whole are not appended one by one: consecutive ones
	// form a run of the source (keys, values and the commas between them)
	// appended in one piece when the run ends.
	runStart, runEnd, extend := 0, 0, false
	for ; ; k++ {
		if !first && t.pos+1 < len(t.src) && t.src[t.pos] == ',' && t.src[t.pos+1] > ' ' {
			t.pos++ // what next does in compact JSON
		} else {
			end, ok := t.next(first, base)
			if !ok {
				return
			}
			if end {
				t.out = append(t.out, t.src[runStart:runEnd]...)
				t.out = append(t.out, '}')
				if note {
					t.rec.members.indexed = !t.rec.members.dropped
				}
				return
			}
			first = false
		}
		keyStart, keyLen := t.pos, 0
		var sk *shapeKey
		var key []byte
		escaped := false // key is not as written in the source
		if predicted && k < len(sh.keys) && sh.keys[k].matches(t.src, t.pos) {
			sk = &sh.keys[k]
			keyLen = sk.keyLen
			t.pos += len(sk.written)
			if len(sk.written) == keyLen {
				if !t.colon() {
					return
				}
			} else if t.pos < len(t.src) && t.src[t.pos] <= ' ' {
				t.ws()
			}
		} else {
			if predicted {
				// the object leaves the shape here: the keys before this one
				// go on the stack, so the rest are checked against them
				predicted = false
				for i := range sh.keys[:k] {
					t.duplicate(sh.keys[i].key(), base)
				}
			}
			unescaped, raw, ok := t.key(base)
			if !ok {
				return
			}
			key, keyLen = unescaped, len(raw)+2
			escaped = len(raw) != len(key) // an escape always shortens
			if learning {
				sh.keys = sh.keys[:k]
				// a key with escapes is not learned: the shape compares
				// keys as written
				if learning = len(raw) == len(key); learning {
					sk = t.learn(sh, keyStart, keyLen, n.child(key), inherited)
				}
			}
		}
		if t.pos >= len(t.src) {
			t.fail(sidecar.ReasonUpstreamInvalidJSON, "unexpected end of input")
			return
		}
		var child *node
		var d decision
		var tf transform
		valueStart, c := t.pos, t.src[t.pos]
		if sk != nil {
			child = sk.child
			if c == '{' || c == '[' {
				d, tf = sk.dNested, sk.tfNested
			} else {
				d, tf = sk.dScalar, sk.tfScalar
			}
		} else {
			child = n.child(key)
			d, tf = dWithhold, tfNone
			if child != nil || inherited != tfNone {
				d, tf = t.decide(child, inherited, c)
			}
		}
		if d == dWithhold {
			if !t.skip(depth + 1) {
				return
			}
			if sk != nil {
				if sk.withheld < 0 {
					sk.withheld = t.withheldAt(n, sk.key(), false)
				} else {
					// what withheldAt would find for this key again
					t.removed++
					t.withheld[sk.withheld].count++
				}
			} else {
				t.keyWithheld(n, key)
			}
			if note {
				t.noteMember(keyStart, keyLen, key, escaped, valueStart)
			}
			extend = false
			continue
		}
		if d == dCopy {
			var ok bool
			if t.src[t.pos] == '"' {
				_, _, ok = t.str()
			} else {
				ok = t.skip(depth + 1)
			}
			if !ok {
				return
			}
			if note {
				t.noteMember(keyStart, keyLen, key, escaped, valueStart)
			}
			if extend {
				runEnd = t.pos // the comma before this member comes along
				continue
			}
			t.out = append(t.out, t.src[runStart:runEnd]...)
			if wrote {
				t.out = append(t.out, ',')
			}
			wrote, extend = true, true
			runStart, runEnd = keyStart, t.pos
			continue
		}
		t.out = append(t.out, t.src[runStart:runEnd]...)
		runStart, runEnd, extend = 0, 0, false
		if wrote {
			t.out = append(t.out, ',')
		}
		wrote = true
		t.out = append(t.out, t.src[keyStart:keyStart+keyLen]...)
		t.out = append(t.out, ':')
		t.emit(child, d, tf, depth+1)
		if t.err != nil {
			return
		}
		if note {
			t.noteMember(keyStart, keyLen, key, escaped, valueStart)
		}
	}
}

// openArray enters the array at t.pos and writes its '['. It reports
// whether elements follow: false for an empty array (its ']' is written
// too) and for one too deep (the trimmer has failed).
func (t *trimmer) openArray(depth int) bool {
	if !t.enter(depth) {
		return false
	}
	t.out = append(t.out, '[')
	t.pos++
	t.ws()
	if t.pos < len(t.src) && t.src[t.pos] == ']' {
		t.pos++
		t.out = append(t.out, ']')
		return false
	}
	return true
}

func (t *trimmer) array(n *node, inherited transform, depth int) {
	if n != nil && n.records && t.rec != nil {
		t.recordArray(n, inherited, depth)
		return
	}
	if !t.openArray(depth) {
		return
	}
	var elem *node
	if n != nil {
		elem = n.elem
	}
	for i := 0; ; i++ {
		t.ws()
		if t.pos >= len(t.src) {
			t.fail(sidecar.ReasonUpstreamInvalidJSON, "unterminated array")
			return
		}
		if i > 0 {
			t.out = append(t.out, ',')
		}
		d, tf := t.decide(elem, inherited, t.src[t.pos])
		if d == dWithhold {
			// arrays keep their length: a withheld element becomes null
			if !t.skip(depth + 1) {
				return
			}
			t.out = append(t.out, "null"...)
			t.elementWithheld(n)
		} else {
			t.emit(elem, d, tf, depth+1)
			if t.err != nil {
				return
			}
		}
		if !t.afterElement() {
			if t.err == nil {
				t.out = append(t.out, ']')
			}
			return
		}
	}
}

// withheldEntry counts the values withheld at one pattern: a key of a
// parent node, or (elem) every element of an array node.
type withheldEntry struct {
	parent  *node
	key     string
	elem    bool
	pattern string
	count   int
}

// maxWithheldEntries bounds the table a trimmer keeps between documents;
// patterns past it are still counted, under their parent's "*".
const maxWithheldEntries = 256

// withheldAt counts one withheld value and returns the entry it counted it
// under. The table of (parent, key) entries
// and their pattern strings persists across the documents a pooled trimmer
// trims, so counting allocates nothing once the patterns have been seen.
func (t *trimmer) withheldAt(parent *node, key []byte, elem bool) int {
	t.removed++
	// the table holds only safe keys, so a hit needs no patternSafe check
	if i := t.countWithheld(parent, key, elem); i >= 0 {
		return i
	}
	if !elem && !patternSafe(key) {
		key = starKey
		if i := t.countWithheld(parent, key, elem); i >= 0 {
			return i
		}
	}
	if len(t.withheld) >= maxWithheldEntries {
		key, elem = starKey, false // collapse into the parent's "*" entry
		for i := range t.withheld {
			if e := &t.withheld[i]; e.parent == parent && !e.elem && e.key == "*" {
				e.count++
				return i
			}
		}
	}
	e := withheldEntry{parent: parent, key: string(key), elem: elem, count: 1}
	switch {
	case parent == nil:
		e.pattern = "(root)" // a withheld top-level scalar
	case elem:
		e.pattern = joinPattern(parent.pattern, "#")
	default:
		e.pattern = joinPattern(parent.pattern, escapeKey(e.key))
	}
	t.withheld = append(t.withheld, e)
	return len(t.withheld) - 1
}

var starKey = []byte("*")

// countWithheld adds one to an existing entry, if there is one, and returns
// its index (or -1).
// The search starts after the previous hit: the objects of an array repeat
// their keys in the same order, so that is usually the entry wanted.
func (t *trimmer) countWithheld(parent *node, key []byte, elem bool) int {
	n := len(t.withheld)
	for k, i := 0, t.hint; k < n; k, i = k+1, i+1 {
		if i >= n {
			i = 0
		}
		e := &t.withheld[i]
		if e.parent == parent && e.elem == elem && len(e.key) == len(key) && e.key == string(key) {
			e.count++
			t.hint = i + 1
			return i
		}
	}
	return -1
}

func (t *trimmer) keyWithheld(parent *node, key []byte) { t.withheldAt(parent, key, false) }

func (t *trimmer) elementWithheld(parent *node) { t.withheldAt(parent, nil, true) }

// patternSafe reports whether a withheld key may be recorded as written. Keys
// can be data (maps keyed by e-mail address), so only identifier-like keys
// are recorded; any other becomes "*".
func patternSafe(key []byte) bool {
	if len(key) == 0 || len(key) > 64 {
		return false
	}
	for _, c := range key {
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'z') {
			return false
		}
	}
	return true
}

// withheldPatterns returns the removed paths as sorted patterns with their
// counts, and resets the counts. The slices are reused by the next call.
func (t *trimmer) withheldPatterns() (patterns []string, counts []int) {
	t.patterns, t.counts = t.patterns[:0], t.counts[:0]
	for i := range t.withheld {
		if e := &t.withheld[i]; e.count > 0 {
			t.patterns = append(t.patterns, e.pattern)
			t.counts = append(t.counts, e.count)
			e.count = 0
		}
	}
	sort.Sort((*byPattern)(t))
	t.removed = 0
	return t.patterns, t.counts
}

// byPattern sorts a trimmer's withheld patterns with their counts.
type byPattern trimmer

func (b *byPattern) Len() int           { return len(b.patterns) }
func (b *byPattern) Less(i, j int) bool { return b.patterns[i] < b.patterns[j] }
func (b *byPattern) Swap(i, j int) {
	b.patterns[i], b.patterns[j] = b.patterns[j], b.patterns[i]
	b.counts[i], b.counts[j] = b.counts[j], b.counts[i]
}
