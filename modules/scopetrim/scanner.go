package scopetrim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// DefaultMaxDepth is how deeply objects and arrays may nest unless configured.
const DefaultMaxDepth = 64

// scanError is why a document was refused. Reason is a sidecar reason code;
// the message names the byte offset and the problem, never document content.
type scanError struct {
	Reason string
	Offset int
	Msg    string
}

func (e *scanError) Error() string { return fmt.Sprintf("%s at byte %d", e.Msg, e.Offset) }

// bigObject is the key count above which duplicate detection switches from
// comparing against every earlier key to a set, so a huge object cannot make
// the check quadratic.
const bigObject = 16

// keyRef is one key of an object being scanned, in its unescaped form.
type keyRef []byte

// scanner validates JSON strictly (RFC 8259, UTF-8, no duplicate keys, a
// depth limit) in one pass. The trimmer drives it; it never allocates per
// value once its scratch space has grown.
type scanner struct {
	src      []byte
	pos      int
	maxDepth int
	keys     []keyRef              // keys of the objects being scanned, innermost last
	arena    []byte                // unescaped keys
	sets     []map[string]struct{} // key sets of the open large objects
	setBases []int                 // where each of those objects' keys start
	blooms   []uint64              // per open object, a filter of its keys so far
	err      *scanError
}

// strFlags marks bytes that end the fast loop inside a string.
var strFlags = func() (t [256]bool) {
	for i := 0; i < 0x20; i++ {
		t[i] = true
	}
	t['"'] = true
	t['\\'] = true
	for i := 0x80; i < 0x100; i++ {
		t[i] = true
	}
	return t
}()

func (s *scanner) reset(src []byte) {
	s.src, s.pos, s.err = src, 0, nil
	s.keys = s.keys[:0]
	s.arena = s.arena[:0]
	s.sets = s.sets[:0]
	s.setBases = s.setBases[:0]
	s.blooms = s.blooms[:0]
	if s.maxDepth <= 0 {
		s.maxDepth = DefaultMaxDepth
	}
}

func (s *scanner) fail(reason, msg string) {
	if s.err == nil {
		s.err = &scanError{Reason: reason, Offset: s.pos, Msg: msg}
	}
}

func (s *scanner) ws() {
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		if c > ' ' || (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			return
		}
		s.pos++
	}
}

// str scans a string starting at the opening quote and returns its content
// (between the quotes, still escaped) and whether it holds an escape.
func (s *scanner) str() (content []byte, escaped bool, ok bool) {
	src := s.src
	i := s.pos + 1
	start := i
	for {
		// eight bytes at a time while none is a quote, a backslash, a
		// control character or non-ASCII. Bytes above the lowest hit may be
		// false hits, but the lowest is exact (a borrow only starts at a
		// byte that is itself a hit), so src[i] is the next byte to act on
		// and needs no second look.
		for {
			if i+8 > len(src) {
				for i < len(src) && !strFlags[src[i]] {
					i++
				}
				break
			}
			x := binary.LittleEndian.Uint64(src[i:])
			hit := ((x - 0x2020202020202020) | ((x ^ 0x2222222222222222) - 0x0101010101010101) |
				((x ^ 0x5c5c5c5c5c5c5c5c) - 0x0101010101010101) | x) & 0x8080808080808080
			if hit != 0 {
				i += bits.TrailingZeros64(hit) >> 3
				break
			}
			i += 8
		}
		if i >= len(src) {
			s.pos = i
			s.fail(sidecar.ReasonUpstreamInvalidJSON, "unterminated string")
			return nil, false, false
		}
		c := src[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return src[start:i], escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(src) {
				s.pos = i
				s.fail(sidecar.ReasonUpstreamInvalidJSON, "unterminated escape")
				return nil, false, false
			}
			switch src[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, n := hex4(src, i+2)
				if n < 0 {
					s.pos = i
					s.fail(sidecar.ReasonUpstreamInvalidJSON, "bad \\u escape")
					return nil, false, false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					// only a high surrogate followed by a low one is Unicode
					r2, n2 := rune(-1), -1
					if r < 0xdc00 && i+1 < len(src) && src[i] == '\\' && src[i+1] == 'u' {
						r2, n2 = hex4(src, i+2)
					}
					if n2 < 0 || r2 < 0xdc00 || r2 > 0xdfff {
						s.pos = i - 6
						s.fail(sidecar.ReasonUpstreamInvalidUTF8, "unpaired surrogate escape")
						return nil, false, false
					}
					i += 6
				}
			default:
				s.pos = i
				s.fail(sidecar.ReasonUpstreamInvalidJSON, "bad escape")
				return nil, false, false
			}
		case c < 0x20:
			s.pos = i
			s.fail(sidecar.ReasonUpstreamInvalidJSON, "control character in string")
			return nil, false, false
		default:
			r, n := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && n <= 1 {
				s.pos = i
				s.fail(sidecar.ReasonUpstreamInvalidUTF8, "invalid UTF-8 in string")
				return nil, false, false
			}
			i += n
		}
	}
}

