package scopetrim

import (
	"fmt"
	"sort"
	"strings"
)

// transform is what happens to a granted value. The order is the order of
// restriction: when several grants cover one value, the smallest wins.
type transform uint8

const (
	tfRaw transform = iota
	tfMask
	tfHash
	tfRedact
	tfNull
	tfNone // not granted: the value is withheld
)

var transformNames = map[string]transform{
	"":       tfRaw,
	"raw":    tfRaw,
	"mask":   tfMask,
	"hash":   tfHash,
	"redact": tfRedact,
	"null":   tfNull,
}

func (t transform) String() string {
	switch t {
	case tfRaw:
		return "raw"
	case tfMask:
		return "mask"
	case tfHash:
		return "hash"
	case tfRedact:
		return "redact"
	case tfNull:
		return "null"
	}
	return "none"
}

// node is one step of an endpoint's compiled allowlist. The scopes that
// grant the node's whole subtree are bitmasks per transform, so a request's
// scopes are applied with one AND per node instead of a map lookup per scope.
type node struct {
	// pattern is the node's path as written in withheld patterns ("data.#").
	pattern string
	keys    map[string]*node
	// list holds keys when there are few: comparing a handful of short
	// strings is faster than hashing one
	list  []keyedNode
	first *[256]uint8
	// star is the child for every key ("*"); it is merged into every exact
	// key child at compile time, so a lookup falls back to it only for keys
	// the policy does not name.
	star *node
	// elem is the child for every array element ("#").
	elem *node
	// grant[t] holds the scopes that grant this subtree with transform t.
	grant [tfNone]uint64
	// below holds the scopes that grant something at or under this node.
	below uint64
	// granted holds the scopes with any grant at this node.
	granted uint64
	// recordPath marks the nodes from the root to an endpoint's records
	// array, and records that array's node (see records.go).
	recordPath, records bool
}

type keyedNode struct {
	key string
	n   *node
}

// smallNode is the most keys looked up by scanning a list.
const smallNode = 200

// best returns the least restrictive transform the scopes in mask grant here.
func (n *node) best(mask uint64) transform {
	if n == nil {
		return tfNone
	}
	for t := tfRaw; t < tfNone; t++ {
		if n.grant[t]&mask != 0 {
			return t
		}
	}
	return tfNone
}

// child returns the node for an object key, or nil.
func (n *node) child(key []byte) *node {
	if n == nil {
		return nil
	}
	if n.list != nil && len(key) > 0 {
		// list is sorted by first byte; first[b] is 1 + the index of the
		// first key starting with b, so most lookups compare one string
		for i := int(n.first[key[0]]) - 1; i >= 0 && i < len(n.list) && n.list[i].key[0] == key[0]; i++ {
			if k := n.list[i].key; len(k) == len(key) && k == string(key) {
				return n.list[i].n
			}
		}
		return n.star
	}
	if c, ok := n.keys[string(key)]; ok {
		return c
	}
	return n.star
}

// segment kinds of a parsed path.
const (
	segKey = iota
	segStar
	segElem
)

type segment struct {
	kind int
	key  string
}

