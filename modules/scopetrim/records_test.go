package scopetrim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// recordsPolicy has a single-record endpoint, a list endpoint and an NDJSON
// export, with the rules.
const recordsPolicy = `{
  "connector": "crm", "version": "1",
  "roles": { "manager": ["contacts:all"] },
  "endpoints": [
    {
      "match": { "methods": ["GET"], "path": "/v1/contacts/export" },
      "fields": { "contacts:read": ["id", "name", "owner_id"] },
      "records": { "at": "", "id": "id", "rules": {
        "contacts:read": "record.owner_id == claims.crm_user_id || record.owner_id in claims.crm_team",
        "contacts:all": "true" } }
    },
    {
      "match": { "methods": ["GET"], "path": "/v1/contacts/*" },
      "fields": { "contacts:read": ["id", "name", "owner_id"], "contacts:pii": ["email"] },
      "records": { "at": "", "id": "id", "rules": {
        "contacts:read": "record.owner_id == claims.crm_user_id || record.owner_id in claims.crm_team",
        "contacts:all": "true" } },
      "error_fields": ["error.code"]
    },
    {
      "match": { "methods": ["GET"], "path": "/v1/contacts" },
      "fields": {
        "contacts:read": ["data.#.id", "data.#.name", "data.#.owner_id", "next_cursor"],
        "contacts:pii": ["data.#.email"],
        "contacts:raw": ["data"]
      },
      "records": { "at": "data", "id": "id", "rules": {
        "contacts:read": "record.owner_id == claims.crm_user_id || record.owner_id in claims.crm_team",
        "contacts:raw": "record.owner_id == claims.crm_user_id",
        "contacts:all": "true" } }
    }
  ]
}`

const contactList = `{"data":[` +
	`{"id":"c1","name":"Ada","owner_id":"u1","email":"ada@example.com","ssn":"123-45-6789"},` +
	`{"id":"c2","name":"Bob","owner_id":"u9","email":"bob@example.com","ssn":"987-65-4321"},` +
	`{"id":"c3","name":"Cy","owner_id":"u2","email":"cy@example.com","ssn":"555-55-5555"},` +
	`{"id":"c4","name":"Di","owner_id":"u9","email":"di@example.com","ssn":"444-44-4444"}` +
	`],"next_cursor":"n1"}`

func rep(scopes ...string) *sidecar.Identity {
	return &sidecar.Identity{Subject: "rep-12", Scopes: scopes, Claims: map[string]any{
		"crm_user_id": "u1", "crm_team": []any{"u1", "u2"},
	}}
}

func get(path string) *http.Request { return httptest.NewRequest(http.MethodGet, path, nil) }

func TestRecordsListLosesWithheldRecords(t *testing.T) {
	m := newHandler(t, recordsPolicy, nil)
	res := serve(t, m, get("/v1/contacts"), rep("contacts:read"), jsonUpstream(200, contactList))
	want := `{"data":[{"id":"c1","name":"Ada","owner_id":"u1"},{"id":"c3","name":"Cy","owner_id":"u2"}],"next_cursor":"n1"}`
	if res.rec.Code != 200 || res.rec.Body.String() != want {
		t.Fatalf("%d %s", res.rec.Code, res.rec.Body)
	}
	assertNoSecret(t, res.rec, "Bob", "Di", "c2", "c4", "u9", "ada@example.com")
	d := res.decision
	if d.RecordsReleased != 2 || d.RecordsWithheld != 2 || !slices.Equal(d.RecordIDs, []string{"c1", "c3"}) || d.RecordIDsOmitted != 0 {
		t.Fatalf("decision %+v", d)
	}
	// only what was withheld from released records is counted as fields
	if d.FieldsRemoved != 4 || !slices.Equal(d.Withheld, []string{"data.#.email", "data.#.ssn"}) {
		t.Fatalf("fields_removed %d withheld %v", d.FieldsRemoved, d.Withheld)
	}
	if res.rec.Header().Get("Content-Length") != "110" || res.rec.Body.Len() != 110 {
		t.Fatalf("content length %q for %d bytes", res.rec.Header().Get("Content-Length"), res.rec.Body.Len())
	}
}

