package scopetrim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

const writesPolicy = `{
  "connector": "crm", "version": "1",
  "endpoints": [
    {
      "match": { "methods": ["PATCH", "DELETE"], "path": "/v1/deals/*" },
      "fields": { "deals:write": ["id", "stage", "amount", "notes"], "deals:admin": ["id"] },
      "request_fields": {
        "deals:write": ["stage", "amount", "notes", "lines.#.sku", "address.city"],
        "deals:admin": ["*"]
      }
    },
    {
      "match": { "methods": ["POST"], "path": "/v1/contacts" },
      "fields": { "contacts:write": ["id", "owner_id"] },
      "request_fields": { "contacts:write": ["name", "owner_id", "email"] },
      "records": { "at": "", "id": "id", "rules": { "contacts:write": "record.owner_id == claims.crm_user_id" } }
    },
    {
      "match": { "methods": ["POST"], "path": "/v1/contacts/batch" },
      "fields": { "contacts:write": ["data.#.id"] },
      "request_fields": { "contacts:write": ["data.#.name", "data.#.owner_id"] },
      "records": { "at": "data", "rules": { "contacts:write": "record.owner_id == claims.crm_user_id" } }
    },
    {
      "match": { "methods": ["POST"], "path": "/v1/activities" },
      "fields": { "activities:write": ["id"] }
    }
  ]
}`

// write sends method path body (with Content-Type application/json unless
// a "Content-Type: ..." header is given) and returns the result.
func write(t *testing.T, m *ScopeTrim, id *sidecar.Identity, method, path, body string, headers ...string) result {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	var upstreamBody string
	res := serve(t, m, req, id, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		upstreamBody = string(b)
		jsonUpstream(200, `{"id":"d1","stage":"won","owner_id":"u1","secret":"x"}`)(w, r)
	})
	if res.upstream != nil && upstreamBody != body {
		t.Fatalf("the connector received %q, not the judged body %q", upstreamBody, body)
	}
	return res
}

func TestWritesAllowedFieldsReachTheConnector(t *testing.T) {
	m := newHandler(t, writesPolicy, nil)
	for _, body := range []string{
		`{"stage":"won"}`,
		`{"stage":"won","amount":1200.50,"notes":null}`,
		`{"lines":[{"sku":"a"},{"sku":"b"}]}`,
		`{"address":{"city":"Oslo"}}`,
		` {} `,
		`[]`,
	} {
		res := write(t, m, who([]string{"deals:write"}, nil), "PATCH", "/v1/deals/d1", body)
		if res.upstream == nil || res.rec.Code != 200 || res.rec.Body.String() != `{"id":"d1","stage":"won"}` {
			t.Fatalf("%s: %d %s", body, res.rec.Code, res.rec.Body)
		}
		if res.upstream.ContentLength != int64(len(body)) || len(res.upstream.TransferEncoding) != 0 {
			t.Fatalf("%s: forwarded with length %d %v", body, res.upstream.ContentLength, res.upstream.TransferEncoding)
		}
	}
	// "*" allows every top-level field and its subtree
	res := write(t, m, who([]string{"deals:admin"}, nil), "PATCH", "/v1/deals/d1", `{"owner_id":"u9","custom":{"a":[1,{"b":2}]}}`)
	if res.upstream == nil {
		t.Fatalf("refused: %s", res.rec.Body)
	}
	// no body at all is no field
	req := httptest.NewRequest("DELETE", "/v1/deals/d1", nil)
	res = serve(t, m, req, who([]string{"deals:write"}, nil), jsonUpstream(200, `{"id":"d1"}`))
	if res.upstream == nil || res.rec.Code != 200 {
		t.Fatalf("DELETE without a body: %d %s", res.rec.Code, res.rec.Body)
	}
}

