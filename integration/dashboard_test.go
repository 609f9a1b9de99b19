package integration

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

const (
	dashboardFile  = "deploy/grafana/privacy-sidecar.json"
	alertRulesFile = "deploy/prometheus/sidecar-alerts.yml"
)

// grafanaDashboard is the part of Grafana's dashboard JSON the tests read.
type grafanaDashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Requires []struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"__requires"`
	ID            any            `json:"id"`
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Datasource json.RawMessage `json:"datasource"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	GridPos    *struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		Datasource json.RawMessage `json:"datasource"`
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

// loadDashboard reads the dashboard and returns it with every panel,
// rows' panels included.
func loadDashboard(t *testing.T) (grafanaDashboard, []grafanaPanel) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardFile, err)
	}
	var all []grafanaPanel
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return d, all
}

// datasourceUID reads a datasource reference ({"type":..., "uid":...}).
func datasourceUID(raw json.RawMessage) (typ, uid string) {
	var ds struct{ Type, UID string }
	_ = json.Unmarshal(raw, &ds)
	return ds.Type, ds.UID
}

// TestGrafanaDashboardIsImportable checks what Grafana's "Import dashboard"
// needs from an exported dashboard: one Prometheus datasource input that
// every panel, query and variable uses (no datasource of the author's own
// Grafana), __requires naming each panel type, no dashboard id, unique
// panel ids, a position for every panel, and only defined variables.
func TestGrafanaDashboardIsImportable(t *testing.T) {
	d, panels := loadDashboard(t)
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
		t.Fatalf("__inputs %+v, want one Prometheus datasource input DS_PROMETHEUS", d.Inputs)
	}
	if d.ID != nil || d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Errorf("id %v (want null), uid %q, title %q, schemaVersion %d", d.ID, d.UID, d.Title, d.SchemaVersion)
	}
	required := map[string]bool{}
	for _, r := range d.Requires {
		required[r.Type+"/"+r.ID] = true
	}
	for _, want := range []string{"grafana/grafana", "datasource/prometheus"} {
		if !required[want] {
			t.Errorf("__requires lacks %s", want)
		}
	}
	wantDS := func(where string, raw json.RawMessage) {
		if typ, uid := datasourceUID(raw); typ != "prometheus" || uid != "${DS_PROMETHEUS}" {
			t.Errorf("%s: datasource %s, want {\"type\":\"prometheus\",\"uid\":\"${DS_PROMETHEUS}\"}", where, raw)
		}
	}
	vars := map[string]bool{"__rate_interval": true, "__range": true, "__interval": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		wantDS("variable "+v.Name, v.Datasource)
	}
	varRef := regexp.MustCompile(`\$\{?(\w+)`)
	ids := map[int]bool{}
	queries := 0
	for _, p := range panels {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d is zero or used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.Title == "" {
			t.Errorf("panel %d %q lacks a title or a position", p.ID, p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if !required["panel/"+p.Type] {
			t.Errorf("panel %q: type %s is not in __requires", p.Title, p.Type)
		}
		wantDS("panel "+p.Title, p.Datasource)
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			wantDS("panel "+p.Title+" query "+tg.RefID, tg.Datasource)
			for _, m := range varRef.FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[m[1]] {
					t.Errorf("panel %q uses $%s, which is not a variable of the dashboard", p.Title, m[1])
				}
			}
		}
	}
	if queries < 10 {
		t.Errorf("only %d queries", queries)
	}
}

// dashboardQueries returns every PromQL query of the dashboard, variables'
// label_values queries included (as the metric selector they read), named
// by where they are.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	d, panels := loadDashboard(t)
	out := map[string]string{}
	for _, p := range panels {
		for _, tg := range p.Targets {
			out["panel "+strconv.Quote(p.Title)+" "+tg.RefID] = tg.Expr
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, v.Definition)
			continue
		}
		// The label must be on the metric: check it as a grouping label.
		out["variable "+v.Name] = "sum by (" + m[2] + ") (" + m[1] + ")"
	}
	return out
}

// alertExpressions returns every alert rule's expression by alert name.
func alertExpressions(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, alertRulesFile))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no rules", alertRulesFile)
	}
	return out
}

