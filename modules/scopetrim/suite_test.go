package scopetrim

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// suiteDir is the JSONTestSuite corpus kept in testdata (see its
// SOURCE.md), or $JSON_TEST_SUITE to run another copy of the suite.
func suiteDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("JSON_TEST_SUITE")
	if base == "" {
		base = filepath.Join("testdata", "JSONTestSuite")
	}
	for _, dir := range []string{filepath.Join(base, "test_parsing"), base} {
		if files, _ := filepath.Glob(filepath.Join(dir, "y_*.json")); len(files) > 0 {
			return dir
		}
	}
	t.Fatalf("JSONTestSuite not found at %s: the repository keeps a copy in testdata/JSONTestSuite; JSON_TEST_SUITE, when set, must name the suite's directory", base)
	return ""
}

// implementationDefined records what the scanner does with each i_ case of
// the suite, where RFC 8259 lets parsers choose. The choice is always the
// one that cannot change what a client sees: refuse what another parser
// could read differently.
var implementationDefined = map[string]bool{
	// numbers: accepted and copied byte for byte; no conversion happens, so
	// nothing overflows or rounds
	"i_number_double_huge_neg_exp.json":            true,
	"i_number_huge_exp.json":                       true,
	"i_number_neg_int_huge_exp.json":               true,
	"i_number_pos_double_huge_exp.json":            true,
	"i_number_real_neg_overflow.json":              true,
	"i_number_real_pos_overflow.json":              true,
	"i_number_real_underflow.json":                 true,
	"i_number_too_big_neg_int.json":                true,
	"i_number_too_big_pos_int.json":                true,
	"i_number_very_big_negative_int.json":          true,
	"i_structure_500_nested_arrays.json":           false, // deeper than max_depth (64)
	"i_structure_UTF-8_BOM_empty_object.json":      false, // a BOM is not JSON text
	"i_string_UTF-16LE_with_BOM.json":              false, // not UTF-8
	"i_string_utf16BE_no_BOM.json":                 false,
	"i_string_utf16LE_no_BOM.json":                 false,
	"i_string_UTF-8_invalid_sequence.json":         false, // invalid UTF-8
	"i_string_UTF8_surrogate_U+D800.json":          false,
	"i_string_invalid_utf-8.json":                  false,
	"i_string_iso_latin_1.json":                    false,
	"i_string_lone_utf8_continuation_byte.json":    false,
	"i_string_not_in_unicode_range.json":           false,
	"i_string_overlong_sequence_2_bytes.json":      false,
	"i_string_overlong_sequence_6_bytes.json":      false,
	"i_string_overlong_sequence_6_bytes_null.json": false,
	"i_string_truncated-utf-8.json":                false,
	// unpaired surrogate escapes decode to no Unicode character: parsers
	// disagree on them (U+FFFD, an error, raw bytes), so they are refused
	"i_object_key_lone_2nd_surrogate.json":                false,
	"i_string_1st_surrogate_but_2nd_missing.json":         false,
	"i_string_1st_valid_surrogate_2nd_invalid.json":       false,
	"i_string_incomplete_surrogate_and_escape_valid.json": false,
	"i_string_incomplete_surrogate_pair.json":             false,
	"i_string_incomplete_surrogates_escape_valid.json":    false,
	"i_string_invalid_lonely_surrogate.json":              false,
	"i_string_invalid_surrogate.json":                     false,
	"i_string_inverted_surrogates_U+1D11E.json":           false,
	"i_string_lone_second_surrogate.json":                 false,
}

// duplicateKeys are the y_ cases the scanner refuses on purpose.
var duplicateKeys = map[string]bool{
	"y_object_duplicated_key.json":           true,
	"y_object_duplicated_key_and_value.json": true,
}

func isContainer(data []byte) bool {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	return len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[')
}

// TestJSONTestSuite runs the trimmer over every file of JSONTestSuite's
// test_parsing: y_ must be accepted, n_ refused, i_ as recorded above.
func TestJSONTestSuite(t *testing.T) {
	dir := suiteDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	ep := mustCompile(t, `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},"fields":{"s":["#", "*"]}}]}`)[0]
	var unexpectedI []string
	counts := map[byte]int{}
	for _, f := range files {
		name := filepath.Base(f)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tr := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}, mask: 1}
		out, terr := tr.trim(nil, data, ep.root)
		accepted := terr == nil
		counts[name[0]]++
		switch name[0] {
		case 'y':
			if duplicateKeys[name] {
				// valid JSON that parsers read differently (gjson the
				// first value, encoding/json the last): refused by design
				assertReason(t, terr, sidecar.ReasonUpstreamDuplicate)
				continue
			}
			if !accepted {
				t.Errorf("%s: valid JSON refused: %v", name, terr)
			}
		case 'n':
			if accepted {
				t.Errorf("%s: invalid JSON accepted, output %q", name, out)
			}
		case 'i':
			want, known := implementationDefined[name]
			if !known {
				unexpectedI = append(unexpectedI, name)
				continue
			}
			if accepted != want {
				t.Errorf("%s: accepted=%v, the recorded choice is %v (%v)", name, accepted, want, terr)
			}
		}
		if accepted && name[0] == 'y' && !isContainer(data) && string(out) != "null" {
			t.Errorf("%s: a top-level scalar no path can name was not withheld: %q", name, out)
		}
		if accepted && name[0] == 'y' && isContainer(data) {
			// a whole-document grant must give back the document itself
			// (top-level containers are rebuilt compactly; every value is
			// byte-identical, so whitespace-insensitive equality holds)
			if !sameJSON(t, data, out) {
				t.Errorf("%s: output %q is not the input %q", name, out, data)
			}
		}
	}
	sort.Strings(unexpectedI)
	if len(unexpectedI) > 0 {
		t.Errorf("i_ cases without a recorded choice: %v", unexpectedI)
	}
	if counts['y'] < 90 || counts['n'] < 180 {
		t.Fatalf("only %d y_ and %d n_ files in %s; is the suite complete?", counts['y'], counts['n'], dir)
	}
}

// TestJSONTestSuitePolicyLoading feeds every suite file to the policy
// loader: n_ files must be refused as invalid JSON, and no y_ or i_ file is
// a policy, so each must be refused with a message naming the file.
func TestJSONTestSuitePolicyLoading(t *testing.T) {
	dir := suiteDir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		name := filepath.Base(f)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, perr := compilePolicy(name, data, DefaultMaxDepth)
		if perr == nil {
			t.Errorf("%s: accepted as a policy", name)
			continue
		}
		if !strings.Contains(perr.Error(), name) {
			t.Errorf("%s: the error does not name the file: %v", name, perr)
		}
		if name[0] == 'n' && !strings.Contains(perr.Error(), "not valid JSON") {
			t.Errorf("%s: invalid JSON not reported as such: %v", name, perr)
		}
		if name[0] == 'y' && !duplicateKeys[name] && strings.Contains(perr.Error(), "not valid JSON") {
			t.Errorf("%s: valid JSON reported as invalid: %v", name, perr)
		}
	}
}