func TestWritesRefused(t *testing.T) {
	m := newHandler(t, writesPolicy, func(m *ScopeTrim) { m.MaxBody = 256; m.MaxDepth = 8 })
	deals := who([]string{"deals:write"}, nil)
	tests := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		reason, names            string
	}{
		{"field not allowed", "PATCH", "/v1/deals/d1", `{"stage":"won","owner_id":"u9"}`, nil, 403, sidecar.ReasonWriteFieldNotAllowed, "owner_id"},
		{"first offending path", "PATCH", "/v1/deals/d1", `{"lines":[{"sku":"a","price":1}],"owner_id":"u9"}`, nil, 403, sidecar.ReasonWriteFieldNotAllowed, "lines.#.price"},
		{"nested not allowed", "PATCH", "/v1/deals/d1", `{"address":{"city":"Oslo","street":"Main 1"}}`, nil, 403, sidecar.ReasonWriteFieldNotAllowed, "address.street"},
		{"a partly allowed object replaced by a scalar", "PATCH", "/v1/deals/d1", `{"address":"Main 1"}`, nil, 403, sidecar.ReasonWriteFieldNotAllowed, "address"},
		{"a partly allowed object emptied", "PATCH", "/v1/deals/d1", `{"address":{}}`, nil, 403, sidecar.ReasonWriteFieldNotAllowed, "address"},
		{"a partly allowed object nulled", "PATCH", "/v1/deals/d1", `{"address":null}`, nil, 403, sidecar.ReasonWriteFieldNotAllowed, "address"},
		{"an escaped key is the key", "PATCH", "/v1/deals/d1", `{"own\u0065r_id":"u9"}`, nil, 403, sidecar.ReasonWriteFieldNotAllowed, "owner_id"},
		{"a key with a dot is named escaped", "PATCH", "/v1/deals/d1", `{"stage.x":"won"}`, nil, 403, sidecar.ReasonWriteFieldNotAllowed, `stage\\.x`},
		{"top-level scalar", "PATCH", "/v1/deals/d1", `"won"`, nil, 403, sidecar.ReasonWriteFieldNotAllowed, "(root)"},
		{"endpoint without request_fields", "POST", "/v1/activities", `{"type":"call"}`, nil, 403, sidecar.ReasonWriteFieldNotAllowed, "type"},
		{"duplicate key", "PATCH", "/v1/deals/d1", `{"stage":"won","stage":"lost"}`, nil, 400, sidecar.ReasonRequestMalformed, "duplicate key"},
		{"duplicate after escaping", "PATCH", "/v1/deals/d1", `{"stage":"won","st\u0061ge":"lost"}`, nil, 400, sidecar.ReasonRequestMalformed, "duplicate key"},
		{"invalid UTF-8", "PATCH", "/v1/deals/d1", "{\"notes\":\"\xff\"}", nil, 400, sidecar.ReasonRequestMalformed, "invalid UTF-8"},
		{"lone surrogate", "PATCH", "/v1/deals/d1", `{"notes":"\ud800"}`, nil, 400, sidecar.ReasonRequestMalformed, "surrogate"},
		{"not JSON", "PATCH", "/v1/deals/d1", `stage=won`, nil, 400, sidecar.ReasonRequestMalformed, "not valid JSON"},
		{"trailing data", "PATCH", "/v1/deals/d1", `{"stage":"won"} {"owner_id":"u9"}`, nil, 400, sidecar.ReasonRequestMalformed, "trailing data"},
		{"too deep", "PATCH", "/v1/deals/d1", strings.Repeat(`{"lines":`, 9) + "1" + strings.Repeat("}", 9), nil, 400, sidecar.ReasonRequestMalformed, "nesting deeper"},
		{"form content type", "PATCH", "/v1/deals/d1", `{"stage":"won"}`, []string{"Content-Type: application/x-www-form-urlencoded"}, 415, sidecar.ReasonRequestNotJSON, ""},
		{"no content type", "PATCH", "/v1/deals/d1", `{"stage":"won"}`, []string{"Content-Type: "}, 415, sidecar.ReasonRequestNotJSON, ""},
		{"compressed", "PATCH", "/v1/deals/d1", `{"stage":"won"}`, []string{"Content-Encoding: gzip"}, 415, sidecar.ReasonRequestNotJSON, ""},
		{"too large", "PATCH", "/v1/deals/d1", `{"notes":"` + strings.Repeat("x", 300) + `"}`, nil, 413, sidecar.ReasonRequestTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scopes := deals
			if tt.path == "/v1/activities" {
				scopes = who([]string{"activities:write"}, nil)
			}
			res := write(t, m, scopes, tt.method, tt.path, tt.body, tt.headers...)
			assertProblem(t, res, tt.status, tt.reason)
			if res.upstream != nil {
				t.Fatal("the connector was called for a refused write")
			}
			if !strings.Contains(res.rec.Body.String(), tt.names) {
				t.Fatalf("the refusal does not name %q: %s", tt.names, res.rec.Body)
			}
			assertNoSecret(t, res.rec, "u9", "Main 1", "lost", "Oslo", "call")
		})
	}
	// a chunked body (no Content-Length) over the limit
	req := httptest.NewRequest("PATCH", "/v1/deals/d1", io.MultiReader(strings.NewReader(`{"notes":"`), strings.NewReader(strings.Repeat("x", 300)+`"}`)))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json")
	res := serve(t, m, req, deals, jsonUpstream(200, `{}`))
	assertProblem(t, res, 413, sidecar.ReasonRequestTooLarge)
	if res.upstream != nil {
		t.Fatal("the connector was called")
	}
}