func TestRecordsUnionOfScopes(t *testing.T) {
	m := newHandler(t, recordsPolicy, nil)
	// contacts:pii has no rule: it releases no record of its own, it only
	// adds fields to the records contacts:read releases
	res := serve(t, m, get("/v1/contacts"), rep("contacts:read", "contacts:pii"), jsonUpstream(200, contactList))
	if !strings.Contains(res.rec.Body.String(), "ada@example.com") || strings.Contains(res.rec.Body.String(), "bob@example.com") {
		t.Fatalf("%s", res.rec.Body)
	}
	// contacts:pii alone: fields but no record
	res = serve(t, m, get("/v1/contacts"), rep("contacts:pii"), jsonUpstream(200, contactList))
	if res.rec.Body.String() != `{"data":[]}` || res.decision.RecordsWithheld != 4 {
		t.Fatalf("%s %+v", res.rec.Body, res.decision)
	}
	// a role mapping to contacts:all (a rule "true") releases every record
	mgr := rep("contacts:read")
	mgr.Roles = []string{"manager"}
	res = serve(t, m, get("/v1/contacts"), mgr, jsonUpstream(200, contactList))
	if strings.Count(res.rec.Body.String(), `"id"`) != 4 || res.decision.RecordsReleased != 4 {
		t.Fatalf("%s", res.rec.Body)
	}
}

func TestRecordsWithoutClaimsReleaseNothing(t *testing.T) {
	m := newHandler(t, recordsPolicy, nil)
	res := serve(t, m, get("/v1/contacts"), &sidecar.Identity{Subject: "u1", Scopes: []string{"contacts:read"}}, jsonUpstream(200, contactList))
	if res.rec.Code != 200 || res.rec.Body.String() != `{"data":[],"next_cursor":"n1"}` {
		t.Fatalf("%d %s", res.rec.Code, res.rec.Body)
	}
}

// TestRecordsRawGrantIsStillJudged: a grant of the whole array (or of an
// ancestor) must not copy the records past the rules.
func TestRecordsRawGrantIsStillJudged(t *testing.T) {
	m := newHandler(t, recordsPolicy, nil)
	res := serve(t, m, get("/v1/contacts"), rep("contacts:raw"), jsonUpstream(200, contactList))
	want := `{"data":[{"id":"c1","name":"Ada","owner_id":"u1","email":"ada@example.com","ssn":"123-45-6789"}]}`
	if res.rec.Body.String() != want {
		t.Fatalf("%s", res.rec.Body)
	}
	ep := mustCompile(t, `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},
		"fields":{"s":["*"]},"records":{"at":"page.items","rules":{"s":"record.ok == true"}}}]}`)[0]
	out := trimRecords(t, ep, `{"page":{"items":[{"ok":true,"a":1},{"ok":false,"b":2}],"n":2},"meta":{"x":1}}`, rep("s"))
	if out != `{"page":{"items":[{"ok":true,"a":1}],"n":2},"meta":{"x":1}}` {
		t.Fatalf("%s", out)
	}
}

func trimRecords(t *testing.T, ep *endpoint, doc string, id *sidecar.Identity) string {
	t.Helper()
	tr := &trimmer{scanner: scanner{maxDepth: DefaultMaxDepth}}
	tr.mask = ep.scopeMask(id.Scopes, id.Roles)
	tr.recState.reset(ep.records, tr.mask, id, "acme")
	tr.rec = &tr.recState
	out, err := tr.trim(nil, []byte(doc), ep.root)
	if err != nil {
		t.Fatalf("trim: %v", err)
	}
	return string(out)
}

func TestRecordsShapeAtTheRecordsPath(t *testing.T) {
	m := newHandler(t, recordsPolicy, nil)
	// an object where the records should be: it may be one record the
	// rules never judged, so the answer is refused
	res := serve(t, m, get("/v1/contacts"), rep("contacts:read"), jsonUpstream(200, `{"data":{"id":"c2","owner_id":"u9","name":"Bob"}}`))
	assertProblem(t, res, 502, sidecar.ReasonUpstreamNotRecords)
	assertNoSecret(t, res.rec, "Bob")
	// null and absent arrays are no records
	for _, body := range []string{`{"data":null,"next_cursor":"n"}`, `{"next_cursor":"n"}`, `{"data":[]}`} {
		res = serve(t, m, get("/v1/contacts"), rep("contacts:read"), jsonUpstream(200, body))
		if res.rec.Code != 200 || res.decision.RecordsReleased+res.decision.RecordsWithheld != 0 {
			t.Fatalf("%s: %d %s", body, res.rec.Code, res.rec.Body)
		}
	}
	// a scalar is not a record: withheld
	res = serve(t, m, get("/v1/contacts"), rep("contacts:raw"), jsonUpstream(200, `{"data":"c2 Bob u9"}`))
	if res.rec.Code != 200 || res.rec.Body.String() != `{}` {
		t.Fatalf("%d %s", res.rec.Code, res.rec.Body)
	}
}

