package scopetrim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// issuePolicy is the policy shape from the issue, verbatim.
const issuePolicy = `{
  "connector": "crm",
  "version": "2026-11-01",
  "roles": { "sales_rep": ["contacts:read"], "privacy_officer": ["contacts:read", "contacts:pii"] },
  "endpoints": [
    {
      "match": { "methods": ["GET"], "path": "/v1/contacts*" },
      "fields": {
        "contacts:read": ["data.#.id", "data.#.name", "data.#.company", "next_cursor"],
        "contacts:pii": ["data.#.email", "data.#.phone", { "path": "data.#.notes", "transform": "redact" }],
        "contacts:analytics": [{ "path": "data.#.email", "transform": "hash" }]
      }
    }
  ]
}`

func mustCompile(t testing.TB, policyJSON string) []*endpoint {
	t.Helper()
	eps, err := compilePolicy("test.json", []byte(policyJSON), DefaultMaxDepth)
	if err != nil {
		t.Fatalf("compiling the policy: %v", err)
	}
	return eps
}

// trimWith trims doc at the endpoint for the given scopes and roles.
func trimWith(t testing.TB, ep *endpoint, doc string, scopes, roles []string) (string, error, []string) {
	t.Helper()
	tr := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}}
	tr.mask = ep.scopeMask(scopes, roles)
	tr.hash = newHasher(tenantKey([]byte("0123456789abcdef0123456789abcdef"), "acme"))
	out, err := tr.trim(nil, []byte(doc), ep.root)
	patterns, _ := tr.withheldPatterns()
	return string(out), err, patterns
}

const contactsDoc = `{"data":[{"id":1,"name":"Ada","company":"ACME","email":"ada@example.com","phone":"+44 20 7946 0958","notes":"likes tea","ssn":"123-45-6789"},` +
	`{"id":2,"name":"Bob","company":"Globex","email":"bob@example.com","phone":"555-0100","notes":null,"ssn":"987-65-4321"}],"next_cursor":"c2","debug":{"sql":"select *"}}`

func TestTrimIssuePolicy(t *testing.T) {
	ep := mustCompile(t, issuePolicy)[0]
	hashOf := func(v string) string {
		h := newHasher(tenantKey([]byte("0123456789abcdef0123456789abcdef"), "acme"))
		return string(h.appendHex(nil, []byte(v)))
	}
	tests := []struct {
		name     string
		scopes   []string
		roles    []string
		want     string
		withheld []string
	}{
		{
			name:     "sales rep role",
			roles:    []string{"sales_rep"},
			want:     `{"data":[{"id":1,"name":"Ada","company":"ACME"},{"id":2,"name":"Bob","company":"Globex"}],"next_cursor":"c2"}`,
			withheld: []string{"data.#.email", "data.#.notes", "data.#.phone", "data.#.ssn", "debug"},
		},
		{
			name:     "privacy officer role",
			roles:    []string{"privacy_officer"},
			want:     `{"data":[{"id":1,"name":"Ada","company":"ACME","email":"ada@example.com","phone":"+44 20 7946 0958","notes":"[redacted]"},{"id":2,"name":"Bob","company":"Globex","email":"bob@example.com","phone":"555-0100","notes":null}],"next_cursor":"c2"}`,
			withheld: []string{"data.#.ssn", "debug"},
		},
		{
			name:     "analytics scope hashes the e-mail only",
			scopes:   []string{"contacts:analytics"},
			want:     `{"data":[{"email":"` + hashOf("ada@example.com") + `"},{"email":"` + hashOf("bob@example.com") + `"}]}`,
			withheld: []string{"data.#.company", "data.#.id", "data.#.name", "data.#.notes", "data.#.phone", "data.#.ssn", "debug", "next_cursor"},
		},
		{
			name:     "raw beats hash when both scopes are held",
			scopes:   []string{"contacts:analytics", "contacts:pii"},
			want:     `{"data":[{"email":"ada@example.com","phone":"+44 20 7946 0958","notes":"[redacted]"},{"email":"bob@example.com","phone":"555-0100","notes":null}]}`,
			withheld: []string{"data.#.company", "data.#.id", "data.#.name", "data.#.ssn", "debug", "next_cursor"},
		},
		{
			name:     "unknown scopes and roles grant nothing",
			scopes:   []string{"admin", "contacts:write"},
			roles:    []string{"root"},
			want:     `null`,
			withheld: []string{"(root)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err, withheld := trimWith(t, ep, contactsDoc, tt.scopes, tt.roles)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			if strings.Join(withheld, " ") != strings.Join(tt.withheld, " ") {
				t.Fatalf("withheld %q, want %q", withheld, tt.withheld)
			}
			if !json.Valid([]byte(got)) {
				t.Fatal("output is not valid JSON")
			}
		})
	}
}

