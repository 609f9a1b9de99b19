package scopetrim

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// TestRecogniseFastRule: the fast path takes exactly the comparisons of a
// record member with a claim, and && and || of them; a near miss is left
// to CEL.
func TestRecogniseFastRule(t *testing.T) {
	cmp := func(op, member, claim string) fastRule { return fastRule{op: op, member: member, claim: claim} }
	tests := []struct {
		src  string
		want *fastRule
	}{
		{`record.owner_id == claims.crm_user_id`, &fastRule{op: "_==_", member: "owner_id", claim: "crm_user_id"}},
		{`record.owner_id != claims.crm_user_id`, &fastRule{op: "_!=_", member: "owner_id", claim: "crm_user_id"}},
		{`claims.crm_user_id == record.owner_id`, &fastRule{op: "_==_", member: "owner_id", claim: "crm_user_id"}},
		{`(record.owner_id == claims.sub)`, &fastRule{op: "_==_", member: "owner_id", claim: "sub"}},
		{`record.a == claims.x || record.b != claims.y`, &fastRule{op: "_||_", terms: []fastRule{cmp("_==_", "a", "x"), cmp("_!=_", "b", "y")}}},
		{`record.a == claims.x && claims.y == record.b`, &fastRule{op: "_&&_", terms: []fastRule{cmp("_==_", "a", "x"), cmp("_==_", "b", "y")}}},
		{`record.a == claims.x || (record.b == claims.y && record.c != claims.z)`, &fastRule{op: "_||_", terms: []fastRule{
			cmp("_==_", "a", "x"), {op: "_&&_", terms: []fastRule{cmp("_==_", "b", "y"), cmp("_!=_", "c", "z")}}}}},

		{`has(record.owner_id)`, nil},
		{`has(record.owner_id) == has(claims.sub)`, nil},
		{`record.owner_id == "u1"`, nil},
		{`"u1" == claims.sub`, nil},
		{`record.owner.id == claims.sub`, nil},
		{`record.owner_id == claims.org.id`, nil},
		{`record["owner_id"] == claims.sub`, nil},
		{`record.owner_id == claims["sub"]`, nil},
		{`record.a == record.b`, nil},
		{`claims.a == claims.b`, nil},
		{`record.owner_id == tenant`, nil},
		{`size(record.owner_id) == size(claims.sub)`, nil},
		{`record.owner_id in claims.crm_team`, &fastRule{op: "@in", member: "owner_id", claim: "crm_team"}},
		{`record.owner_id == claims.crm_user_id || record.owner_id in claims.crm_team`, &fastRule{op: "_||_", terms: []fastRule{
			cmp("_==_", "owner_id", "crm_user_id"), cmp("@in", "owner_id", "crm_team")}}},
		{`claims.crm_user_id in record.owners`, nil},
		{`record.owner_id in record.owners`, nil},
		{`record.owner_id in ["u1"]`, nil},
		{`"u1" in claims.crm_team`, nil},
		{`record.owner_id in claims.org.team`, nil},
		{`record.n < claims.n`, nil},
		{`!(record.owner_id == claims.sub)`, nil},
		{`record.owner_id == claims.sub || record.x == 1`, nil},
		{`record.owner_id == claims.sub && true`, nil},
		{`record.owner_id == claims.sub ? true : false`, nil},
		{`[record.a].exists(x, x == claims.sub)`, nil},
		{`true`, nil},
	}
	for _, tc := range tests {
		r, err := compileRule(tc.src)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		if !reflect.DeepEqual(r.fast, tc.want) {
			t.Errorf("%s: fast form %+v, want %+v", tc.src, r.fast, tc.want)
		}
	}
}

// fastRuleRules are the rules the differential tests judge records with.
var fastRuleRules = []string{
	`record.owner == claims.uid`,
	`record.owner != claims.uid`,
	`claims.uid == record.owner`,
	`record.owner == claims.uid || record.team != claims.tid`,
	`record.owner != claims.uid && record.team == claims.tid`,
	`record.owner == claims.uid || (record.team == claims.tid && record.id != claims.uid)`,
	`record.owner in claims.tid`,
	`record.owner == claims.uid || record.owner in claims.tid`,
}

// fastRulePolicy is an endpoint whose records are judged by rule; a whole
// grant of data makes the trimmer copy records without noting their
// members, so both ways a record is read are exercised.
func fastRulePolicy(rule string, at string, fields string) string {
	return `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},
	"fields":{"s":` + fields + `},
	"records":{"at":` + strconv.Quote(at) + `,"id":"id","rules":{"s":` + strconv.Quote(rule) + `}}}]}`
}

