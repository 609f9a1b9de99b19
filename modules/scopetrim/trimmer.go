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

	// withheld counts removed values by parent node and key; elements
	// counts removed array elements by array node.
	withheld map[*node]map[string]*int
	recent   []recentKey // the last withheld keys, to skip two map lookups
	elements map[*node]int
	removed  int
}

// decision is what happens to one value.
type decision uint8

const (
	dWithhold decision = iota
	dCopy
	dDescend
	dTransform
)

// trim appends to dst the trimmed form of the JSON document src. On error
// dst may hold partial output that the caller must discard.
func (t *trimmer) trim(dst, src []byte, root *node) ([]byte, error) {
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
	switch d, tf := t.decide(root, tfNone, src[t.pos]); d {
	case dWithhold:
		if t.skip(0) {
			t.out = append(t.out, "null"...)
			t.elementWithheld(nil)
		}
	default:
		t.emit(root, d, tf, 0)
	}
	if t.err != nil {
		return t.out, t.err
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
	t.out = append(t.out, '{')
	base := len(t.keys)
	first, wrote := true, false
	for {
		key, raw, ok := t.member(first, base)
		if !ok {
			return
		}
		if key == nil {
			t.out = append(t.out, '}')
			return
		}
		first = false
		if t.pos >= len(t.src) {
			t.fail(sidecar.ReasonUpstreamInvalidJSON, "unexpected end of input")
			return
		}
		child := n.child(key)
		d, tf := dWithhold, tfNone
		if child != nil || inherited != tfNone {
			d, tf = t.decide(child, inherited, t.src[t.pos])
		}
		if d == dWithhold {
			if !t.skip(depth + 1) {
				return
			}
			t.keyWithheld(n, key)
			continue
		}
		if wrote {
			t.out = append(t.out, ',')
		}
		wrote = true
		t.out = append(t.out, '"')
		t.out = append(t.out, raw...)
		t.out = append(t.out, '"', ':')
		t.emit(child, d, tf, depth+1)
		if t.err != nil {
			return
		}
	}
}

func (t *trimmer) array(n *node, inherited transform, depth int) {
	if !t.enter(depth) {
		return
	}
	t.out = append(t.out, '[')
	t.pos++
	t.ws()
	if t.pos < len(t.src) && t.src[t.pos] == ']' {
		t.pos++
		t.out = append(t.out, ']')
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

// recentKey is a withheld (parent, key) and its counter.
type recentKey struct {
	parent *node
	key    string
	count  *int
}

func (t *trimmer) keyWithheld(parent *node, key []byte) {
	t.removed++
	for i := range t.recent {
		if r := &t.recent[i]; r.parent == parent && len(r.key) == len(key) && r.key == string(key) {
			*r.count++
			return
		}
	}
	t.keyWithheldSlow(parent, key)
}

func (t *trimmer) keyWithheldSlow(parent *node, key []byte) {
	if t.withheld == nil {
		t.withheld = make(map[*node]map[string]*int)
	}
	m := t.withheld[parent]
	if m == nil {
		m = make(map[string]*int)
		t.withheld[parent] = m
	}
	if !patternSafe(key) {
		key = []byte("*")
	}
	// a lookup with string(key) does not allocate; only a new pattern does
	c := m[string(key)]
	if c != nil {
		*c++
	} else {
		c = new(int)
		*c = 1
		m[string(key)] = c
	}
	if len(t.recent) < 16 && patternSafe(key) {
		t.recent = append(t.recent, recentKey{parent, string(key), c})
	}
}

func (t *trimmer) elementWithheld(parent *node) {
	t.removed++
	if t.elements == nil {
		t.elements = make(map[*node]int)
	}
	t.elements[parent]++
}

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
// counts, and forgets them.
func (t *trimmer) withheldPatterns() (patterns []string, counts []int) {
	type pc struct {
		p string
		c int
	}
	var all []pc
	for n, m := range t.withheld {
		for k, c := range m {
			all = append(all, pc{joinPattern(n.pattern, escapeKey(k)), *c})
		}
	}
	for n, c := range t.elements {
		p := "(root)" // a withheld top-level scalar
		if n != nil {
			p = joinPattern(n.pattern, "#")
		}
		all = append(all, pc{p, c})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].p < all[j].p })
	for _, e := range all {
		patterns = append(patterns, e.p)
		counts = append(counts, e.c)
	}
	clear(t.withheld)
	clear(t.elements)
	t.recent = t.recent[:0]
	return patterns, counts
}