func TestTrimKeepsBytesOrderAndLength(t *testing.T) {
	ep := mustCompile(t, `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},
		"fields":{"s":["b","a","big","arr.#.keep","obj","esc","#"]}}]}`)[0]
	doc := `{ "z":1, "big" : 123456789012345678901234567890.5e-3 , "a":"\u00e9\"x" ,"b":[1, 2 ,3],` +
		`"arr":[{"keep":1,"drop":2},5,"s",{"drop":3}], "obj": { "k" : [ true , null ] }, "esc":"\ud83d\ude00"}`
	got, err, withheld := trimWith(t, ep, doc, []string{"s"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// runs of consecutive kept members are copied with the whitespace
	// between them; everything else is rebuilt compactly
	want := `{"big" : 123456789012345678901234567890.5e-3 , "a":"\u00e9\"x" ,"b":[1, 2 ,3],"arr":[{"keep":1},null,null,{}],"obj": { "k" : [ true , null ] }, "esc":"\ud83d\ude00"}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if strings.Join(withheld, " ") != "arr.# arr.#.drop z" {
		t.Fatalf("withheld %q", withheld)
	}
}

func TestTrimEscapedKeysMatchAfterUnescaping(t *testing.T) {
	ep := mustCompile(t, `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},
		"fields":{"s":["email","a\\.b"]}}]}`)[0]
	got, err, _ := trimWith(t, ep, `{"\u0065mail":"x@y","ssn":"1","a.b":2,"a":{"b":3},"Email":"no"}`, []string{"s"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got != `{"\u0065mail":"x@y","a.b":2}` {
		t.Fatalf("got %s", got)
	}
	// the same key twice, once escaped, is a duplicate
	_, err, _ = trimWith(t, ep, `{"email":"a","\u0065mail":"b"}`, []string{"s"}, nil)
	assertReason(t, err, sidecar.ReasonUpstreamDuplicate)
}

func TestTrimStarAndNestedGrants(t *testing.T) {
	ep := mustCompile(t, `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},
		"fields":{"a":["meta.*.id"],"b":["meta.owner",{"path":"data","transform":"redact"}],"c":[{"path":"meta.*","transform":"mask"}]}}]}`)[0]
	doc := `{"meta":{"owner":{"id":1,"mail":"m@x.org"},"team":{"id":2,"mail":"t@x.org"}},"data":{"n":[1,"two",null,true]}}`
	got, err, _ := trimWith(t, ep, doc, []string{"a"}, nil)
	if err != nil || got != `{"meta":{"owner":{"id":1},"team":{"id":2}}}` {
		t.Fatalf("scope a: %s %v", got, err)
	}
	got, err, _ = trimWith(t, ep, doc, []string{"b"}, nil)
	if err != nil || got != `{"meta":{"owner":{"id":1,"mail":"m@x.org"}},"data":{"n":["[redacted]","[redacted]",null,"[redacted]"]}}` {
		t.Fatalf("scope b: %s %v", got, err)
	}
	got, err, _ = trimWith(t, ep, doc, []string{"a", "c"}, nil)
	if err != nil || got != `{"meta":{"owner":{"id":1,"mail":"****.org"},"team":{"id":2,"mail":"****.org"}}}` {
		t.Fatalf("scopes a+c: %s %v", got, err)
	}
}

func TestTrimRefusals(t *testing.T) {
	ep := mustCompile(t, issuePolicy)[0]
	deep := strings.Repeat("[", 65) + strings.Repeat("]", 65)
	okDeep := strings.Repeat("[", 64) + strings.Repeat("]", 64)
	tests := []struct {
		name, doc, reason string
	}{
		{"duplicate key at top", `{"next_cursor":"a","next_cursor":"b"}`, sidecar.ReasonUpstreamDuplicate},
		{"duplicate key in a withheld value", `{"ssn":{"a":1,"a":2}}`, sidecar.ReasonUpstreamDuplicate},
		{"duplicate key in a copied value", `{"data":[{"id":{"x":1,"x":2}}]}`, sidecar.ReasonUpstreamDuplicate},
		{"duplicate in a large object", `{` + manyKeys(40) + `,"k7":0}`, sidecar.ReasonUpstreamDuplicate},
		{"invalid UTF-8", "{\"data\":[{\"name\":\"\xff\"}]}", sidecar.ReasonUpstreamInvalidUTF8},
		{"invalid UTF-8 in a withheld value", "{\"ssn\":\"\xc3\x28\"}", sidecar.ReasonUpstreamInvalidUTF8},
		{"lone surrogate", `{"ssn":"\ud800"}`, sidecar.ReasonUpstreamInvalidUTF8},
		{"trailing data", `{"next_cursor":"a"} {"ssn":"1"}`, sidecar.ReasonUpstreamInvalidJSON},
		{"trailing comma", `{"next_cursor":"a",}`, sidecar.ReasonUpstreamInvalidJSON},
		{"JSONP", `callback({"next_cursor":"a"})`, sidecar.ReasonUpstreamInvalidJSON},
		{"XSSI", ")]}'\n{\"next_cursor\":\"a\"}", sidecar.ReasonUpstreamInvalidJSON},
		{"BOM", "\xef\xbb\xbf{}", sidecar.ReasonUpstreamInvalidJSON},
		{"too deep", deep, sidecar.ReasonUpstreamTooDeep},
		{"empty", ``, sidecar.ReasonUpstreamInvalidJSON},
		{"truncated", `{"data":[{"id":1`, sidecar.ReasonUpstreamInvalidJSON},
		{"single quotes", `{'a':1}`, sidecar.ReasonUpstreamInvalidJSON},
		{"leading zero", `{"total":01}`, sidecar.ReasonUpstreamInvalidJSON},
		{"control char", "{\"a\":\"x\ty\"}", sidecar.ReasonUpstreamInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err, _ := trimWith(t, ep, tt.doc, []string{"contacts:read"}, nil)
			assertReason(t, err, tt.reason)
		})
	}
	if _, err, _ := trimWith(t, ep, okDeep, []string{"contacts:read"}, nil); err != nil {
		t.Fatalf("64 levels must be accepted: %v", err)
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strconv.Itoa(i) + `":1`)
	}
	return b.String()
}

func assertReason(t *testing.T, err error, reason string) {
	t.Helper()
	var se *scanError
	if !errors.As(err, &se) {
		t.Fatalf("got error %v, want reason %s", err, reason)
	}
	if se.Reason != reason {
		t.Fatalf("got reason %s (%v), want %s", se.Reason, se, reason)
	}
}

func TestMaskAndHash(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "****",
		"abcd":             "****",
		"abcde":            "****bcde",
		"+44 20 7946 0958": "****0958",
		"日本語テキスト":          "****テキスト",
		"****0958":         "****0958",
	} {
		if got := string(mask([]byte(in))); got != want {
			t.Errorf("mask(%q) = %q, want %q", in, got, want)
		}
	}
	k1 := tenantKey([]byte("0123456789abcdef0123456789abcdef"), "acme")
	k2 := tenantKey([]byte("0123456789abcdef0123456789abcdef"), "globex")
	h1 := string(newHasher(k1).appendHex(nil, []byte("ada@example.com")))
	h2 := string(newHasher(k2).appendHex(nil, []byte("ada@example.com")))
	if h1 == h2 || len(h1) != 64 {
		t.Fatalf("hashes must differ per tenant and be 64 hex digits: %s %s", h1, h2)
	}
}

