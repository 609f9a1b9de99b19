package integration

import (
	"fmt"
	"strings"
	"testing"
)

// What the dashboard and alert tests need from PromQL and from the text
// exposition format: which metrics an expression selects, with which label
// matchers, and which labels it groups by; and which series a scrape holds.
// Not a PromQL parser: it reads the subset the repository's queries use and
// refuses what it does not understand, so a query it cannot check fails.

// promMatcher is one label matcher of a selector: label op "value".
type promMatcher struct{ label, op, value string }

// promSelector is a metric name and its matchers.
type promSelector struct {
	metric   string
	matchers []promMatcher
}

// promQuery is what a query refers to.
type promQuery struct {
	selectors []promSelector
	grouping  []string // labels of by, without, on, ignoring
}

// promFunctions are the functions and aggregation operators the queries may
// use; an identifier followed by "(" that is not here is an error.
var promFunctions = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "group": true, "topk": true, "bottomk": true,
	"quantile": true, "stddev": true, "stdvar": true, "count_values": true,
	"rate": true, "irate": true, "increase": true, "delta": true, "deriv": true, "histogram_quantile": true,
	"clamp_min": true, "clamp_max": true, "abs": true, "vector": true, "scalar": true, "time": true,
	"label_values": true, "absent": true, "sort": true, "sort_desc": true, "round": true,
}

// promAggregations may be followed by a by/without clause before their "(".
var promAggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "group": true, "topk": true,
	"bottomk": true, "quantile": true, "stddev": true, "stdvar": true, "count_values": true,
}

var promGroupingKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

var promOperatorKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// parsePromQL returns the selectors and grouping labels of expr.
func parsePromQL(expr string) (promQuery, error) {
	var q promQuery
	i := 0
	skipSpace := func() {
		for i < len(expr) && strings.ContainsRune(" \t\r\n", rune(expr[i])) {
			i++
		}
	}
	ident := func() string {
		start := i
		for i < len(expr) && isIdentChar(expr[i]) {
			i++
		}
		return expr[start:i]
	}
	str := func() (string, error) {
		quote := expr[i]
		i++
		var b strings.Builder
		for i < len(expr) && expr[i] != quote {
			if expr[i] == '\\' && i+1 < len(expr) {
				i++
			}
			b.WriteByte(expr[i])
			i++
		}
		if i >= len(expr) {
			return "", fmt.Errorf("unterminated string")
		}
		i++
		return b.String(), nil
	}
	labelList := func() ([]string, error) {
		skipSpace()
		if i >= len(expr) || expr[i] != '(' {
			return nil, nil // group_left without labels
		}
		i++
		var labels []string
		for {
			skipSpace()
			if i < len(expr) && expr[i] == ')' {
				i++
				return labels, nil
			}
			if i < len(expr) && expr[i] == ',' {
				i++
				continue
			}
			if i >= len(expr) || !isIdentStart(expr[i]) {
				return nil, fmt.Errorf("bad label list at %d", i)
			}
			labels = append(labels, ident())
		}
	}
	matchers := func() ([]promMatcher, error) {
		i++ // {
		var ms []promMatcher
		for {
			skipSpace()
			if i >= len(expr) {
				return nil, fmt.Errorf("unterminated selector")
			}
			if expr[i] == '}' {
				i++
				return ms, nil
			}
			if expr[i] == ',' {
				i++
				continue
			}
			if !isIdentStart(expr[i]) {
				return nil, fmt.Errorf("bad matcher at %d", i)
			}
			m := promMatcher{label: ident()}
			skipSpace()
			for _, op := range []string{"=~", "!~", "!=", "="} {
				if strings.HasPrefix(expr[i:], op) {
					m.op = op
					i += len(op)
					break
				}
			}
			skipSpace()
			if m.op == "" || i >= len(expr) || (expr[i] != '"' && expr[i] != '\'') {
				return nil, fmt.Errorf("bad matcher for %s", m.label)
			}
			v, err := str()
			if err != nil {
				return nil, err
			}
			m.value = v
			ms = append(ms, m)
		}
	}
	for i < len(expr) {
		c := expr[i]
		switch {
		case strings.ContainsRune(" \t\r\n(),+-*/%^<>=!", rune(c)):
			i++
		case c == '"' || c == '\'':
			if _, err := str(); err != nil {
				return q, err
			}
		case c == '[':
			end := strings.IndexByte(expr[i:], ']')
			if end < 0 {
				return q, fmt.Errorf("unterminated range")
			}
			i += end + 1
		case c == '{':
			return q, fmt.Errorf("a selector without a metric name at %d", i)
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (expr[i] >= '0' && expr[i] <= '9' || expr[i] == '.' || expr[i] == 'e') {
				i++
			}
		case c == '$':
			i++
			ident()
		case isIdentStart(c):
			name := ident()
			save := i
			skipSpace()
			next := byte(0)
			if i < len(expr) {
				next = expr[i]
			}
			switch {
			case promGroupingKeywords[name]:
				labels, err := labelList()
				if err != nil {
					return q, err
				}
				q.grouping = append(q.grouping, labels...)
			case promOperatorKeywords[name]:
			case next == '(' || promAggregations[name]:
				if !promFunctions[name] {
					return q, fmt.Errorf("unknown function %s", name)
				}
			default:
				i = save
				sel := promSelector{metric: name}
				skipSpace()
				if i < len(expr) && expr[i] == '{' {
					ms, err := matchers()
					if err != nil {
						return q, err
					}
					sel.matchers = ms
				}
				q.selectors = append(q.selectors, sel)
			}
		default:
			return q, fmt.Errorf("unexpected %q at %d", c, i)
		}
	}
	return q, nil
}

