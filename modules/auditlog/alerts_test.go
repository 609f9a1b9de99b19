package auditlog

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"
)

const alertsFile = "../../deploy/prometheus/sidecar-alerts.yml"

type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// reasonCodes reads every string constant of the sidecar's reasons.go.
func reasonCodes(t *testing.T) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../sidecar/reasons.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if s, err := strconv.Unquote(lit.Value); err == nil {
				codes[s] = true
			}
		}
		return true
	})
	return codes
}

// registeredMetrics gathers the names audit_log registers, with every label.
func registeredMetrics(t *testing.T) map[string]map[string]bool {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := newMetrics(reg, true)
	if err != nil {
		t.Fatal(err)
	}
	m.observe(&Record{Decision: "deny", Reason: "tenant_mismatch", FieldsRemoved: 1, RecordsWithheld: 1, SecurityEvent: "tenant_mismatch"}, os.ErrClosed, time.Millisecond)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	for _, f := range families {
		labels := map[string]bool{"instance": true, "job": true} // added by Prometheus
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		out[f.GetName()] = labels
	}
	return out
}

func TestAlertRulesParseAndUseRealMetrics(t *testing.T) {
	data, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("%s is not valid rules YAML: %v", alertsFile, err)
	}
	metrics := registeredMetrics(t)
	codes := reasonCodes(t)
	metricRef := regexp.MustCompile(`\b(sidecar_[a-z_]+)\b(\{[^}]*\})?`)
	matcher := regexp.MustCompile(`([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v lacks alert, expr, severity or summary", r)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses", r.Alert)
			}
			alerts[r.Alert] = true
			refs := metricRef.FindAllStringSubmatch(r.Expr, -1)
			if len(refs) == 0 {
				t.Errorf("%s uses no sidecar metric", r.Alert)
			}
			for _, ref := range refs {
				labels, ok := metrics[ref[1]]
				if !ok {
					t.Errorf("%s uses %s, which audit_log does not register", r.Alert, ref[1])
					continue
				}
				for _, m := range matcher.FindAllStringSubmatch(ref[2], -1) {
					if !labels[m[1]] {
						t.Errorf("%s: %s has no label %q", r.Alert, ref[1], m[1])
					}
					if m[1] != "reason" {
						continue
					}
					for _, code := range strings.Split(m[3], "|") {
						if !codes[code] && !strings.HasSuffix(code, ".*") {
							t.Errorf("%s: reason %q is not a reason code in sidecar/reasons.go", r.Alert, code)
						}
					}
				}
			}
		}
	}
	for _, want := range []string{"SidecarAuthFailureSpike", "SidecarTenantMismatch", "SidecarAuditWriteFailures"} {
		if !alerts[want] {
			t.Errorf("no %s alert", want)
		}
	}
}