func TestRecordsSingleRecord(t *testing.T) {
	m := newHandler(t, recordsPolicy, nil)
	res := serve(t, m, get("/v1/contacts/c1"), rep("contacts:read"), jsonUpstream(200, `{"id":"c1","name":"Ada","owner_id":"u1","ssn":"123-45-6789"}`))
	if res.rec.Code != 200 || res.rec.Body.String() != `{"id":"c1","name":"Ada","owner_id":"u1"}` || !slices.Equal(res.decision.RecordIDs, []string{"c1"}) {
		t.Fatalf("%d %s %+v", res.rec.Code, res.rec.Body, res.decision)
	}

	hidden := serve(t, m, get("/v1/contacts/c2"), rep("contacts:read"),
		jsonUpstream(200, `{"id":"c2","name":"Bob","owner_id":"u9","ssn":"987-65-4321"}`, "X-Total-Count: 1", "Etag: \"v7\""))
	assertProblem(t, hidden, 404, sidecar.ReasonRecordNotVisible)
	assertNoSecret(t, hidden.rec, "Bob", "c2", "u9", "987-65-4321", "v7", "X-Total-Count")
	d := hidden.decision
	if d.RecordsWithheld != 1 || d.RecordsReleased != 0 || len(d.RecordIDs) != 0 || d.FieldsRemoved != 0 || len(d.Withheld) != 0 {
		t.Fatalf("decision %+v", d)
	}

	// the connector's own 404 gives the same answer, byte for byte: a
	// client cannot tell a record it may not see from a missing one
	missing := serve(t, m, get("/v1/contacts/c404"), rep("contacts:read"), jsonUpstream(404, `{"error":{"code":"not_found","id":"c404"}}`))
	assertProblem(t, missing, 404, sidecar.ReasonRecordNotVisible)
	if missing.rec.Body.String() != hidden.rec.Body.String() || !equalHeaders(missing.rec.Header(), hidden.rec.Header()) {
		t.Fatalf("withheld and missing differ:\n%v %s\n%v %s", hidden.rec.Header(), hidden.rec.Body, missing.rec.Header(), missing.rec.Body)
	}

	// other errors go on as before (error_fields)
	res = serve(t, m, get("/v1/contacts/c1"), rep("contacts:read"), jsonUpstream(409, `{"error":{"code":"locked","owner":"u9"}}`))
	if res.rec.Code != 409 || res.rec.Body.String() != `{"error":{"code":"locked"}}` {
		t.Fatalf("%d %s", res.rec.Code, res.rec.Body)
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestRecordsNDJSONLines(t *testing.T) {
	m := newHandler(t, recordsPolicy, nil)
	up := ndjsonUpstream(
		`{"id":"c1","name":"Ada","owner_id":"u1","ssn":"1"}`+"\n",
		`{"id":"c2","name":"Bob","owner_id":"u9","ssn":"2"}`+"\n",
		`{"id":"c3","name":"Cy","owner_id":"u2","ssn":"3"}`+"\n",
		`{"id":"c4","name":"Di","owner_id":"u9","ssn":"4"}`,
	)
	res := serve(t, m, get("/v1/contacts/export"), rep("contacts:read"), up)
	want := `{"id":"c1","name":"Ada","owner_id":"u1"}` + "\n" + `{"id":"c3","name":"Cy","owner_id":"u2"}` + "\n"
	if res.rec.Code != 200 || res.rec.Body.String() != want {
		t.Fatalf("%d %q", res.rec.Code, res.rec.Body)
	}
	d := res.decision
	if d.RecordsReleased != 2 || d.RecordsWithheld != 2 || !slices.Equal(d.RecordIDs, []string{"c1", "c3"}) || d.FieldsRemoved != 2 {
		t.Fatalf("decision %+v", d)
	}
	// every line withheld: an empty stream, still 200
	res = serve(t, m, get("/v1/contacts/export"), rep("contacts:read"), ndjsonUpstream(`{"id":"c2","owner_id":"u9"}`))
	if res.rec.Code != 200 || res.rec.Body.Len() != 0 || res.decision.RecordsWithheld != 1 {
		t.Fatalf("%d %q", res.rec.Code, res.rec.Body)
	}
}

func TestRecordsIDsAreBounded(t *testing.T) {
	m := newHandler(t, recordsPolicy, nil)
	var b strings.Builder
	b.WriteString(`{"data":[`)
	for i := range sidecar.MaxRecordIDs + 10 {
		if i > 0 {
			b.WriteByte(',')
		}
		if i == 3 {
			b.WriteString(`{"name":"no id","owner_id":"u1"}`)
			continue
		}
		b.WriteString(`{"id":` + strings.Repeat("1", 1+i%5) + `,"owner_id":"u1"}`)
	}
	b.WriteString(`]}`)
	res := serve(t, m, get("/v1/contacts"), rep("contacts:read"), jsonUpstream(200, b.String()))
	d := res.decision
	if d.RecordsReleased != sidecar.MaxRecordIDs+10 || len(d.RecordIDs) != sidecar.MaxRecordIDs || d.RecordIDsOmitted != 10 {
		t.Fatalf("released %d ids %d omitted %d", d.RecordsReleased, len(d.RecordIDs), d.RecordIDsOmitted)
	}
	if d.RecordIDs[0] != "1" || d.RecordIDs[1] != "11" {
		t.Fatalf("numeric ids are kept as written: %v", d.RecordIDs[:3])
	}
}

func TestRecordsPolicyRefusals(t *testing.T) {
	ep := func(extra string) string {
		return `{"connector":"c","version":"1","endpoints":[{"match":{"methods":["GET"],"path":"/x"},"fields":{"s":["data.#.id"]}` + extra + `}]}`
	}
	tests := []struct{ name, policy, want string }{
		{"at missing", ep(`,"records":{"rules":{"s":"true"}}`), "records.at is missing"},
		{"no rules", ep(`,"records":{"at":"data","rules":{}}`), "records.rules is empty"},
		{"wildcard at", ep(`,"records":{"at":"data.#","rules":{"s":"true"}}`), "records.at: path \"data.#\" has a wildcard"},
		{"at reached by no field", ep(`,"records":{"at":"dta","rules":{"s":"true"}}`), `records.at "dta": no field`},
		{"bad id", ep(`,"records":{"at":"data","id":"a..b","rules":{"s":"true"}}`), "records.id"},
		{"syntax error", ep(`,"records":{"at":"data","rules":{"s":"record.owner_id =="}}`), `endpoint 0 (/x): records.rules scope "s": ERROR: <input>:1:19: Syntax error`},
		{"not bool", ep(`,"records":{"at":"data","rules":{"s":"size(scopes) + 1"}}`), `records.rules scope "s": the rule returns int, not bool`},
		{"unknown variable", ep(`,"records":{"at":"data","rules":{"s":"recrd.x == 1"}}`), `undeclared reference to 'recrd'`},
		{"unknown key", ep(`,"records":{"at":"data","rules":{"s":"true"},"ids":"id"}`), `unknown field "ids"`},
		{"bad scope name", ep(`,"records":{"at":"data","rules":{"a b":"true"}}`), `scope "a b" is not a scope name`},
		{"request_fields on GET", ep(`,"request_fields":{"s":["stage"]}`), "none of POST, PUT, PATCH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compilePolicy("p.json", []byte(tt.policy), DefaultMaxDepth)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "policy p.json: ") {
				t.Fatalf("error %v, want one naming the file and containing %q", err, tt.want)
			}
		})
	}
}

// TestSchemaRecordPathPatternsAgreeWithParser checks the schema's patterns
// for records.at and records.id against the loader.
func TestSchemaRecordPathPatternsAgreeWithParser(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "policies", "policy.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Defs struct {
			Endpoint struct {
				Properties struct {
					Records struct {
						Properties struct {
							At, ID struct {
								Pattern string `json:"pattern"`
							}
						} `json:"properties"`
					} `json:"records"`
				} `json:"properties"`
			} `json:"endpoint"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	at := regexp.MustCompile(schema.Defs.Endpoint.Properties.Records.Properties.At.Pattern)
	id := regexp.MustCompile(schema.Defs.Endpoint.Properties.Records.Properties.ID.Pattern)
	for _, p := range []string{"data", "page.items", `a\.b`, `\#`, "é", "", ".", "a.", "data.#", "#", "*", "a.*", "a..b", "@this", "a|b", `a\`} {
		_, perr := keyPath(p)
		if got := id.MatchString(p); got != (perr == nil) {
			t.Errorf("id %q: schema says %v, loader says %v", p, got, perr)
		}
		if got := at.MatchString(p); got != (perr == nil || p == "") {
			t.Errorf("at %q: schema says %v, loader says %v", p, got, perr)
		}
	}
}
