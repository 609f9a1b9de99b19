package scopetrim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// membersPolicy walks every record member by member: a and b are granted,
// everything else is withheld but still read.
const membersPolicy = `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},
	"fields":{"s":["data.#.a","data.#.b"]},
	"records":{"at":"data","id":"id","rules":{"s":"record.a == \"x\""}}}]}`

// trimOneRecord trims {"data":[doc]} and returns the trimmer, whose member
// table is the one noted for doc, and doc's value without whitespace.
func trimOneRecord(t testing.TB, ep *endpoint, doc []byte) (*trimmer, []byte, error) {
	tr := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}}
	tr.mask = ep.scopeMask([]string{"s"}, nil)
	tr.recState.reset(ep.records, tr.mask, &sidecar.Identity{Scopes: []string{"s"}}, "acme")
	tr.rec = &tr.recState
	wrapped := append(append([]byte(`{"data":[`), doc...), "]}"...)
	_, err := tr.trim(nil, wrapped, ep.root)
	return tr, bytes.TrimSpace(doc), err
}

// sameValue reports whether two CEL values are the same value of the same
// type (two errors count as the same: a rule reading either fails).
func sameValue(a, b ref.Val) bool {
	if types.IsError(a) || types.IsError(b) {
		return types.IsError(a) && types.IsError(b)
	}
	return a.Type() == b.Type() && a.Equal(b) == types.True
}

// checkMembers compares the member table noted for record with the
// record's bytes: the table holds exactly the keys encoding/json reads,
// and each lookup, through the table or through gjson, finds the same
// value; so does the id.
func checkMembers(t *testing.T, tr *trimmer, record []byte) {
	t.Helper()
	m := &tr.rec.members
	if !m.indexed {
		return
	}
	var decoded map[string]json.RawMessage
	if err := json.Unmarshal(record, &decoded); err != nil {
		t.Fatalf("%q: the trimmer accepted a record encoding/json refuses: %v", record, err)
	}
	var noted, want []string
	for i := range m.list {
		e := &m.list[i]
		k := record
		if e.escaped {
			k = m.keys
		}
		noted = append(noted, string(k[e.keyStart:e.keyEnd]))
	}
	for k := range decoded {
		want = append(want, k)
	}
	sort.Strings(noted)
	sort.Strings(want)
	if len(noted) != len(want) {
		t.Fatalf("%q: noted keys %q, encoding/json reads %q", record, noted, want)
	}
	for i := range noted {
		if noted[i] != want[i] {
			t.Fatalf("%q: noted keys %q, encoding/json reads %q", record, noted, want)
		}
	}
	indexed := &jsonObject{raw: record, members: m}
	parsed := &jsonObject{raw: record}
	for _, k := range append(noted, "", "a", "id", "missing", "ü") {
		got, gotFound := indexed.Find(types.String(k))
		exp, expFound := parsed.Find(types.String(k))
		if gotFound != expFound || gotFound && !sameValue(got, exp) {
			t.Fatalf("%q: key %q: table gives %v (%v), gjson %v (%v)", record, k, got, gotFound, exp, expFound)
		}
	}
	raw, found := m.find(record, "id")
	res := indexed.lookup("id") // gjson, as judge reads an id without a table
	if found != res.Exists() || found && (parseValue(raw).Str != res.Str || parseValue(raw).Type != res.Type || string(raw) != res.Raw) {
		t.Fatalf("%q: id from the table %q, from gjson %q", record, raw, res.Raw)
	}
}