// parsePath parses a policy field path: dot-separated keys, "#" for every
// array element, "*" for every object key, "\." for a dot inside a key and
// "\\", "\#", "\*" for a literal backslash, "#" or "*". Anything that looks
// like a gjson query or modifier is refused rather than silently treated as
// a key, so a policy never means something other than it appears to.
func parsePath(p string) ([]segment, error) {
	if p == "" {
		return nil, fmt.Errorf("empty path")
	}
	var segs []segment
	var cur strings.Builder
	escaped := false // the current segment had an escape, so "#"/"*" are literal
	flush := func() error {
		s := cur.String()
		cur.Reset()
		switch {
		case s == "" && !escaped:
			return fmt.Errorf("path %q has an empty key (two dots in a row, or a leading or trailing dot)", p)
		case !escaped && s == "#":
			segs = append(segs, segment{kind: segElem})
		case !escaped && s == "*":
			segs = append(segs, segment{kind: segStar})
		default:
			segs = append(segs, segment{kind: segKey, key: s})
		}
		escaped = false
		return nil
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '\\':
			if i+1 >= len(p) {
				return nil, fmt.Errorf("path %q ends with a lone backslash", p)
			}
			i++
			switch p[i] {
			case '.', '\\', '#', '*':
				cur.WriteByte(p[i])
				escaped = true
			default:
				return nil, fmt.Errorf("path %q has the escape \\%c; only \\. \\\\ \\# and \\* are allowed", p, p[i])
			}
		case '.':
			if err := flush(); err != nil {
				return nil, err
			}
		case '#', '*':
			// a wildcard must be a whole segment
			next := i + 1
			if cur.Len() > 0 || (next < len(p) && p[next] != '.') {
				return nil, fmt.Errorf("path %q uses %q inside a key; it must be a whole segment (escape it as \\%c for a literal)", p, c, c)
			}
			cur.WriteByte(c)
		case '|', '@', '(', ')', '?', '!', '=', '<', '>', '%', '~':
			if cur.Len() == 0 || c == '|' || c == '(' {
				return nil, fmt.Errorf("path %q contains %q: gjson queries and modifiers are not part of the policy language", p, c)
			}
			cur.WriteByte(c)
		default:
			cur.WriteByte(c)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return segs, nil
}

// escapeKey writes a key as it appears in a path pattern.
func escapeKey(k string) string {
	if !strings.ContainsAny(k, `.\#*`) {
		return k
	}
	r := strings.NewReplacer(`\`, `\\`, `.`, `\.`, `#`, `\#`, `*`, `\*`)
	return r.Replace(k)
}

func joinPattern(parent, step string) string {
	if parent == "" {
		return step
	}
	return parent + "." + step
}

// insert adds a grant of transform t for scope bit to the path.
func (n *node) insert(segs []segment, bit uint64, t transform) {
	cur := n
	for _, s := range segs {
		var next *node
		switch s.kind {
		case segElem:
			if cur.elem == nil {
				cur.elem = &node{pattern: joinPattern(cur.pattern, "#")}
			}
			next = cur.elem
		case segStar:
			if cur.star == nil {
				cur.star = &node{pattern: joinPattern(cur.pattern, "*")}
			}
			next = cur.star
		default:
			if cur.keys == nil {
				cur.keys = make(map[string]*node)
			}
			next = cur.keys[s.key]
			if next == nil {
				next = &node{pattern: joinPattern(cur.pattern, escapeKey(s.key))}
				cur.keys[s.key] = next
			}
		}
		cur = next
	}
	cur.grant[t] |= bit
}

// finish merges "*" children into exact key children (a key named by the
// policy must still get what "*" grants) and computes below masks.
func (n *node) finish() uint64 {
	if n == nil {
		return 0
	}
	if n.star != nil {
		for _, c := range n.keys {
			mergeInto(c, n.star)
		}
	}
	n.granted = 0
	for t := range n.grant {
		n.granted |= n.grant[t]
	}
	below := n.granted
	n.list, n.first = nil, nil
	if _, empty := n.keys[""]; len(n.keys) > 0 && len(n.keys) <= smallNode && !empty {
		for k, c := range n.keys {
			n.list = append(n.list, keyedNode{k, c})
		}
		sort.Slice(n.list, func(i, j int) bool { return n.list[i].key < n.list[j].key })
		n.first = new([256]uint8)
		for i := len(n.list) - 1; i >= 0; i-- {
			n.first[n.list[i].key[0]] = uint8(i + 1)
		}
	}
	for _, c := range n.keys {
		below |= c.finish()
	}
	below |= n.star.finish()
	below |= n.elem.finish()
	n.below = below
	return below
}

// mergeInto adds every grant of src's subtree to dst's subtree, keeping dst's
// patterns.
func mergeInto(dst, src *node) {
	for t := range src.grant {
		dst.grant[t] |= src.grant[t]
	}
	for k, sc := range src.keys {
		if dst.keys == nil {
			dst.keys = make(map[string]*node)
		}
		dc := dst.keys[k]
		if dc == nil {
			dc = &node{pattern: joinPattern(dst.pattern, escapeKey(k))}
			dst.keys[k] = dc
		}
		mergeInto(dc, sc)
	}
	if src.star != nil {
		if dst.star == nil {
			dst.star = &node{pattern: joinPattern(dst.pattern, "*")}
		}
		mergeInto(dst.star, src.star)
	}
	if src.elem != nil {
		if dst.elem == nil {
			dst.elem = &node{pattern: joinPattern(dst.pattern, "#")}
		}
		mergeInto(dst.elem, src.elem)
	}
}

// hashScopes returns the scopes for which some grant in the subtree hashes.
func (n *node) hashScopes() uint64 {
	if n == nil {
		return 0
	}
	s := n.grant[tfHash]
	for _, c := range n.keys {
		s |= c.hashScopes()
	}
	return s | n.star.hashScopes() | n.elem.hashScopes()
}
