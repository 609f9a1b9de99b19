package scopetrim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// streamPolicy grants fields at the top level and in nested objects, with
// a transform, so that shapes are learned at several nodes.
const streamPolicy = `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},"fields":{
  "read": ["id", "name", "address.city", "items.#.sku"],
  "pii": ["email", { "path": "notes", "transform": "redact" }, "address.street"]
}}]}`

// streamRecord is a record whose keys come in one of a few orders, now and
// then with a key repeated, escaped, missing or unknown, and values of
// every kind: what a stream of records may hold.
func streamRecord(r *rand.Rand) string {
	keys := []string{`"id"`, `"name"`, `"email"`, `"notes"`, `"ssn"`, `"address"`, `"items"`}
	if r.IntN(4) == 0 {
		r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	}
	switch r.IntN(12) {
	case 0:
		keys = append(keys, keys[r.IntN(len(keys))]) // a duplicate
	case 1:
		keys[r.IntN(len(keys))] = `"\u0069d"` // "id" escaped
	case 2:
		keys = slices.Delete(keys, 2, 3)
	case 3:
		keys = slices.Insert(keys, r.IntN(len(keys)), `"extra"`)
	}
	value := func(key string) string {
		switch key {
		case `"address"`:
			if r.IntN(6) == 0 {
				return `{"city":"Berlin","city":"x"}`
			}
			return `{"street":"Main St ` + fmt.Sprint(r.IntN(100)) + `","city":"Berlin","zip":"10115"}`
		case `"items"`:
			return `[{"sku":"a","qty":1},{"qty":2,"sku":"b"},{"sku":"c","qty":3,"price":{"eur":4}}]`
		}
		return []string{`"v"`, `12`, `null`, `true`, `{"deep":["x"]}`, `"\ud83d\ude00"`}[r.IntN(6)]
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + ":" + value(strings.ReplaceAll(k, `\u0069`, "i")))
	}
	b.WriteByte('}')
	return b.String()
}

// trimNext keeps shapes across documents: every document of a stream must
// come out exactly as trim, which starts from no shapes, gives it (output,
// error and what was withheld).
func TestTrimNextMatchesTrim(t *testing.T) {
	ep := mustCompile(t, streamPolicy)[0]
	r := rand.New(rand.NewPCG(1, 2))
	for _, scopes := range [][]string{{"read"}, {"pii"}, {"read", "pii"}} {
		mask := ep.scopeMask(scopes, nil)
		stream := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}, mask: mask}
		fresh := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}, mask: mask}
		refused := 0
		for i := range 2000 {
			doc := streamRecord(r)
			got, gotErr := stream.trimNext(nil, []byte(doc), ep.root)
			want, wantErr := fresh.trim(nil, []byte(doc), ep.root)
			if (gotErr == nil) != (wantErr == nil) || (wantErr == nil && string(got) != string(want)) {
				t.Fatalf("%v record %d %s:\n trimNext %q %v\n trim     %q %v", scopes, i, doc, got, gotErr, want, wantErr)
			}
			if wantErr != nil {
				refused++
			}
			gp, gc := stream.withheldPatterns()
			wp, wc := fresh.withheldPatterns()
			if !slices.Equal(gp, wp) || !slices.Equal(gc, wc) {
				t.Fatalf("%v record %d %s: withheld %v %v, want %v %v", scopes, i, doc, gp, gc, wp, wc)
			}
		}
		if refused < 50 || refused > 1000 {
			t.Fatalf("%d of 2000 records refused: the test does not mix good and bad records", refused)
		}
	}
}

// Shapes learned for one caller are not used for another: the decisions
// they hold depend on the caller's scopes.
func TestTrimNextDropsShapesOfAnotherMask(t *testing.T) {
	ep := mustCompile(t, streamPolicy)[0]
	doc := []byte(`{"id":1,"name":"Ada","email":"ada@example.com","ssn":"123-45-6789"}`)
	tr := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}, mask: ep.scopeMask([]string{"read", "pii"}, nil)}
	if out, err := tr.trimNext(nil, doc, ep.root); err != nil || string(out) != `{"id":1,"name":"Ada","email":"ada@example.com"}` {
		t.Fatalf("%q %v", out, err)
	}
	tr.mask = ep.scopeMask([]string{"read"}, nil)
	if out, err := tr.trimNext(nil, doc, ep.root); err != nil || string(out) != `{"id":1,"name":"Ada"}` {
		t.Fatalf("with the other mask: %q %v", out, err)
	}
}

// A stream whose records never repeat their keys does not grow the
// shapes' copies of keys without bound.
func TestTrimNextBoundsShapeArena(t *testing.T) {
	ep := mustCompile(t, streamPolicy)[0]
	tr := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}, mask: ep.scopeMask([]string{"read"}, nil)}
	for i := range 5000 {
		doc := fmt.Sprintf(`{"id":%d,"key_%d":"x","other_%d":"y"}`, i, i, i)
		if _, err := tr.trimNext(nil, []byte(doc), ep.root); err != nil {
			t.Fatal(err)
		}
		if len(tr.shapeArena) > maxShapeArena+len(doc) {
			t.Fatalf("record %d: %d bytes of key copies", i, len(tr.shapeArena))
		}
	}
}
