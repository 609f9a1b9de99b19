package scopetrim

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

const splitterPolicy = `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},
	"fields":{"s":["data.#.id","data.#.owner","n"]},
	"records":{"at":"data","id":"id","rules":{"s":"record.owner == \"u1\""}}}]}`

// FuzzRecordSplitter feeds documents to the record path: whatever the
// input, an accepted document is valid JSON that encoding/json reads the
// same way, and the output's records are exactly the input's records whose
// owner is "u1" (as encoding/json reads them), trimmed to id and owner,
// with the counts to match.
func FuzzRecordSplitter(f *testing.F) {
	for _, s := range []string{
		`{"data":[{"id":1,"owner":"u1"},{"id":2,"owner":"u2"}],"n":2}`,
		`{"data":[{"owner":"u1","x":{"owner":"u2"}},"u1",null,[{"owner":"u1"}],{"owner":"u\u0031"}]}`,
		`{"data":[],"n":0}`, `{"data":null}`, `{"data":{"owner":"u1"}}`, `{"data":"u1"}`,
		`{"data":[{"owner":"u1","owner":"u2"}]}`, `{"data":[{"own\u0065r":"u1","id":"a\"b"}]}`,
		`{"data":[{"id":1e400,"owner":"u1"}]} `, `[{"owner":"u1"}]`, `{"data":[{"owner":"u1"}`,
		"{\"data\":[{\"owner\":\"u1\",\"bad\":\"\xff\"}]}",
	} {
		f.Add([]byte(s))
	}
	ep := mustCompile(f, splitterPolicy)[0]
	id := &sidecar.Identity{Scopes: []string{"s"}}
	f.Fuzz(func(t *testing.T, doc []byte) {
		tr := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}}
		tr.mask = ep.scopeMask(id.Scopes, nil)
		tr.recState.reset(ep.records, tr.mask, id, "acme")
		tr.rec = &tr.recState
		out, err := tr.trim(nil, doc, ep.root)
		if err != nil {
			return
		}
		if !json.Valid(doc) || !json.Valid(out) {
			t.Fatalf("accepted %q, output %q", doc, out)
		}
		// maps, not structs: encoding/json matches struct fields without
		// regard to case ("dAtA" would fill Data)
		var in map[string]json.RawMessage
		if json.Unmarshal(doc, &in) != nil { // a top-level non-object
			if tr.rec.released+tr.rec.withheld != 0 {
				t.Fatalf("records judged outside an object: %q", doc)
			}
			return
		}
		var elems []json.RawMessage
		if json.Unmarshal(in["data"], &elems) != nil {
			return // null, absent or not an array: no records
		}
		var want []map[string]any
		for _, e := range elems {
			var rec map[string]any
			dec := json.NewDecoder(bytes.NewReader(e))
			dec.UseNumber()
			if dec.Decode(&rec) != nil || rec["owner"] != "u1" {
				continue
			}
			kept := map[string]any{}
			for _, k := range []string{"id", "owner"} {
				if v, ok := rec[k]; ok {
					kept[k] = v
				}
			}
			want = append(want, kept)
		}
		var got map[string]json.RawMessage
		var gotData []map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		if got["data"] != nil {
			dec := json.NewDecoder(bytes.NewReader(got["data"]))
			dec.UseNumber()
			if err := dec.Decode(&gotData); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
		}
		if len(want) == 0 && len(gotData) == 0 {
			want, gotData = nil, nil
		}
		if !reflect.DeepEqual(want, gotData) || tr.rec.released != len(want) || tr.rec.released+tr.rec.withheld != len(elems) {
			t.Fatalf("input %q\noutput %q\nwant records %v, released %d withheld %d", doc, out, want, tr.rec.released, tr.rec.withheld)
		}
	})
}

// TestJSONTestSuiteThroughRecords runs every JSONTestSuite file through the
// record path twice: as one record (records.at "") and as the only element
// of a records array. y_ files must be accepted, n_ files refused, as by
// the trimmer alone; an accepted object record is released whole and any
// other value withheld.
func TestJSONTestSuiteThroughRecords(t *testing.T) {
	dir := suiteDir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	single := mustCompile(t, `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},
		"fields":{"s":["*","#"]},"records":{"at":"","rules":{"s":"type(record) == map"}}}]}`)[0]
	list := mustCompile(t, `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},
		"fields":{"s":["data"]},"records":{"at":"data","rules":{"s":"type(record) == map"}}}]}`)[0]
	id := &sidecar.Identity{Scopes: []string{"s"}}
	run := func(ep *endpoint, doc []byte) (string, *recordFilter, error) {
		tr := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}}
		tr.mask = ep.scopeMask(id.Scopes, nil)
		tr.recState.reset(ep.records, tr.mask, id, "acme")
		tr.rec = &tr.recState
		out, err := tr.trim(nil, doc, ep.root)
		return string(out), tr.rec, err
	}
	for _, f := range files {
		name := filepath.Base(f)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if name[0] == 'i' || duplicateKeys[name] {
			continue
		}
		isObject := len(bytes.TrimSpace(data)) > 0 && bytes.TrimSpace(data)[0] == '{'
		_, rec, err := run(single, data)
		switch {
		case name[0] == 'n' && err == nil:
			t.Errorf("%s: invalid JSON accepted as a record", name)
		case name[0] == 'y' && err != nil:
			t.Errorf("%s: valid JSON refused as a record: %v", name, err)
		case name[0] == 'y' && rec.rootReleased != isObject:
			t.Errorf("%s: released %v, but only an object is a record", name, rec.rootReleased)
		}
		if len(bytes.TrimSpace(data)) == 0 {
			continue // an empty file inside an array is an empty array
		}
		wrapped := append(append([]byte(`{"data":[`), data...), "]}"...)
		out, rec, err := run(list, wrapped)
		switch {
		case name[0] == 'n' && err == nil:
			t.Errorf("%s: invalid JSON accepted as an element, output %q", name, out)
		case name[0] == 'y' && err != nil:
			t.Errorf("%s: valid JSON refused as an element: %v", name, err)
		case name[0] == 'y' && isObject && (rec.released != 1 || !sameJSON(t, wrapped, []byte(out))):
			t.Errorf("%s: an object record was not released whole: %q", name, out)
		case name[0] == 'y' && !isObject && (rec.withheld != 1 || out != `{"data":[]}`):
			t.Errorf("%s: a non-object element was not withheld: %q", name, out)
		}
	}
}