func hex4(src []byte, i int) (rune, int) {
	if i+4 > len(src) {
		return 0, -1
	}
	var r rune
	for _, c := range src[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, -1
		}
	}
	return r, 4
}

// unescape appends the decoded content of a validated string to dst.
func unescape(dst, content []byte) []byte {
	for i := 0; i < len(content); {
		c := content[i]
		if c != '\\' {
			j := bytes.IndexByte(content[i:], '\\')
			if j < 0 {
				return append(dst, content[i:]...)
			}
			dst = append(dst, content[i:i+j]...)
			i += j
			continue
		}
		switch content[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(content, i+2)
			if utf16.IsSurrogate(r) {
				r2, _ := hex4(content, i+8)
				r = utf16.DecodeRune(r, r2)
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
			i += 6
			continue
		default: // " \ /
			dst = append(dst, content[i+1])
		}
		i += 2
	}
	return dst
}

// number scans a number per the RFC 8259 grammar.
func (s *scanner) number() bool {
	src, i := s.src, s.pos
	if i < len(src) && src[i] == '-' {
		i++
	}
	switch {
	case i < len(src) && src[i] == '0':
		i++
	case i < len(src) && src[i] >= '1' && src[i] <= '9':
		for i++; i < len(src) && src[i] >= '0' && src[i] <= '9'; i++ {
		}
	default:
		s.pos = i
		s.fail(sidecar.ReasonUpstreamInvalidJSON, "bad number")
		return false
	}
	if i < len(src) && src[i] == '.' {
		i++
		if i >= len(src) || src[i] < '0' || src[i] > '9' {
			s.pos = i
			s.fail(sidecar.ReasonUpstreamInvalidJSON, "bad number fraction")
			return false
		}
		for ; i < len(src) && src[i] >= '0' && src[i] <= '9'; i++ {
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if i >= len(src) || src[i] < '0' || src[i] > '9' {
			s.pos = i
			s.fail(sidecar.ReasonUpstreamInvalidJSON, "bad number exponent")
			return false
		}
		for ; i < len(src) && src[i] >= '0' && src[i] <= '9'; i++ {
		}
	}
	s.pos = i
	return true
}

func (s *scanner) literal(word string) bool {
	if len(s.src)-s.pos < len(word) || string(s.src[s.pos:s.pos+len(word)]) != word {
		s.fail(sidecar.ReasonUpstreamInvalidJSON, "bad literal")
		return false
	}
	s.pos += len(word)
	return true
}

// scalar scans a string, number or literal.
func (s *scanner) scalar() bool {
	if s.pos >= len(s.src) {
		s.fail(sidecar.ReasonUpstreamInvalidJSON, "unexpected end of input")
		return false
	}
	switch c := s.src[s.pos]; {
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	s.fail(sidecar.ReasonUpstreamInvalidJSON, "unexpected character")
	return false
}

// skip validates one value without producing output.
func (s *scanner) skip(depth int) bool {
	if s.pos >= len(s.src) {
		s.fail(sidecar.ReasonUpstreamInvalidJSON, "unexpected end of input")
		return false
	}
	switch s.src[s.pos] {
	case '{':
		if !s.enter(depth) {
			return false
		}
		first := true
		base := len(s.keys)
		for {
			key, _, ok := s.member(first, base)
			if !ok {
				return false
			}
			if key == nil {
				return true
			}
			first = false
			if !s.skip(depth + 1) {
				return false
			}
		}
	case '[':
		if !s.enter(depth) {
			return false
		}
		s.pos++
		s.ws()
		if s.pos < len(s.src) && s.src[s.pos] == ']' {
			s.pos++
			return true
		}
		for {
			s.ws()
			if !s.skip(depth + 1) {
				return false
			}
			if !s.afterElement() {
				return s.err == nil
			}
		}
	}
	return s.scalar()
}

func (s *scanner) enter(depth int) bool {
	if depth >= s.maxDepth {
		s.fail(sidecar.ReasonUpstreamTooDeep, fmt.Sprintf("nesting deeper than %d", s.maxDepth))
		return false
	}
	return true
}

// afterElement consumes what follows an array element: "," (true) or "]"
// (false, with s.err nil).
func (s *scanner) afterElement() bool {
	s.ws()
	if s.pos < len(s.src) {
		switch s.src[s.pos] {
		case ',':
			s.pos++
			return true
		case ']':
			s.pos++
			return false
		}
	}
	s.fail(sidecar.ReasonUpstreamInvalidJSON, "expected ',' or ']' in array")
	return false
}

// member reads the next object member up to and including its colon and
// returns the key unescaped and as written (both non-nil, possibly empty).
// At the end of the object it consumes "}" and returns nil keys with ok
// true. On the first call s.pos is at "{". Keys are checked against the
// object's earlier keys (stored from base on) after unescaping.
func (s *scanner) member(first bool, base int) (key, raw []byte, ok bool) {
	if end, ok := s.next(first, base); end || !ok {
		return nil, nil, ok
	}
	return s.key(base)
}

// next consumes what comes before an object member: the "{" (first) or
// the "," and the whitespace around them. At the end of the object it
// consumes "}" and reports end.
func (s *scanner) next(first bool, base int) (end, ok bool) {
	if first {
		s.pos++
		s.ws()
		if s.pos < len(s.src) && s.src[s.pos] == '}' {
			s.pos++
			return true, true
		}
		s.blooms = append(s.blooms, 0)
		return false, true
	}
	s.ws()
	if s.pos >= len(s.src) {
		s.fail(sidecar.ReasonUpstreamInvalidJSON, "unterminated object")
		return false, false
	}
	switch s.src[s.pos] {
	case '}':
		s.pos++
		s.endObject(base)
		return true, true
	case ',':
		s.pos++
		s.ws()
		return false, true
	}
	s.fail(sidecar.ReasonUpstreamInvalidJSON, "expected ',' or '}' in object")
	return false, false
}

// key reads the key at s.pos and its colon, and returns it as member does.
func (s *scanner) key(base int) (key, raw []byte, ok bool) {
	if s.pos >= len(s.src) || s.src[s.pos] != '"' {
		s.fail(sidecar.ReasonUpstreamInvalidJSON, "expected a string key")
		return nil, nil, false
	}
	keyPos := s.pos
	raw, escaped, ok := s.str()
	if !ok {
		return nil, nil, false
	}
	key = raw
	if escaped {
		start := len(s.arena)
		s.arena = unescape(s.arena, raw)
		key = s.arena[start:len(s.arena):len(s.arena)]
	}
	if s.duplicate(key, base) {
		s.pos = keyPos
		s.fail(sidecar.ReasonUpstreamDuplicate, "duplicate key in object")
		return nil, nil, false
	}
	return key, raw, s.colon()
}

// colon consumes the colon after a key and the whitespace around it.
func (s *scanner) colon() bool {
	if s.pos >= len(s.src) || s.src[s.pos] != ':' {
		s.ws()
		if s.pos >= len(s.src) || s.src[s.pos] != ':' {
			s.fail(sidecar.ReasonUpstreamInvalidJSON, "expected ':' after key")
			return false
		}
	}
	s.pos++
	if s.pos < len(s.src) && s.src[s.pos] <= ' ' {
		s.ws()
	}
	return true
}

// duplicate records key for the object whose keys start at base and reports
// whether the object already had it.
func (s *scanner) duplicate(key []byte, base int) bool {
	n := len(s.keys) - base
	if n < bigObject {
		// a key whose filter bit is unset cannot be a repeat
		bit := uint64(1)
		if len(key) > 0 {
			bit <<= (uint(len(key))*7 + uint(key[0]) + uint(key[len(key)-1])*3) & 63
		}
		bloom := &s.blooms[len(s.blooms)-1]
		if *bloom&bit == 0 {
			*bloom |= bit
			s.keys = append(s.keys, key)
			return false
		}
		*bloom |= bit
		for _, k := range s.keys[base:] {
			if len(k) == len(key) && (len(k) == 0 || k[0] == key[0]) && bytes.Equal(k, key) {
				return true
			}
		}
		s.keys = append(s.keys, key)
		return false
	}
	// a large object: its set is the one at index = position of the object
	// in the key stack, found by its base
	set := s.setFor(base, n == bigObject)
	if _, dup := set[string(key)]; dup {
		return true
	}
	set[string(key)] = struct{}{}
	s.keys = append(s.keys, key)
	return false
}

// setFor returns the key set of the large object whose keys start at base,
// creating it (seeded with the keys so far) when fresh is true.
func (s *scanner) setFor(base int, fresh bool) map[string]struct{} {
	// nested large objects use one set per open large object, innermost last
	if fresh {
		var set map[string]struct{}
		if n := len(s.sets); n < cap(s.sets) && s.sets[:n+1][n] != nil {
			set = s.sets[:n+1][n]
			clear(set)
		} else {
			set = make(map[string]struct{}, 64)
		}
		s.sets = append(s.sets, set)
		s.sets[len(s.sets)-1] = set
		for _, k := range s.keys[base:] {
			set[string(k)] = struct{}{}
		}
		s.setBases = append(s.setBases, base)
		return set
	}
	return s.sets[len(s.sets)-1]
}

// endObject pops the keys (and the set) of the object that starts at base.
func (s *scanner) endObject(base int) {
	s.blooms = s.blooms[:len(s.blooms)-1]
	if n := len(s.setBases); n > 0 && s.setBases[n-1] == base {
		s.setBases = s.setBases[:n-1]
		s.sets = s.sets[:len(s.sets)-1]
	}
	s.keys = s.keys[:base]
}