func TestCRMPolicyFileCompiles(t *testing.T) {
	eps, files, err := loadPolicies(filepath.Join("..", "..", "policies"), DefaultMaxDepth)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if strings.Join(names, " ") != "crm-export.json crm.json" {
		t.Fatalf("loaded %v; the policies directory must yield the policy files only (the tenant registry and schemas are skipped)", names)
	}
	if len(eps) != 6 {
		t.Fatalf("crm-export.json and crm.json have %d endpoints, want 1+5", len(eps))
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "policies", "crm.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(data) {
		t.Fatal("crm.json is not valid JSON")
	}
}

// sameJSON compares two documents as encoding/json values, with numbers kept
// as written.
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	va, ea := decodeNumbers(a)
	vb, eb := decodeNumbers(b)
	if ea != nil || eb != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func decodeNumbers(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// TestStringScanAtEveryOffset checks the eight-bytes-at-a-time string scan
// against encoding/json and utf8.Valid with the interesting byte at every
// position around the word boundaries.
func TestStringScanAtEveryOffset(t *testing.T) {
	specials := []string{"\x00", "\x1f", "\x7f", `\"`, `\\`, `\u00e9`, `\ud83d\ude00`, `\ud800`, "\"", "\\", "\x80", "\xff", "é", "😀", "\xc3", "\xed\xa0\x80"}
	for _, sp := range specials {
		for p := 0; p < 20; p++ {
			doc := `"` + strings.Repeat("a", p) + sp + strings.Repeat("b", 11) + `"`
			var sc scanner
			sc.reset([]byte(doc))
			_, _, ok := sc.str()
			ok = ok && sc.pos == len(doc)
			want := json.Valid([]byte(doc)) && utf8.ValidString(doc) && !strings.Contains(doc, `\ud800`)
			if ok != want {
				t.Errorf("%q: scanner %v, want %v (%v)", doc, ok, want, sc.err)
			}
		}
	}
}

// TestForgetKeepsNothingOfTheDocument: a trimmer goes back to the pool after
// each response, so forget must leave none of the document in it: not the
// output, not transformed values, not keys copied out of the body (escaped
// keys, remembered record shapes, the key sets of large objects).
func TestForgetKeepsNothingOfTheDocument(t *testing.T) {
	ep := mustCompile(t, issuePolicy)[0]
	var big strings.Builder
	for i := range 2 * bigObject {
		fmt.Fprintf(&big, `,"bigkey-secret-%d":%d`, i, i)
	}
	doc := `{"data":[{"id":1,"name":"Ada Secret","email":"ada-secret@example.com","notes":"secret notes"},` +
		`{"id":2,"name":"Bob Secret","email":"bob-secret@example.com","\u0078-escaped-secret":1,"custom":{"a":1` + big.String() + `}}],` +
		`"next_cursor":"cursor-secret"}`
	for _, scopes := range [][]string{{"contacts:analytics"}, {"contacts:pii"}, nil} {
		tr := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}}
		tr.mask = ep.scopeMask(scopes, []string{"privacy_officer"})
		tr.hash = newHasher(tenantKey([]byte("0123456789abcdef0123456789abcdef"), "acme"))
		out, err := tr.trim(nil, []byte(doc), ep.root)
		if err != nil {
			t.Fatal(err)
		}
		tr.out = out
		if !strings.Contains(string(out), "secret") {
			t.Fatalf("the test document kept no secret, so the test proves nothing: %s", out)
		}
		tr.forget()
		held := map[string][]byte{
			"out":        tr.out[:cap(tr.out)],
			"scratch":    tr.scratch[:cap(tr.scratch)],
			"arena":      tr.arena[:cap(tr.arena)],
			"shapeArena": tr.shapeArena[:cap(tr.shapeArena)],
		}
		for name, b := range held {
			if bytes.Contains(b, []byte("secret")) {
				t.Errorf("scopes %v: after forget, %s still holds part of the document", scopes, name)
			}
		}
		for _, k := range tr.keys[:cap(tr.keys)] {
			if k != nil {
				t.Fatalf("scopes %v: after forget, the key stack still points into the document", scopes)
			}
		}
		for _, set := range tr.sets[:cap(tr.sets)] {
			if len(set) != 0 {
				t.Fatalf("scopes %v: after forget, a key set still holds %d keys", scopes, len(set))
			}
		}
		if tr.src != nil {
			t.Fatalf("scopes %v: after forget, the trimmer still points at the body", scopes)
		}
	}
}