// reasonCodeSet reads the reason codes from modules/sidecar/reasons.go.
func reasonCodeSet(t *testing.T) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(repoRoot, "modules/sidecar/reasons.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]bool{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && strings.HasPrefix(name.Name, "Reason") {
					codes[strings.Trim(lit.Value, `"`)] = true
				}
			}
		}
	}
	return codes
}

// TestDashboardAndAlertRulesQueryExposedMetrics runs the whole chain as
// caddyfiles/test/metrics.Caddyfile configures it (Caddy's HTTP metrics on,
// audit_log's tenant label on), sends allowed and refused requests, scrapes
// the admin API's /metrics, and checks that every metric, label and label
// value that the Grafana dashboard, the Prometheus alert rules and the docs
// use is really exposed.
func TestDashboardAndAlertRulesQueryExposedMetrics(t *testing.T) {
	iss := StartIssuer(t)
	upstream := StartUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/deals") { // an endpoint without error_fields
			answer(http.StatusInternalServerError, "application/json", `{"error":{"code":"db","message":"select * failed"}}`)(w, r)
			return
		}
		crmAnswer(crmContacts)(w, r)
	})
	op := startConnectorOP(t, time.Hour) // the connected system's authorization server, for connector_auth
	sc := StartSidecar(t, "caddyfiles/test/metrics.Caddyfile", map[string]string{
		"ISSUER": iss.URL, "UPSTREAM": upstream.Addr, "AUDIT_FILE": filepath.Join(t.TempDir(), "audit.jsonl"),
		"AUDIT_KEY": auditKey, "SCOPE_TRIM_HASH_KEY": scopeTrimHashKey,
		"STORAGE_DIR": filepath.Join(t.TempDir(), "storage"), "TOKEN_URL": op.TokenURL, "REVOCATION_URL": op.RevocationURL,
		"CRM_CLIENT_ID": crmClientID, "CRM_CLIENT_SECRET": crmClientSecret, "SIDECAR_CONNECTIONS_KEY": connectionsKey,
	})
	token := iss.MustMint(iss.AccessClaims("user-1", "connector-api", devidp.Claims{"tenant_id": "acme", "roles": []string{"sales_rep"}}))
	for _, c := range []struct {
		name, token string
		headers     []string
		path        string
		status      int
		reason      string
	}{
		{"allowed", token, []string{"X-Tenant-ID: acme"}, "/v1/contacts", 200, ""},
		{"allowed again (token cache hit)", token, []string{"X-Tenant-ID: acme"}, "/v1/contacts", 200, ""},
		{"allowed with a spoofed identity header", token, []string{"X-Tenant-ID: acme", "X-Auth-Subject: admin"}, "/v1/contacts", 200, ""},
		{"no token", "", nil, "/v1/contacts", 401, "token_missing"},
		{"another tenant", token, []string{"X-Tenant-ID: globex"}, "/v1/contacts", 403, "tenant_mismatch"},
		{"no policy", token, []string{"X-Tenant-ID: acme"}, "/v1/invoices", 403, "no_policy"},
		// The connector's own error answer: a generic problem with reason
		// upstream_error, which is not a refusal (docs/reasons.md).
		{"connector error", iss.MustMint(iss.AccessClaims("user-1", "connector-api", devidp.Claims{"tenant_id": "acme", "roles": []string{"privacy_officer"}})),
			[]string{"X-Tenant-ID: acme"}, "/v1/deals", 500, "upstream_error"},
	} {
		resp, body := sc.Get(t, c.path, c.token, c.headers...)
		if resp.StatusCode != c.status || (c.reason != "" && !strings.Contains(string(body), `"reason":"`+c.reason+`"`)) {
			t.Fatalf("%s: %d %s, want %d %s", c.name, resp.StatusCode, body, c.status, c.reason)
		}
	}

	// connector_auth: acme connected (a refresh, later a disconnect with
	// revocations and a request on the disconnected connection), globex
	// with a refresh token the provider refuses (a refresh failure)
	globex := iss.MustMint(iss.AccessClaims("user-2", "connector-api", devidp.Claims{"tenant_id": "globex", "roles": []string{"sales_rep"}}))
	for tenant, rt := range map[string]string{"acme": op.authorize(t), "globex": "not-a-refresh-token"} {
		if status, body := admin(t, sc, http.MethodPut, "/sidecar/connections/"+tenant+"/crm", `{"refresh_token":"`+rt+`"}`); status != http.StatusOK {
			t.Fatalf("connecting %s: %d %s", tenant, status, body)
		}
	}
	connected := []struct {
		name, token, tenant, reason string
		status                      int
	}{
		{"through the tenant's connection", token, "acme", "", 200},
		{"a connection the provider no longer accepts", globex, "globex", "connector_reauthorization_required", 403},
	}
	for _, c := range connected {
		resp, body := sc.Get(t, "/v1/activities", c.token, "X-Tenant-ID: "+c.tenant)
		if resp.StatusCode != c.status || (c.reason != "" && !strings.Contains(string(body), `"reason":"`+c.reason+`"`)) {
			t.Fatalf("%s: %d %s, want %d %s", c.name, resp.StatusCode, body, c.status, c.reason)
		}
	}
	if status, body := admin(t, sc, http.MethodDelete, "/sidecar/connections/acme/crm", ""); status != http.StatusOK {
		t.Fatalf("disconnecting acme: %d %s", status, body)
	}
	if resp, body := sc.Get(t, "/v1/activities", token, "X-Tenant-ID: acme"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("after the disconnect: %d %s", resp.StatusCode, body)
	}
	// the connections gauge is recounted at most every 5 s after a change
	exposition := scrapeMetrics(t, "http://"+sc.AdminAddr+"/metrics")
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(exposition, `state="reauthorization_required"} 1`) && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		exposition = scrapeMetrics(t, "http://"+sc.AdminAddr+"/metrics")
	}

	scrape, err := parseExposition(exposition)
	if err != nil {
		t.Fatal(err)
	}
	// The upstream's own 500 is counted as allowed, as docs/reasons.md says.
	if scrape["sidecar_requests_total"]["reason"]["upstream_error"] {
		t.Error("the connector's own error answer was counted with reason upstream_error; docs/reasons.md says it is allow/ok")
	}
	// docs/operations.md: Caddy measures whole server routes, so a site's
	// requests carry handler "subroute", never the name of a sidecar module.
	if handlers := scrape["caddy_http_request_duration_seconds_count"]["handler"]; !handlers["subroute"] || handlers["audit_log"] {
		t.Errorf("caddy_http_request_duration_seconds handler values %v; docs/operations.md says a site's requests carry subroute", handlers)
	}
	codes := reasonCodeSet(t)
	isReason := func(s string) bool { return codes[s] }

	for name, queries := range map[string]map[string]string{
		"dashboard":   dashboardQueries(t),
		"alert rules": alertExpressions(t),
	} {
		t.Run(name, func(t *testing.T) {
			for where, expr := range queries {
				for _, p := range checkQuery(expr, scrape, isReason) {
					t.Errorf("%s: %s", where, p)
				}
			}
		})
	}

	t.Run("docs", func(t *testing.T) {
		metricName := regexp.MustCompile(`\b(sidecar|caddy_http)_[a-z_]+\b`)
		pages, _ := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
		pages = append(pages, filepath.Join(repoRoot, "README.md"))
		named := 0
		for _, page := range pages {
			data, err := os.ReadFile(page)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range metricName.FindAllString(string(data), -1) {
				if strings.HasPrefix(m, "sidecar_health") || m == "sidecar_reason" {
					continue // the directive, and a placeholder name
				}
				named++
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if scrape[m] == nil && scrape[base+"_bucket"] == nil {
					t.Errorf("%s names metric %s, which the sidecar does not expose", filepath.Base(page), m)
				}
			}
		}
		if named == 0 {
			t.Error("the docs name no metric")
		}
	})

	// Every metric family the sidecar registers is on the dashboard.
	t.Run("dashboard covers every sidecar metric", func(t *testing.T) {
		// a histogram is one family: its _bucket, _sum and _count series
		family := func(name string) string {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && scrape[base+"_bucket"] != nil {
					return base
				}
			}
			return name
		}
		used := map[string]bool{}
		for _, expr := range dashboardQueries(t) {
			q, _ := parsePromQL(expr)
			for _, s := range q.selectors {
				used[family(s.metric)] = true
			}
		}
		var missing []string
		for name := range scrape {
			if strings.HasPrefix(name, "sidecar_") && !used[family(name)] {
				missing = append(missing, name)
			}
		}
		slices.Sort(missing)
		if len(missing) > 0 {
			t.Errorf("the dashboard shows none of %v", missing)
		}
	})
}