// fastRulePair is one endpoint compiled twice: with the fast path, and
// with its rules left to CEL alone.
type fastRulePair struct{ fast, cel *endpoint }

func newFastRulePair(t testing.TB, policy string) fastRulePair {
	t.Helper()
	p := fastRulePair{mustCompile(t, policy)[0], mustCompile(t, policy)[0]}
	for i := range p.fast.records.rules {
		if p.fast.records.rules[i].fast == nil {
			t.Fatalf("%s: no fast form", policy)
		}
		p.cel.records.rules[i].fast = nil
	}
	return p
}

// fastRuleOutcome is what a trim decided.
type fastRuleOutcome struct {
	out                                string
	err                                string
	released, withheld, failures, root int
	ids                                []string
}

func judgeRecords(ep *endpoint, doc []byte, claims map[string]any) fastRuleOutcome {
	tr := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}}
	id := &sidecar.Identity{Scopes: []string{"s"}, Claims: claims}
	tr.mask = ep.scopeMask(id.Scopes, nil)
	tr.recState.reset(ep.records, tr.mask, id, "acme")
	tr.rec = &tr.recState
	out, err := tr.trim(nil, doc, ep.root)
	o := fastRuleOutcome{out: string(out), released: tr.rec.released, withheld: tr.rec.withheld,
		failures: tr.rec.failures, ids: append([]string(nil), tr.rec.ids...)}
	if err != nil {
		o.err = err.Error()
	}
	if tr.rec.rootReleased {
		o.root = 1
	}
	return o
}

// check trims doc with both endpoints and fails on any difference.
func (p fastRulePair) check(t testing.TB, doc []byte, claims map[string]any) {
	t.Helper()
	fast, cel := judgeRecords(p.fast, doc, claims), judgeRecords(p.cel, doc, claims)
	if !reflect.DeepEqual(fast, cel) {
		t.Fatalf("record %s, claims %#v:\nfast path %+v\nCEL       %+v", doc, claims, fast, cel)
	}
}

// fastRuleValues are JSON values a record member may hold: plain strings
// (equal to a claim or not), strings with escapes (some equal to a claim
// once unescaped), unicode, and every other type.
var fastRuleValues = []string{
	`"u1"`, `"u2"`, `""`, `"ü1"`, `"u\u0031"`, `"\u00fc1"`, `"u\"1"`, `"u\\1"`, `"日本"`, `"😀"`,
	`1`, `1.0`, `-0`, `1e400`, `true`, `false`, `null`, `{"owner":"u1"}`, `["u1"]`, `[]`, `{}`,
}

// fastRuleClaims are values a claim may hold, as a token's claims decode.
var fastRuleClaims = []any{"u1", "u2", "", "ü1", `u"1`, `u\1`, "日本", "😀", float64(1), true, false, nil,
	[]any{"u1"}, []any{"u2", "ü1", "u1"}, []any{}, []any{"u2", float64(1)}, []any{float64(1), "u1"}, []any{nil},
	[]any{[]any{"u1"}}, map[string]any{"owner": "u1"}, map[string]any{"u1": true}, []string{"u1"}, []string{"u2", "日本"}, []string{}}

// randomRecordsDoc writes a records document: objects with some of the
// members the rules read (a key sometimes escaped, sometimes twice, which
// the scanner refuses), and now and then an element that is not an object.
func randomRecordsDoc(rng *rand.Rand, single bool) []byte {
	record := func() string {
		if rng.IntN(12) == 0 {
			return fastRuleValues[rng.IntN(len(fastRuleValues))]
		}
		var members []string
		for _, k := range []string{"id", "owner", "team", "other"} {
			if rng.IntN(5) == 0 {
				continue
			}
			key := strconv.Quote(k)
			if rng.IntN(10) == 0 {
				key = `"` + strings.Replace(k, "e", `\u0065`, 1) + `"`
			}
			members = append(members, key+":"+fastRuleValues[rng.IntN(len(fastRuleValues))])
			if rng.IntN(40) == 0 {
				members = append(members, key+`:"u1"`)
			}
		}
		rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
		return "{" + strings.Join(members, ",") + "}"
	}
	if single {
		return []byte(record())
	}
	elems := make([]string, rng.IntN(5))
	for i := range elems {
		elems[i] = record()
	}
	return []byte(`{"data":[` + strings.Join(elems, ", ") + `]}`)
}

func randomClaims(rng *rand.Rand) map[string]any {
	claims := map[string]any{}
	for _, k := range []string{"uid", "tid"} {
		if rng.IntN(6) != 0 {
			claims[k] = fastRuleClaims[rng.IntN(len(fastRuleClaims))]
		}
	}
	if rng.IntN(20) == 0 {
		return nil
	}
	return claims
}

