package auditlog

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/docscheck"
)

// recordFields returns the Record's JSON field names in order, and those
// written only when non-empty.
func recordFields() (names []string, omitEmpty map[string]bool) {
	omitEmpty = map[string]bool{}
	rt := reflect.TypeOf(Record{})
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		names = append(names, name)
		if strings.Contains(opts, "omitempty") {
			omitEmpty[name] = true
		}
	}
	return names, omitEmpty
}

func loadAuditPage(t *testing.T) *docscheck.Page {
	t.Helper()
	page, err := docscheck.Load("docs/audit_log.md")
	if err != nil {
		t.Fatal(err)
	}
	return page
}

// TestRecordFieldsAreDocumented: docs/audit_log.md's field table under "The
// record" names every JSON field of Record and no other, the page lists the
// fields written only when non-empty, and each field has a doc comment on
// the type.
func TestRecordFieldsAreDocumented(t *testing.T) {
	names, omitEmpty := recordFields()
	page := loadAuditPage(t)
	var documented []string
	for _, tb := range page.TablesIn("The record") {
		if tb.Column("Field") != 0 {
			continue
		}
		for _, row := range tb.Rows {
			documented = append(documented, docscheck.Code(row[0])...)
		}
	}
	if len(documented) == 0 {
		t.Fatal(`docs/audit_log.md has no "Field" table under "The record"`)
	}
	for _, n := range names {
		if !slices.Contains(documented, n) {
			t.Errorf("Record field %q is not in docs/audit_log.md's field table", n)
		}
	}
	for _, d := range documented {
		if !slices.Contains(names, d) {
			t.Errorf("docs/audit_log.md documents %q, which is not a JSON field of Record", d)
		}
	}

	// "fields always in this order (`a`, `b` ... only when non-empty)"
	m := regexp.MustCompile(`fields always in this order \(([^)]*)only when non-empty\)`).FindStringSubmatch(page.Text)
	if m == nil {
		t.Fatal("docs/audit_log.md no longer says which fields are written only when non-empty")
	}
	var listed []string
	for _, c := range docscheck.Code(m[1]) {
		listed = append(listed, c)
		if !omitEmpty[c] {
			t.Errorf("the page says %q is written only when non-empty; its tag has no omitempty", c)
		}
	}
	for n := range omitEmpty {
		if !slices.Contains(listed, n) {
			t.Errorf("%q is written only when non-empty, but the page does not say so", n)
		}
	}

	// Every field carries a doc comment on the type.
	f, err := parser.ParseFile(token.NewFileSet(), "record.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "Record" {
			return true
		}
		for _, field := range ts.Type.(*ast.StructType).Fields.List {
			if len(field.Names) == 1 && field.Names[0].IsExported() && field.Doc.Text() == "" {
				t.Errorf("Record.%s has no doc comment", field.Names[0].Name)
			}
		}
		return false
	})
}

// TestRecordExampleIsARealRecord: the example line on the page decodes into
// a Record with no unknown field, carries the hash its content gives, and is
// byte for byte what the writer would write for it.
func TestRecordExampleIsARealRecord(t *testing.T) {
	page := loadAuditPage(t)
	var example string
	for _, b := range page.BlocksIn("The record") {
		if b.Lang == "json" {
			example = strings.TrimSpace(b.Text)
		}
	}
	if example == "" {
		t.Fatal(`docs/audit_log.md has no json example under "The record"`)
	}
	dec := json.NewDecoder(strings.NewReader(example))
	dec.DisallowUnknownFields()
	var rec Record
	if err := dec.Decode(&rec); err != nil {
		t.Fatalf("the example is not a Record: %v", err)
	}
	if want := recordHash(&rec); rec.Hash != want {
		t.Errorf("the example's hash is %s; its content hashes to %s", rec.Hash, want)
	}
	line, _ := seal(appendCanonicalBody(nil, &rec), 0)
	if got := string(bytes.TrimSuffix(line, []byte("\n"))); got != example {
		t.Errorf("the writer would write the example as\n%s\nnot\n%s", got, example)
	}
}

// TestMetricsTableMatchesRegisteredMetrics: the metrics table names every
// metric audit_log registers with its labels (tenant only with
// metrics_tenant_label), and no other.
func TestMetricsTableMatchesRegisteredMetrics(t *testing.T) {
	registered := registeredMetrics(t) // with metrics_tenant_label
	page := loadAuditPage(t)
	tables := page.TablesIn("Metrics")
	if len(tables) != 1 || tables[0].Column("Metric") != 0 || tables[0].Column("Labels") != 1 {
		t.Fatal(`docs/audit_log.md needs one "Metric | Labels" table under "Metrics"`)
	}
	seen := map[string]bool{}
	for _, row := range tables[0].Rows {
		name := docscheck.Code(row[0])
		if len(name) != 1 {
			t.Errorf("row %v: one metric per row", row)
			continue
		}
		labels, ok := registered[name[0]]
		if !ok {
			t.Errorf("docs/audit_log.md lists %s, which audit_log does not register", name[0])
			continue
		}
		seen[name[0]] = true
		documented := map[string]bool{"instance": true, "job": true}
		for _, l := range docscheck.Code(row[1]) {
			if l == "metrics_tenant_label" { // "(+ `tenant` with `metrics_tenant_label`)"
				continue
			}
			documented[l] = true
			if !labels[l] {
				t.Errorf("%s: the page lists label %q, which it does not have", name[0], l)
			}
		}
		for l := range labels {
			if !documented[l] {
				t.Errorf("%s has label %q, which the page does not list", name[0], l)
			}
		}
	}
	for name := range registered {
		if !seen[name] {
			t.Errorf("audit_log registers %s, which docs/audit_log.md does not list", name)
		}
	}
}
