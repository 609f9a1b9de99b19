package scopetrim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestPolicyRefusals(t *testing.T) {
	ep := func(fields string) string {
		return `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},"fields":` + fields + `}]}`
	}
	tests := []struct{ name, policy, want string }{
		{"unknown scope in roles", `{"connector":"c","version":"1","roles":{"r":["s","nope"]},"endpoints":[{"match":{"methods":["GET"],"path":"/x"},"fields":{"s":["a"]}}]}`, `role "r" maps to unknown scope "nope"`},
		{"duplicate endpoint", `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},"fields":{"s":["a"]}},{"match":{"methods":["POST","GET"],"path":"/x"},"fields":{"s":["b"]}}]}`, "duplicate endpoint GET,POST /x"},
		{"empty segment", ep(`{"s":["data..id"]}`), "empty key"},
		{"trailing dot", ep(`{"s":["data."]}`), "empty key"},
		{"gjson query", ep(`{"s":["data.#(age>40).id"]}`), "must be a whole segment"},
		{"gjson modifier", ep(`{"s":["@reverse"]}`), "modifiers are not part"},
		{"gjson pipe", ep(`{"s":["a|b"]}`), "modifiers are not part"},
		{"wildcard inside key", ep(`{"s":["da*ta"]}`), "must be a whole segment"},
		{"bad escape", ep(`{"s":["a\\nb"]}`), "only \\. \\\\ \\# and \\* are allowed"},
		{"unknown transform", ep(`{"s":[{"path":"a","transform":"encrypt"}]}`), `unknown transform "encrypt"`},
		{"unknown field key", ep(`{"s":[{"path":"a","transfrom":"mask"}]}`), "transfrom"},
		{"unknown top-level key", `{"connector":"c","version":"1","endpont":[]}`, "endpont"},
		{"no endpoints", `{"connector":"c","version":"1","endpoints":[]}`, "endpoints"},
		{"no connector", `{"version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},"fields":{"s":["a"]}}]}`, "connector"},
		{"lower-case method", `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["get"],"path":"/x"},"fields":{"s":["a"]}}]}`, "upper-case"},
		{"relative path", `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"x"},"fields":{"s":["a"]}}]}`, "must start with /"},
		{"scope with no fields", ep(`{"s":[]}`), "lists no fields"},
		{"duplicate key in policy", `{"connector":"c","connector":"d","version":"1","endpoints":[]}`, "duplicate key"},
		{"invalid UTF-8 in policy", "{\"connector\":\"\xff\",\"version\":\"1\",\"endpoints\":[]}", "invalid UTF-8"},
		{"field of the wrong type", ep(`{"s":[42]}`), "policy p.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compilePolicy("p.json", []byte(tt.policy), DefaultMaxDepth)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "p.json") {
				t.Fatalf("error %q does not name the file and contain %q", err, tt.want)
			}
		})
	}
}

func TestPathEscapes(t *testing.T) {
	segs, err := parsePath(`a\.b.#.\#.\*.*.c\\d`)
	if err != nil {
		t.Fatal(err)
	}
	want := []segment{{segKey, "a.b"}, {segElem, ""}, {segKey, "#"}, {segKey, "*"}, {segStar, ""}, {segKey, `c\d`}}
	if len(segs) != len(want) {
		t.Fatalf("%v", segs)
	}
	for i := range want {
		if segs[i] != want[i] {
			t.Fatalf("segment %d: %v, want %v", i, segs[i], want[i])
		}
	}
}

func TestLoadPoliciesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.json", `{"connector":"a","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x*"},"fields":{"s":["a"]}}]}`)
	write("policy.schema.json", `{"type":"object"}`)
	if _, files, err := loadPolicies(dir, 64); err != nil || len(files) != 1 {
		t.Fatalf("%v %v", files, err)
	}
	// every JSON file of a policy directory is a policy: a stray one (a
	// tenant registry left there) is refused by name, not skipped
	write("tenants.json", `{"tenants":[]}`)
	if _, _, err := loadPolicies(dir, 64); err == nil || !strings.Contains(err.Error(), "tenants.json") {
		t.Fatalf("a JSON file that is not a policy was not refused by name: %v", err)
	}
	os.Remove(filepath.Join(dir, "tenants.json"))
	write("b.json", `{"connector":"b","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x*"},"fields":{"s":["a"]}}]}`)
	_, _, err := loadPolicies(dir, 64)
	if err == nil || !strings.Contains(err.Error(), "b.json") || !strings.Contains(err.Error(), "a.json") {
		t.Fatalf("a duplicate across files must name both: %v", err)
	}
	if _, _, err := loadPolicies(filepath.Join(dir, "missing"), 64); err == nil {
		t.Fatal("a missing path was accepted")
	}
}

