package sidecar

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/docscheck"
)

// reasonConstants reads every Reason* constant of reasons.go: the code's
// list of reason codes, by constant name.
func reasonConstants(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "reasons.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Reason") {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s is not a string literal", name.Name)
				}
				out[name.Name], _ = strconv.Unquote(lit.Value)
			}
		}
	}
	if len(out) < 30 {
		t.Fatalf("read only %d reason constants from reasons.go", len(out))
	}
	return out
}

// reasonRow is one row of docs/reasons.md's table.
type reasonRow struct {
	statusCell string
	statuses   []int
	modules    []string
	security   string
}

var statusNumber = regexp.MustCompile(`\b[1-5][0-9][0-9]\b`)

// reasonTable reads the one reason-code table of docs/reasons.md.
func reasonTable(t *testing.T) map[string]reasonRow {
	t.Helper()
	page, err := docscheck.Load("docs/reasons.md")
	if err != nil {
		t.Fatal(err)
	}
	var table *docscheck.Table
	for i, tb := range page.Tables {
		if tb.Column("Reason") >= 0 {
			if table != nil {
				t.Fatal("docs/reasons.md has more than one table with a Reason column; the reason codes are tabled once")
			}
			table = &page.Tables[i]
		}
	}
	if table == nil {
		t.Fatal("docs/reasons.md has no table with a Reason column")
	}
	cStatus, cReason, cModule, cSec := table.Column("Status"), table.Column("Reason"), table.Column("Module"), table.Column("Security event")
	if cStatus < 0 || cModule < 0 || cSec < 0 {
		t.Fatalf("the reason table's header is %v; want Status, Reason, Module, Security event", table.Header)
	}
	rows := map[string]reasonRow{}
	for _, cells := range table.Rows {
		if len(cells) != len(table.Header) {
			t.Errorf("row %v has %d cells, the header %d", cells, len(cells), len(table.Header))
			continue
		}
		codes := docscheck.Code(cells[cReason])
		if len(codes) != 1 {
			t.Errorf("row %v: the Reason cell must hold exactly one code", cells)
			continue
		}
		code := codes[0]
		if _, dup := rows[code]; dup {
			t.Errorf("%s has two rows", code)
		}
		row := reasonRow{statusCell: cells[cStatus], security: cells[cSec]}
		for _, s := range statusNumber.FindAllString(cells[cStatus], -1) {
			n, _ := strconv.Atoi(s)
			row.statuses = append(row.statuses, n)
		}
		if len(row.statuses) == 0 && !strings.Contains(cells[cStatus], "(recorded)") {
			t.Errorf("%s: status cell %q names no status", code, cells[cStatus])
		}
		for _, m := range strings.Split(cells[cModule], ",") {
			row.modules = append(row.modules, strings.TrimSpace(m))
		}
		rows[code] = row
	}
	return rows
}

// TestReasonTableMatchesCode: docs/reasons.md's table lists every Reason*
// constant of reasons.go once, and nothing else; its security-event column
// agrees with IsSecurityEvent; its module column names exactly the module
// packages whose code uses the constant.
func TestReasonTableMatchesCode(t *testing.T) {
	consts := reasonConstants(t)
	rows := reasonTable(t)
	codes := map[string]bool{}
	for name, code := range consts {
		codes[code] = true
		if _, ok := rows[code]; !ok {
			t.Errorf("%s (%q) has no row in docs/reasons.md", name, code)
		}
	}
	for code := range rows {
		if !codes[code] {
			t.Errorf("docs/reasons.md lists %q, which is not a Reason constant in reasons.go", code)
		}
	}
	users := reasonUsers(t, consts)
	for name, code := range consts {
		row, ok := rows[code]
		if !ok {
			continue
		}
		want := "no"
		if IsSecurityEvent(code) {
			want = "yes"
		}
		if row.security != want {
			t.Errorf("%s: security event %q, but IsSecurityEvent says %s", code, row.security, want)
		}
		documented := slices.Clone(row.modules)
		slices.Sort(documented)
		if got := users[name]; !slices.Equal(documented, got) {
			t.Errorf("%s: module column %v, but sidecar.%s is used by %v", code, documented, name, got)
		}
	}
}