func TestWritesDeleteOnlyWhereListed(t *testing.T) {
	m := newHandler(t, writesPolicy, nil)
	res := serve(t, m, httptest.NewRequest("DELETE", "/v1/contacts", nil), who([]string{"contacts:write"}, nil), jsonUpstream(200, `{}`))
	assertProblem(t, res, 403, sidecar.ReasonNoPolicy)
	if res.upstream != nil {
		t.Fatal("the connector was called")
	}
}

func TestWritesRecordRulesJudgeTheBody(t *testing.T) {
	m := newHandler(t, writesPolicy, nil)
	res := write(t, m, rep("contacts:write"), "POST", "/v1/contacts", `{"name":"Ada","owner_id":"u1"}`)
	if res.upstream == nil || res.rec.Code != 200 || res.rec.Body.String() != `{"id":"d1","owner_id":"u1"}` {
		t.Fatalf("%d %s", res.rec.Code, res.rec.Body)
	}
	for _, body := range []string{`{"name":"Ada","owner_id":"u9"}`, `{"name":"Ada"}`} {
		res = write(t, m, rep("contacts:write"), "POST", "/v1/contacts", body)
		assertProblem(t, res, 403, sidecar.ReasonRecordNotAllowed)
		if res.upstream != nil {
			t.Fatalf("%s: the connector was called", body)
		}
	}
	// a field check comes first: a refused field is named even when the
	// record would also be refused
	res = write(t, m, rep("contacts:write"), "POST", "/v1/contacts", `{"owner_id":"u9","lead_score":99}`)
	assertProblem(t, res, 403, sidecar.ReasonWriteFieldNotAllowed)

	// a batch: every record must pass
	res = write(t, m, rep("contacts:write"), "POST", "/v1/contacts/batch", `{"data":[{"name":"A","owner_id":"u1"},{"name":"B","owner_id":"u1"}]}`)
	if res.upstream == nil {
		t.Fatalf("batch refused: %s", res.rec.Body)
	}
	res = write(t, m, rep("contacts:write"), "POST", "/v1/contacts/batch", `{"data":[{"name":"A","owner_id":"u1"},{"name":"B","owner_id":"u9"}]}`)
	assertProblem(t, res, 403, sidecar.ReasonRecordNotAllowed)
	if res.upstream != nil {
		t.Fatal("the connector was called")
	}
}

func TestWritesPolicyRefusals(t *testing.T) {
	ep := func(methods, extra string) string {
		return `{"connector":"c","version":"1","endpoints":[{"match":{"methods":` + methods + `,"path":"/x"},"fields":{"s":["id"]}` + extra + `}]}`
	}
	tests := []struct{ name, policy, want string }{
		{"GET only", ep(`["GET"]`, `,"request_fields":{"s":["a"]}`), "none of POST, PUT, PATCH"},
		{"DELETE only", ep(`["DELETE"]`, `,"request_fields":{"s":["a"]}`), "none of POST, PUT, PATCH"},
		{"empty", ep(`["POST"]`, `,"request_fields":{}`), "request_fields is empty"},
		{"scope without fields", ep(`["POST"]`, `,"request_fields":{"w":[]}`), `request_fields scope "w" lists no fields`},
		{"transform", ep(`["POST"]`, `,"request_fields":{"w":[{"path":"a","transform":"mask"}]}`), "never rewritten"},
		{"bad path", ep(`["PUT"]`, `,"request_fields":{"w":["a..b"]}`), "empty key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compilePolicy("p.json", []byte(tt.policy), DefaultMaxDepth)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "policy p.json: endpoint 0 (/x): ") {
				t.Fatalf("error %v, want one naming file and endpoint and containing %q", err, tt.want)
			}
		})
	}
	// a scope named only in request_fields may be mapped by a role
	if _, err := compilePolicy("p.json", []byte(`{"connector":"c","version":"1","roles":{"writer":["w"]},"endpoints":[{"match":{"methods":["POST"],"path":"/x"},"fields":{"s":["id"]},"request_fields":{"w":["a"]}}]}`), DefaultMaxDepth); err != nil {
		t.Fatal(err)
	}
}
