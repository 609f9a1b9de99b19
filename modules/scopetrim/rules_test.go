package scopetrim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// evalRule compiles src as the rule of scope "s" and judges record for a
// caller with that scope and claims.
func evalRule(t *testing.T, src, record string, claims map[string]any) bool {
	t.Helper()
	rules, err := compileRules(map[string]string{"s": src}, map[string]uint64{"s": 1})
	if err != nil {
		t.Fatalf("compiling %q: %v", src, err)
	}
	var f recordFilter
	f.reset(&recordRules{rules: rules}, 1, &sidecar.Identity{Claims: claims, Scopes: []string{"contacts:read", "contacts:admin"}}, "acme")
	return f.release([]byte(record))
}

var repClaims = map[string]any{
	"sub":         "rep-12",
	"crm_user_id": "u1",
	"crm_team":    []any{"u1", "u2"},
	"level":       float64(3), // JSON-decoded claims hold float64
	"regions":     []any{"emea"},
}

// TestRuleShapes evaluates each shape of rule a policy is expected to use,
// with its edge cases, on records as raw bytes.
func TestRuleShapes(t *testing.T) {
	tests := []struct {
		name, rule, record string
		want               bool
	}{
		{"owner", `record.owner_id == claims.crm_user_id`, `{"id":"c1","owner_id":"u1"}`, true},
		{"other owner", `record.owner_id == claims.crm_user_id`, `{"id":"c1","owner_id":"u9"}`, false},
		{"team membership", `record.owner_id in claims.crm_team`, `{"owner_id":"u2"}`, true},
		{"not in team", `record.owner_id in claims.crm_team`, `{"owner_id":"u3"}`, false},
		{"owner or team (issue's rule)", `record.owner_id == claims.crm_user_id || record.owner_id in claims.crm_team`, `{"owner_id":"u2"}`, true},
		{"missing record key is false", `record.owner_id == claims.crm_user_id`, `{"id":"c1"}`, false},
		{"missing claim is false", `record.owner_id in claims.crm_territory`, `{"owner_id":"u1"}`, false},
		{"true || error is true", `record.owner_id == claims.crm_user_id || record.nope == 1`, `{"owner_id":"u1"}`, true},
		{"false || error is false", `record.owner_id == "u9" || record.nope == 1`, `{"owner_id":"u1"}`, false},
		{"has guards a missing key", `!has(record.archived) && record.owner_id == "u1"`, `{"owner_id":"u1"}`, true},
		{"has sees a present key", `has(record.archived)`, `{"archived":false}`, true},
		{"nested object", `record.owner.id == claims.crm_user_id`, `{"owner":{"id":"u1","name":"x"}}`, true},
		{"nested missing", `record.owner.id == claims.crm_user_id`, `{"owner":null}`, false},
		{"wrong type is false", `record.owner_id == claims.crm_user_id`, `{"owner_id":17}`, false},
		{"int comparison", `record.amount > 1000`, `{"amount":1500}`, true},
		{"double comparison", `record.amount > 1000`, `{"amount":1500.5}`, true},
		{"exponent", `record.amount > 1000`, `{"amount":1.5e3}`, true},
		{"string is not a number", `record.amount > 1000`, `{"amount":"1500"}`, false},
		{"int equals double", `record.n == 1`, `{"n":1.0}`, true},
		{"claim float equals record int", `record.level == claims.level`, `{"level":3}`, true},
		{"beyond int64 is a double", `record.n > 9223372036854775807.0`, `{"n":9223372036854775808000}`, true},
		{"number out of range is false", `record.n > 0`, `{"n":1e400}`, false},
		{"bool", `record.active == true`, `{"active":true}`, true},
		{"null", `record.deleted_at == null`, `{"deleted_at":null}`, true},
		{"list in the record", `"vip" in record.tags`, `{"tags":["lead","vip"]}`, true},
		{"list against a claim list", `record.regions.exists(r, r in claims.regions)`, `{"regions":["apac","emea"]}`, true},
		{"list of objects", `record.owners.exists(o, o.id == claims.crm_user_id)`, `{"owners":[{"id":"u7"},{"id":"u1"}]}`, true},
		{"tenant", `tenant == "acme"`, `{}`, true},
		{"scopes", `"contacts:admin" in scopes`, `{}`, true},
		{"string function", `record.email.endsWith("@example.com")`, `{"email":"ada@example.com"}`, true},
		{"escaped key", `record.owner_id == "u1"`, `{"own\u0065r_id":"u1"}`, true},
		{"escaped value", `record.owner_id == "u\"1"`, `{"owner_id":"u\"1"}`, true},
		{"unicode value", `record.name == "Åsa"`, `{"name":"\u00c5sa"}`, true},
		{"key with a dot", `record["a.b"] == 1`, `{"a":{"b":2},"a.b":1}`, true},
		{"key that looks like a gjson modifier", `record["@this"] == "x"`, `{"@this":"x"}`, true},
		{"modifier is not applied", `"@this" in record`, `{"a":1}`, false},
		{"key that looks like a query", `record["#"] == 1`, `{"#":1}`, true},
		{"empty key", `record[""] == 1`, `{"":1,"a":2}`, true},
		{"size", `size(record) == 2`, `{"a":1,"b":{"c":[1,2]}}`, true},
		{"iterate keys", `record.exists(k, k == "b")`, `{"a":1,"b":2}`, true},
		{"map equality", `record.owner == {"id": "u1"}`, `{"owner":{"id":"u1"}}`, true},
		{"map inequality", `record.owner == {"id": "u1"}`, `{"owner":{"id":"u1","x":1}}`, false},
		{"non-object record is false", `record.owner_id == "u1"`, `"u1"`, false},
		{"array record is false", `record.owner_id == "u1"`, `[{"owner_id":"u1"}]`, false},
		{"constant true", `true`, `[]`, true},
		{"constant false", `false`, `{"owner_id":"u1"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := evalRule(t, tt.rule, tt.record, repClaims); got != tt.want {
				t.Fatalf("%s on %s = %v, want %v", tt.rule, tt.record, got, tt.want)
			}
		})
	}
}

// TestRuleCostLimit: a rule whose work grows with the record fails (and
// so withholds the record) once it passes the cost limit, instead of
// spending unbounded CPU on every record.
func TestRuleCostLimit(t *testing.T) {
	const rule = `record.tags.all(a, record.tags.all(b, a == b || a != b))`
	small := `{"tags":["a","b","c"]}`
	if !evalRule(t, rule, small, nil) {
		t.Fatal("a cheap evaluation failed")
	}
	var big strings.Builder
	big.WriteString(`{"tags":[`)
	for i := range 400 {
		if i > 0 {
			big.WriteByte(',')
		}
		fmt.Fprintf(&big, `"t%d"`, i)
	}
	big.WriteString(`]}`)
	if evalRule(t, rule, big.String(), nil) {
		t.Fatal("an evaluation past the cost limit released the record")
	}
}

// TestRuleCompileErrors: a rule that does not compile, names an unknown
// variable or does not return bool is refused with CEL's message.
func TestRuleCompileErrors(t *testing.T) {
	tests := []struct{ rule, want string }{
		{`record.owner_id ==`, "Syntax error"},
		{`recrd.owner_id == "u1"`, "undeclared reference to 'recrd'"},
		{`size(scopes) + 1`, "returns int, not bool"},
		{`record.owner_id`, "returns dyn, not bool"},
		{`tenant`, "returns string, not bool"},
		{`tenant == 1`, "found no matching overload"},
		{`  `, "the rule is empty"},
	}
	for _, tt := range tests {
		_, err := compileRules(map[string]string{"contacts:read": tt.rule}, map[string]uint64{"contacts:read": 1})
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `scope "contacts:read"`) {
			t.Errorf("%q: error %v, want one naming the scope and containing %q", tt.rule, err, tt.want)
		}
	}
}