// TestRecordMembersMatchTheRecord checks the member table on records with
// what makes reading them hard: escaped keys and values, the empty key,
// whitespace, nested values, numbers gjson and CEL read differently.
func TestRecordMembersMatchTheRecord(t *testing.T) {
	ep := mustCompile(t, membersPolicy)[0]
	for _, doc := range []string{
		`{"a":"x","b":2}`,
		` { "a" : "x" , "b" : [1, {"a":"y"}] , "c" : null } `,
		`{"\u0061":"x","b\"c":"\u0078","":"empty","id":"r\u00e9f"}`,
		`{"id":12345678901234567890,"a":1e400,"b":-0.0,"c":true,"d":false}`,
		`{"a":{"a":"x","id":1},"id":{"n":1}}`,
		`{"ü":"\ud83d\ude00","a\\":"x","id":""}`,
		`{}`,
	} {
		tr, record, err := trimOneRecord(t, ep, []byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if !tr.rec.members.indexed {
			t.Fatalf("%q: the record was walked, but its members were not noted", doc)
		}
		checkMembers(t, tr, record)
	}
}

// TestRecordMembersAreBounded checks that a record with more members, or
// longer escaped keys, than a table holds is read with gjson: the table,
// kept by a pooled trimmer, stays small whatever the record.
func TestRecordMembersAreBounded(t *testing.T) {
	ep := mustCompile(t, membersPolicy)[0]
	var many bytes.Buffer
	many.WriteString(`{"id":"r1"`)
	for i := range maxNotedMembers + 1 {
		fmt.Fprintf(&many, `,"k%d":%d`, i, i)
	}
	many.WriteString(`,"a":"x"}`)
	long := `{"\u0061` + strings.Repeat("b", maxNotedKeyBytes) + `":1,"a":"x","id":"r1"}`
	for _, doc := range []string{many.String(), long} {
		tr, _, err := trimOneRecord(t, ep, []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		m := &tr.rec.members
		if m.indexed || len(m.list) > maxNotedMembers || cap(m.keys) > 2*maxNotedKeyBytes {
			t.Fatalf("a table of %d members, %d key bytes, indexed %v", len(m.list), cap(m.keys), m.indexed)
		}
		if tr.rec.released != 1 || len(tr.rec.ids) != 1 || tr.rec.ids[0] != "r1" {
			t.Fatalf("the record read with gjson: released %d, ids %q", tr.rec.released, tr.rec.ids)
		}
	}
}

// TestRecordMembersOnlyForTheRecord checks that only a record the trimmer
// walked has a table: not a non-object element, nor the objects inside one
// (an array of objects is not a record), nor a record copied whole.
func TestRecordMembersOnlyForTheRecord(t *testing.T) {
	ep := mustCompile(t, membersPolicy)[0]
	for _, doc := range []string{`[{"a":"x","id":"1"}]`, `"x"`, `null`, `[[{"a":"x"}]]`} {
		tr, _, err := trimOneRecord(t, ep, []byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if tr.rec.members.indexed || tr.noteRecord {
			t.Fatalf("%q: a member table for an element that is not an object", doc)
		}
	}
	whole := mustCompile(t, `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},
		"fields":{"s":["data.#"]},"records":{"at":"data","id":"id","rules":{"s":"record.a == \"x\""}}}]}`)[0]
	tr, _, err := trimOneRecord(t, whole, []byte(`{"a":"x","id":"1"}`))
	if err != nil || tr.rec.members.indexed || tr.rec.released != 1 || len(tr.rec.ids) != 1 || tr.rec.ids[0] != "1" {
		t.Fatalf("a record copied whole: err %v, indexed %v, released %d, ids %q", err, tr.rec.members.indexed, tr.rec.released, tr.rec.ids)
	}
}

// FuzzRecordMembers checks the member table against encoding/json and
// gjson on any record the trimmer accepts.
func FuzzRecordMembers(f *testing.F) {
	for _, s := range []string{
		`{"a":"x","b":2}`, `{"\u0061":"x","a":"y"}`, `{"":1,"id":"\u0031"}`, ` {"a" :[{"a":1}], "id": 7 } `,
		`{"a":"x","a":"y"}`, `{"id":1e400}`, `[{"a":"x"}]`, "{\"a\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	ep := mustCompile(f, membersPolicy)[0]
	f.Fuzz(func(t *testing.T, doc []byte) {
		tr, record, err := trimOneRecord(t, ep, doc)
		if err != nil {
			return
		}
		checkMembers(t, tr, record)
	})
}

// TestClaimListContainsLikeCEL compares `in` on a list claim, whose
// elements are converted once, with CEL's own list over the same []any.
func TestClaimListContainsLikeCEL(t *testing.T) {
	raw := []any{"u1", float64(3), true, nil, []any{"a"}, map[string]any{"k": "v"}, "3"}
	cel := types.DefaultTypeAdapter.NativeToValue(raw).(traits.Lister)
	ours := newClaimList(cel, raw)
	for _, v := range []ref.Val{
		types.String("u1"), types.String("u2"), types.Int(3), types.Double(3), types.Uint(3), types.True, types.False,
		types.NullValue, types.NewStringList(types.DefaultTypeAdapter, []string{"a"}), types.String("3"),
		types.DefaultTypeAdapter.NativeToValue(map[string]any{"k": "v"}), types.NewErr("boom"),
	} {
		if got, want := ours.Contains(v), cel.Contains(v); got != want {
			t.Errorf("%v in list: %v, CEL's list says %v", v, got, want)
		}
	}
	if !sameValue(ours.Size(), cel.Size()) || ours.Equal(cel) != types.True || cel.Equal(ours) != types.True {
		t.Fatal("the claim list is not the list CEL made")
	}
}

// TestRecordIDsOutliveTheResponse serves two pages with the same handler
// (its pooled trimmer, its zeroed body buffers): the first decision's ids,
// kept in the filter's id buffer, are unchanged by the second page, and
// ids written with escapes or in a record copied whole are read too.
func TestRecordIDsOutliveTheResponse(t *testing.T) {
	m := newHandler(t, recordsPolicy, nil)
	first := serve(t, m, get("/v1/contacts"), rep("contacts:read"), jsonUpstream(200, contactList))
	ids := slices.Clone(first.decision.RecordIDs)
	second := serve(t, m, get("/v1/contacts"), rep("contacts:raw"),
		jsonUpstream(200, `{"data":[{"id":"x\u00e9","owner_id":"u1"},{"id":"zz","owner_id":"u9"},{"id":7,"owner_id":"u1"}]}`))
	if !slices.Equal(ids, []string{"c1", "c3"}) || !slices.Equal(first.decision.RecordIDs, ids) {
		t.Fatalf("first page's ids %q, after the second page %q", ids, first.decision.RecordIDs)
	}
	if !slices.Equal(second.decision.RecordIDs, []string{"xé", "7"}) {
		t.Fatalf("ids of records copied whole: %q", second.decision.RecordIDs)
	}
}