// fastRuleEndpoints are the endpoint shapes the rules are tried on: the
// members walked one by one, a record copied whole, one record per body.
var fastRuleEndpoints = []struct{ at, fields string }{
	{"data", `["data.#.id","data.#.owner","data.#.team"]`},
	{"data", `["data"]`},
	{"data", `["data.#.id"]`},
	{"", `["id","owner","team"]`},
}

// TestFastRuleMatchesCEL judges random records for random claims with the
// fast path and with CEL alone: every answer, count and id is the same.
func TestFastRuleMatchesCEL(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 6))
	for _, rule := range fastRuleRules {
		for _, shape := range fastRuleEndpoints {
			t.Run(fmt.Sprintf("%s/at=%q/%s", rule, shape.at, shape.fields), func(t *testing.T) {
				p := newFastRulePair(t, fastRulePolicy(rule, shape.at, shape.fields))
				for range 400 {
					p.check(t, randomRecordsDoc(rng, shape.at == ""), randomClaims(rng))
				}
			})
		}
	}
}

// TestFastRuleDecides makes sure the fast path is taken where it should
// be: on a walked record with plain strings it decides, and on anything
// else it leaves the record to CEL.
func TestFastRuleDecides(t *testing.T) {
	ep := mustCompile(t, fastRulePolicy(`record.owner == claims.uid`, "data", `["data.#.owner"]`))[0]
	tests := []struct {
		record  string
		claim   any
		decided bool
		value   bool
	}{
		{`{"owner":"u1"}`, "u1", true, true},
		{`{"owner":"u2"}`, "u1", true, false},
		{`{"owner":"ü1"}`, "ü1", true, true},
		{`{"owner":"u\u0031"}`, "u1", false, false},
		{`{"owner":1}`, float64(1), false, false},
		{`{"owner":"u1"}`, nil, false, false},
		{`{"other":"u1"}`, "u1", false, false},
		{`"u1"`, "u1", false, false},
	}
	for _, tc := range tests {
		doc := []byte(`{"data":[` + tc.record + `]}`)
		tr := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}}
		id := &sidecar.Identity{Scopes: []string{"s"}, Claims: map[string]any{"uid": tc.claim}}
		tr.mask = ep.scopeMask(id.Scopes, nil)
		tr.recState.reset(ep.records, tr.mask, id, "acme")
		tr.rec = &tr.recState
		if _, err := tr.trim(nil, doc, ep.root); err != nil {
			t.Fatalf("%s: %v", tc.record, err)
		}
		// the member table still holds the last (only) record's members
		tr.rec.act.setRecord(doc[len(`{"data":[`):len(doc)-2], &tr.rec.members)
		value, decided := ep.records.rules[0].fast.decide(&tr.rec.act)
		if decided != tc.decided || value != tc.value {
			t.Errorf("%s, claim %#v: decided %v value %v, want %v %v", tc.record, tc.claim, decided, value, tc.decided, tc.value)
		}
	}
}

// FuzzFastRule compares the fast path with CEL alone on any document and
// claims: uid a string; tid a string, missing, a number, or a list of the
// comma-separated parts of tid.
func FuzzFastRule(f *testing.F) {
	for _, s := range []string{
		`{"data":[{"id":1,"owner":"u1","team":"t"},{"id":2,"owner":"u2"}]}`,
		`{"data":[{"owner":"u\u0031"},{"own\u0065r":"u1"},"u1",null,{"owner":1}]}`,
		`{"data":[{"owner":"ü1","team":"日本"}]}`, `{"data":[{"owner":"u1","owner":"u1"}]}`,
	} {
		f.Add([]byte(s), "u1", "t", uint8(0))
		f.Add([]byte(s), "u2", "u1,t", uint8(0xff))
	}
	pairs := make([]fastRulePair, 0, len(fastRuleRules)*len(fastRuleEndpoints))
	for _, rule := range fastRuleRules {
		for _, shape := range fastRuleEndpoints {
			pairs = append(pairs, newFastRulePair(f, fastRulePolicy(rule, shape.at, shape.fields)))
		}
	}
	f.Fuzz(func(t *testing.T, doc []byte, uid, tid string, pick uint8) {
		claims := map[string]any{"uid": uid, "tid": tid}
		switch pick >> 6 {
		case 1:
			delete(claims, "tid")
		case 2:
			claims["tid"] = float64(len(tid))
		case 3:
			var team []any
			for _, s := range strings.Split(tid, ",") {
				team = append(team, s)
			}
			claims["tid"] = team
		}
		pairs[int(pick&63)%len(pairs)].check(t, doc, claims)
	})
}