func TestProvisionRefusals(t *testing.T) {
	hashPolicy := `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},"fields":{"s":[{"path":"a","transform":"hash"}]}}]}`
	path := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(path, []byte(hashPolicy), 0o600)
	for name, m := range map[string]*ScopeTrim{
		"no policies":        {},
		"hash without key":   {Policies: path},
		"hash key unset env": {Policies: path, HashKey: "{env.SCOPE_TRIM_TEST_UNSET_KEY}"},
	} {
		t.Run(name, func(t *testing.T) {
			if err := provisionErr(m); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	t.Setenv("SCOPE_TRIM_TEST_KEY", "short")
	if err := provisionErr(&ScopeTrim{Policies: path, HashKey: "{env.SCOPE_TRIM_TEST_KEY}"}); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("a short key: %v", err)
	}
	t.Setenv("SCOPE_TRIM_TEST_KEY", testHashKey)
	if err := provisionErr(&ScopeTrim{Policies: path, HashKey: "{env.SCOPE_TRIM_TEST_KEY}"}); err != nil {
		t.Fatal(err)
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`scope_trim {
		policies policies/
		max_body 1MiB
		max_depth 32
		hash_key {env.SCOPE_TRIM_HASH_KEY}
	}`)
	var m ScopeTrim
	if err := m.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if m.Policies != "policies/" || m.MaxBody != 1<<20 || m.MaxDepth != 32 || m.HashKey != "{env.SCOPE_TRIM_HASH_KEY}" {
		t.Fatalf("%+v", m)
	}
	for input, want := range map[string]string{
		"scope_trim {\nnope 1\n}":                 "unrecognized subdirective 'nope'",
		"scope_trim {\nmax_body lots\n}":          "max_body 'lots'",
		"scope_trim {\nmax_depth 0\n}":            "max_depth '0'",
		"scope_trim {\npolicies a b\n}":           "wrong argument count",
		"scope_trim {\npolicies a\npolicies b\n}": "subdirective 'policies' is given twice; give it once",
		`scope_trim a`:                            "takes no arguments",
	} {
		var m ScopeTrim
		err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", input, err, want)
		}
	}
}

// FuzzCompilePolicy: any policy file is compiled or refused with an error
// naming the file; never a panic.
func FuzzCompilePolicy(f *testing.F) {
	f.Add([]byte(issuePolicy))
	f.Add([]byte(`{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x*y*"},"fields":{"s":["a\\.b.#.*",{"path":"c","transform":"mask"}]},"error_fields":["e"]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		eps, err := compilePolicy("f.json", data, DefaultMaxDepth)
		if err != nil {
			if !strings.Contains(err.Error(), "f.json") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		for _, e := range eps {
			e.matches("GET", "/x")
			e.scopeMask([]string{"s"}, []string{"r"})
		}
	})
}

// TestSchemaPathPatternAgreesWithParser checks policies/policy.schema.json's
// path pattern against the parser, so editors validate what the sidecar loads.
func TestSchemaPathPatternAgreesWithParser(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "policies", "policy.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Defs struct {
			Path struct {
				Pattern string `json:"pattern"`
			} `json:"path"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(schema.Defs.Path.Pattern)
	for _, p := range []string{
		"a", "data.#.id", "*", "#", "a.*.b", `a\.b`, `\#`, `\*.x`, `c\\d`, "é.ü", "a@b", "a)b",
		"", ".", "a.", ".a", "a..b", "a#", "#a", "a*", "**", "@this", "a|b", "a(b", "#(x>1)", `a\`, `a\n`, "?x", "a.!b",
	} {
		_, perr := parsePath(p)
		if got := re.MatchString(p); got != (perr == nil) {
			t.Errorf("path %q: schema says %v, parser says %v", p, got, perr)
		}
	}
}
