package scopetrim

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// TestFactsGjson keeps the gjson v1.20.2 behaviour that this module's design
// rests on (github.com/tidwall/gjson gjson.go: Get reads the first matching
// key, Valid checks syntax only, with no UTF-8 or depth check): gjson cannot
// be the validator or the remover here.
func TestFactsGjson(t *testing.T) {
	ep := mustCompile(t, issuePolicy)[0]

	// Duplicate keys: gjson reads the first value, encoding/json the last,
	// so a document with both is two different documents. We refuse it.
	dup := `{"next_cursor":"public","next_cursor":"123-45-6789"}`
	var last map[string]string
	if err := json.Unmarshal([]byte(dup), &last); err != nil {
		t.Fatal(err)
	}
	if gjson.Get(dup, "next_cursor").String() != "public" || last["next_cursor"] != "123-45-6789" {
		t.Fatal("gjson changed: it and encoding/json no longer disagree on duplicate keys")
	}
	_, err, _ := trimWith(t, ep, dup, []string{"contacts:read"}, nil)
	assertReason(t, err, "upstream_duplicate_key")

	// gjson.Valid accepts invalid UTF-8 in strings; we refuse it.
	bad := "{\"next_cursor\":\"\xff\"}"
	if !gjson.Valid(bad) {
		t.Fatal("gjson changed: gjson.Valid now refuses invalid UTF-8")
	}
	_, err, _ = trimWith(t, ep, bad, []string{"contacts:read"}, nil)
	assertReason(t, err, "upstream_invalid_utf8")

	// gjson.Valid has no depth limit; we have one.
	deep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	if !gjson.Valid(deep) {
		t.Fatal("gjson changed: gjson.Valid now limits depth")
	}
	_, err, _ = trimWith(t, ep, deep, []string{"contacts:read"}, nil)
	assertReason(t, err, "upstream_too_deep")

	// gjson.Get reads values out of a JSONP wrapper; we refuse the wrapper.
	jsonp := `cb({"next_cursor":"c"})`
	if gjson.Get(jsonp, "next_cursor").String() == "c" {
		t.Log("gjson.Get reads through the JSONP wrapper (it does not validate)")
	}
	_, err, _ = trimWith(t, ep, jsonp, []string{"contacts:read"}, nil)
	assertReason(t, err, "upstream_invalid_json")
}
