package scopetrim

import (
	"bytes"
	"encoding/binary"
)

// shape is what the trimmer remembers of the last object it descended into
// at one node (and inherited transform): its keys in order, as written, and
// what the policy does with each. The objects of an array usually repeat
// their keys in one order, so a key that matches the shape's next one byte
// for byte is neither scanned, nor looked up in the policy, nor checked for
// duplicates: bytes equal to a key that was validated, unescaped and found
// distinct from the keys before it are that same key, and the keys before
// it are (byte for byte) the keys it was found distinct from. The first key
// that does not match puts the object's earlier keys on the scanner's key
// stack and everything from there on is handled in full.
type shape struct {
	n         *node
	inherited transform
	// busy is set while an object uses the shape: an object nested in it
	// at the same node (only possible below a nil node) must not change
	// the keys under it.
	busy bool
	keys []shapeKey
}

// shapeKey is one key of a shape.
type shapeKey struct {
	// written is the key as written (with its quotes, without escapes)
	// and the colon when that came right after it; a copy in shapeArena
	written []byte
	keyLen  int // the quoted key's length
	// the first 16 bytes of written as little-endian words, and masks of
	// the bytes they hold
	w0, w1, m0, m1 uint64
	child          *node
	// the decision for a scalar value and for an object or array
	dScalar, dNested   decision
	tfScalar, tfNested transform
	// withheld is the entry withheldAt counts this key under, or -1
	withheld int
}

// maxShapes bounds the nodes a trim remembers shapes for: a policy's
// records rarely descend more than a few levels.
const maxShapes = 8

// maxShapeArena bounds the key copies that shapes kept across the
// documents of a stream hold (see trimNext).
const maxShapeArena = 16 << 10

// shapeContext is what the decisions shapes hold depend on besides the
// node: the policy (through its root), the caller's scopes and whether
// records are judged (decide).
type shapeContext struct {
	root *node
	mask uint64
	rec  bool
}

// forgetShapes drops every shape. Busy flags need no reset: every shape in
// use is released by the object that took it, even when trimming fails.
func (t *trimmer) forgetShapes() {
	t.nShapes, t.shapeArena, t.shapesFor = 0, t.shapeArena[:0], shapeContext{}
}

// shapeFor returns the free shape for objects at n, or nil.
func (t *trimmer) shapeFor(n *node, inherited transform) *shape {
	for i := range t.shapes[:t.nShapes] {
		if sh := &t.shapes[i]; sh.n == n && sh.inherited == inherited {
			if sh.busy {
				return nil
			}
			sh.busy = true
			return sh
		}
	}
	if t.nShapes == maxShapes {
		return nil
	}
	sh := &t.shapes[t.nShapes]
	t.nShapes++
	sh.n, sh.inherited, sh.busy, sh.keys = n, inherited, true, sh.keys[:0]
	return sh
}

// learn appends the key of keyLen bytes written at start (validated,
// without escapes) with its child to sh, and returns it.
func (t *trimmer) learn(sh *shape, start, keyLen int, child *node, inherited transform) *shapeKey {
	end := start + keyLen
	if t.src[end] == ':' { // key() consumed it, so it is there
		end++
	}
	from := len(t.shapeArena)
	t.shapeArena = append(t.shapeArena, t.src[start:end]...)
	w := t.shapeArena[from:len(t.shapeArena):len(t.shapeArena)]
	sk := shapeKey{written: w, keyLen: keyLen, child: child, withheld: -1}
	for i := 0; i < len(w) && i < 16; i++ {
		if i < 8 {
			sk.w0 |= uint64(w[i]) << (8 * i)
			sk.m0 |= 0xff << (8 * i)
		} else {
			sk.w1 |= uint64(w[i]) << (8 * (i - 8))
			sk.m1 |= 0xff << (8 * (i - 8))
		}
	}
	sk.dScalar, sk.tfScalar = dWithhold, tfNone
	sk.dNested, sk.tfNested = dWithhold, tfNone
	if child != nil || inherited != tfNone {
		sk.dScalar, sk.tfScalar = t.decide(child, inherited, '"')
		sk.dNested, sk.tfNested = t.decide(child, inherited, '{')
	}
	sh.keys = append(sh.keys, sk)
	return &sh.keys[len(sh.keys)-1]
}

// key returns the key unescaped (it has no escapes).
func (sk *shapeKey) key() []byte { return sk.written[1 : sk.keyLen-1] }

// matches reports whether src[pos:] starts with sk.written.
func (sk *shapeKey) matches(src []byte, pos int) bool {
	end := pos + len(sk.written)
	if pos+16 <= len(src) {
		a := binary.LittleEndian.Uint64(src[pos:])
		b := binary.LittleEndian.Uint64(src[pos+8:])
		if (a^sk.w0)&sk.m0|(b^sk.w1)&sk.m1 != 0 {
			return false
		}
		return end <= pos+16 || end <= len(src) && bytes.Equal(src[pos+16:end], sk.written[16:])
	}
	return end <= len(src) && bytes.Equal(src[pos:end], sk.written)
}