// exposition is a scrape: for each metric name (as exposed, with _bucket,
// _sum and _count for histograms), each label's observed values.
type exposition map[string]map[string]map[string]bool

// parseExposition reads the Prometheus text format.
func parseExposition(text string) (exposition, error) {
	out := exposition{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end <= 0 {
			return nil, fmt.Errorf("bad line %q", line)
		}
		name := line[:end]
		labels := out[name]
		if labels == nil {
			labels = map[string]map[string]bool{}
			out[name] = labels
		}
		if line[end] != '{' {
			continue
		}
		rest := line[end+1:]
		for {
			rest = strings.TrimLeft(rest, ", ")
			if strings.HasPrefix(rest, "}") {
				break
			}
			eq := strings.Index(rest, `="`)
			if eq <= 0 {
				return nil, fmt.Errorf("bad labels in %q", line)
			}
			label := rest[:eq]
			rest = rest[eq+2:]
			var v strings.Builder
			j := 0
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case 'n':
						v.WriteByte('\n')
						continue
					}
				}
				v.WriteByte(rest[j])
			}
			if j >= len(rest) {
				return nil, fmt.Errorf("unterminated label value in %q", line)
			}
			rest = rest[j+1:]
			if labels[label] == nil {
				labels[label] = map[string]bool{}
			}
			labels[label][v.String()] = true
		}
	}
	return out, nil
}

// targetLabels are added by Prometheus when it scrapes, not by the sidecar.
var targetLabels = map[string]bool{"instance": true, "job": true}

// checkQuery reports what in expr the scrape does not hold: a metric, a
// label of a matcher or of a grouping clause, or (for labels other than
// reason, which checkReason judges) a value an equality matcher asks for.
func checkQuery(expr string, scrape exposition, isReason func(string) bool) []string {
	q, err := parsePromQL(expr)
	if err != nil {
		return []string{fmt.Sprintf("cannot read %q: %v", expr, err)}
	}
	if len(q.selectors) == 0 {
		return []string{fmt.Sprintf("%q selects no metric", expr)}
	}
	var problems []string
	for _, sel := range q.selectors {
		labels, ok := scrape[sel.metric]
		if !ok {
			problems = append(problems, fmt.Sprintf("metric %s is not exposed", sel.metric))
			continue
		}
		for _, m := range sel.matchers {
			if targetLabels[m.label] {
				continue
			}
			values, ok := labels[m.label]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s has no label %q", sel.metric, m.label))
				continue
			}
			if m.label == "reason" {
				for _, code := range strings.Split(m.value, "|") {
					if !isReason(code) && !strings.Contains(code, "*") && !strings.Contains(code, "$") {
						problems = append(problems, fmt.Sprintf("%s: %q is not a reason code", sel.metric, code))
					}
				}
				continue
			}
			if m.op == "=" && !strings.Contains(m.value, "$") && !values[m.value] {
				problems = append(problems, fmt.Sprintf("%s{%s=%q}: no such series was exposed", sel.metric, m.label, m.value))
			}
		}
	}
	for _, g := range q.grouping {
		if targetLabels[g] {
			continue
		}
		found := false
		for _, sel := range q.selectors {
			if _, ok := scrape[sel.metric][g]; ok {
				found = true
			}
		}
		if !found {
			problems = append(problems, fmt.Sprintf("grouping by %q, which none of its metrics has", g))
		}
	}
	return problems
}

func TestParsePromQL(t *testing.T) {
	q, err := parsePromQL(`sum by (decision, reason) (rate(sidecar_requests_total{instance=~"$instance", decision="deny"}[$__rate_interval])) / clamp_min(sum(rate(x_total[5m])), 0.001) > 0.2 and on (instance) up`)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.selectors) != 3 || q.selectors[0].metric != "sidecar_requests_total" || q.selectors[1].metric != "x_total" || q.selectors[2].metric != "up" {
		t.Fatalf("selectors %+v", q.selectors)
	}
	if m := q.selectors[0].matchers; len(m) != 2 || m[1] != (promMatcher{"decision", "=", "deny"}) {
		t.Fatalf("matchers %+v", m)
	}
	if strings.Join(q.grouping, ",") != "decision,reason,instance" {
		t.Fatalf("grouping %v", q.grouping)
	}
	for _, bad := range []string{`{__name__="x"}`, `frobnicate(x)`, `x{a="b}`} {
		if _, err := parsePromQL(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	scrape, err := parseExposition("# HELP x\nx_total{a=\"1\",b=\"q\\\"s\"} 3\ny 1\n")
	if err != nil || !scrape["x_total"]["b"][`q"s`] || scrape["y"] == nil {
		t.Fatalf("exposition %v %v", scrape, err)
	}
	isReason := func(s string) bool { return s == "ok" }
	if p := checkQuery(`rate(x_total{a="2", c="1", reason="nope"}[1m])`, scrape, isReason); len(p) != 3 {
		t.Fatalf("problems %v, want 3 (no series a=2, no label c, bad reason)", p)
	}
	if p := checkQuery(`sum by (instance, a) (x_total{a="1"})`, scrape, isReason); len(p) != 0 {
		t.Fatalf("problems %v", p)
	}
}