// reasonUsers maps each constant name to the directives (module package
// directories, read as directive names) whose non-test code uses it.
func reasonUsers(t *testing.T, consts map[string]string) map[string][]string {
	t.Helper()
	dirs, _ := filepath.Glob("../*")
	users := map[string][]string{}
	for _, dir := range dirs {
		pkg := filepath.Base(dir)
		if pkg == "sidecar" {
			continue
		}
		directive := directiveOf(pkg)
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		seen := map[string]bool{}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "sidecar" {
						if _, ok := consts[sel.Sel.Name]; ok && !seen[sel.Sel.Name] {
							seen[sel.Sel.Name] = true
							users[sel.Sel.Name] = append(users[sel.Sel.Name], directive)
						}
					}
				}
				return true
			})
		}
	}
	for name := range users {
		slices.Sort(users[name])
	}
	return users
}

// directiveOf names the directive of a module package: its module ID's
// last part, as registered in the package (caddy.ModuleInfo ID).
func directiveOf(pkg string) string {
	files, _ := filepath.Glob(filepath.Join("..", pkg, "*.go"))
	id := regexp.MustCompile(`ID:\s+"http\.handlers\.([a-z_]+)"`)
	for _, file := range files {
		data, _ := os.ReadFile(file)
		if m := id.FindSubmatch(data); m != nil {
			return string(m[1])
		}
	}
	return pkg
}

// httpStatuses reads net/http's Status* constants from the Go installation.
func httpStatuses(t *testing.T) map[string]int {
	t.Helper()
	p, err := build.Default.Import("net/http", "", build.FindOnly)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, "status.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for i, name := range vs.Names {
				if i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.INT {
						out[name.Name], _ = strconv.Atoi(lit.Value)
					}
				}
			}
		}
		return true
	})
	if out["StatusForbidden"] != 403 {
		t.Fatalf("could not read net/http's status codes from %s", p.Dir)
	}
	return out
}

// TestReasonTableStatusesMatchCode: wherever the modules' code gives a
// status and a reason in one statement (sidecar.Refuse, a refuse helper, a
// return of both), the status is among those the table gives the reason.
func TestReasonTableStatusesMatchCode(t *testing.T) {
	consts := reasonConstants(t)
	rows := reasonTable(t)
	statuses := httpStatuses(t)
	files, _ := filepath.Glob("../*/*.go")
	pairs := 0
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") || strings.HasPrefix(file, "../sidecar/") {
			continue
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			var stmt ast.Node
			switch s := n.(type) {
			case *ast.ReturnStmt, *ast.ExprStmt, *ast.AssignStmt:
				stmt = s
			default:
				return true
			}
			var codes []string
			var status []int
			ast.Inspect(stmt, func(m ast.Node) bool {
				sel, ok := m.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				x, ok := sel.X.(*ast.Ident)
				switch {
				case ok && x.Name == "sidecar" && consts[sel.Sel.Name] != "":
					codes = append(codes, consts[sel.Sel.Name])
				case ok && x.Name == "http" && statuses[sel.Sel.Name] != 0:
					status = append(status, statuses[sel.Sel.Name])
				}
				return true
			})
			if len(codes) != 1 || len(status) != 1 {
				return true
			}
			pairs++
			if row, ok := rows[codes[0]]; ok && !slices.Contains(row.statuses, status[0]) {
				t.Errorf("%s: the code gives %s status %d; docs/reasons.md says %q", fset.Position(stmt.Pos()), codes[0], status[0], row.statusCell)
			}
			return false
		})
	}
	if pairs < 15 {
		t.Fatalf("found only %d status-and-reason statements in the modules; the check reads too little", pairs)
	}
}

// TestDocsCiteReasonsWithTheirStatus: wherever a page says "403 `code`"
// for a reason code, the table gives that code that status.
func TestDocsCiteReasonsWithTheirStatus(t *testing.T) {
	consts := reasonConstants(t)
	codes := map[string]bool{}
	for _, c := range consts {
		codes[c] = true
	}
	rows := reasonTable(t)
	cite := regexp.MustCompile("\\b([1-5][0-9][0-9])\\*{0,2} `([a-z][a-z0-9_]+)`")
	cited := 0
	for _, path := range docscheck.Pages() {
		page, err := docscheck.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range cite.FindAllStringSubmatch(page.Text, -1) {
			status, _ := strconv.Atoi(m[1])
			code := m[2]
			if !codes[code] {
				t.Errorf("%s: %q cites %s with a status, but it is not a reason code", path, m[0], code)
				continue
			}
			cited++
			if !slices.Contains(rows[code].statuses, status) {
				t.Errorf("%s: %q, but docs/reasons.md gives %s %q", path, m[0], code, rows[code].statusCell)
			}
		}
	}
	if cited < 10 {
		t.Fatalf("only %d status citations found; the pattern reads too little", cited)
	}
}
