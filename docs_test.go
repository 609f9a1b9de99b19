package privacysidecar

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/alysio/privacy-sidecar/internal/docscheck"
)

// The README is the front door; the reference lives in docs/.
const maxREADMEBytes = 15000

func loadPages(t *testing.T) []*docscheck.Page {
	t.Helper()
	var pages []*docscheck.Page
	for _, path := range docscheck.Pages() {
		p, err := docscheck.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, p)
	}
	if len(pages) < 9 {
		t.Fatalf("found only %d pages", len(pages))
	}
	return pages
}

// directivePages are the docs pages named after a sidecar directive.
func directivePages(t *testing.T, pages []*docscheck.Page) map[string]*docscheck.Page {
	t.Helper()
	out := map[string]*docscheck.Page{}
	sidecarModules := []string{"oidc_auth", "tenant_guard", "scope_trim", "audit_log", "sidecar_health"}
	for _, p := range pages {
		name := strings.TrimSuffix(filepath.Base(p.Path), ".md")
		// docs/headers.md is a topic page, although Caddy has a headers module
		if _, err := caddy.GetModule("http.handlers." + name); err == nil && strings.HasPrefix(p.Path, "docs/") && slices.Contains(sidecarModules, name) {
			out[name] = p
		}
	}
	for _, want := range sidecarModules {
		if out[want] == nil {
			t.Errorf("no docs/%s.md", want)
		}
	}
	return out
}

func TestREADMEIsTheFrontDoor(t *testing.T) {
	info, err := os.Stat("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() >= maxREADMEBytes {
		t.Errorf("README.md is %d bytes; keep it under %d and put reference material in docs/", info.Size(), maxREADMEBytes)
	}
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocsLinksResolve: every relative link of README.md and docs/*.md names
// a file of the repository, and every #fragment a heading of its page; every
// docs page can be reached from the README.
func TestDocsLinksResolve(t *testing.T) {
	pages := loadPages(t)
	byPath := map[string]*docscheck.Page{}
	for _, p := range pages {
		byPath[p.Path] = p
	}
	linked := map[string][]string{}
	for _, p := range pages {
		for _, m := range mdLink.FindAllStringSubmatch(p.Text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			dest := p.Path
			if file != "" {
				dest = filepath.Clean(filepath.Join(filepath.Dir(p.Path), file))
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s links to %s, which does not exist", p.Path, target)
					continue
				}
				linked[p.Path] = append(linked[p.Path], dest)
			}
			if frag != "" {
				target := byPath[dest]
				if target == nil {
					t.Errorf("%s links to %s: a fragment of a file that is not a docs page", p.Path, m[1])
				} else if !target.Headings()[frag] {
					t.Errorf("%s links to %s, but %s has no heading #%s", p.Path, m[1], dest, frag)
				}
			}
		}
	}
	reached := map[string]bool{"README.md": true}
	for queue := []string{"README.md"}; len(queue) > 0; queue = queue[1:] {
		for _, dest := range linked[queue[0]] {
			if !reached[dest] {
				reached[dest] = true
				queue = append(queue, dest)
			}
		}
	}
	for _, p := range pages {
		if !reached[p.Path] {
			t.Errorf("%s cannot be reached by links from README.md", p.Path)
		}
	}
}

func adapt(caddyfile string) ([]byte, error) {
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "docs"})
	return out, err
}

// TestDocsCaddyfilesAdapt: every Caddyfile example in the docs adapts (the
// syntax blocks, which hold <placeholders>, are checked by
// TestDocumentedSubdirectivesAreParsed).
func TestDocsCaddyfilesAdapt(t *testing.T) {
	n := 0
	for _, p := range loadPages(t) {
		for _, b := range p.Blocks {
			if b.Lang != "caddyfile" && b.Lang != "caddy" || strings.HasPrefix(b.Section, "Syntax") {
				continue
			}
			n++
			src := b.Text
			if !strings.Contains(src, "{\n") && !strings.HasPrefix(strings.TrimSpace(src), "{") {
				src = "http://127.0.0.1:8080 {\n" + src + "}\n" // a lone directive
			}
			if _, err := adapt(src); err != nil {
				t.Errorf("%s:%d: the example does not adapt: %v", p.Path, b.Line, err)
			}
		}
	}
	if n < 6 {
		t.Fatalf("adapted only %d examples", n)
	}
}

var unrecognized = regexp.MustCompile(`(?i)unrecogni[sz]ed|unknown subdirective`)

// TestDocumentedSubdirectivesAreParsed: every directive and subdirective in
// a directive page's syntax block is accepted by its Caddyfile parser (a
// made-up one is refused, so the check can fail), and every subdirective
// the parser knows is in the docs.
func TestDocumentedSubdirectivesAreParsed(t *testing.T) {
	pages := loadPages(t)
	documented := map[string]bool{} // "directive sub", "directive parent sub"
	for directive, page := range directivePages(t, pages) {
		blocks := page.BlocksIn("Syntax")
		if len(blocks) == 0 {
			t.Errorf("%s has no syntax block", page.Path)
			continue
		}
		entries := docscheck.Syntax(blocks[0].Text)
		if len(entries) == 0 || entries[0].Path[0] != directive {
			t.Errorf("%s: the syntax block does not start with %s", page.Path, directive)
			continue
		}
		args := map[string][]string{}
		for _, e := range entries {
			args[strings.Join(e.Path, " ")] = e.Args
			documented[strings.Join(e.Path, " ")] = true
		}
		probe := func(path []string, sub string) error {
			var b strings.Builder
			b.WriteString("http://127.0.0.1:8080 {\n")
			for i := range path {
				words := []string{path[i]}
				for _, a := range args[strings.Join(path[:i+1], " ")] {
					if strings.HasPrefix(a, "[") {
						break // optional arguments, e.g. [<matcher>]
					}
					if strings.HasPrefix(a, "<") {
						a = "https://x.example"
					}
					words = append(words, a)
				}
				b.WriteString(strings.Join(words, " ") + " {\n")
			}
			b.WriteString(sub + "\n")
			b.WriteString(strings.Repeat("}\n", len(path)+1))
			_, err := adapt(b.String())
			return err
		}
		if len(entries) == 1 { // no block: the directive alone
			if _, err := adapt("http://127.0.0.1:8080 {\n" + directive + "\n}\n"); err != nil {
				t.Errorf("%s alone: %v", directive, err)
			}
			continue
		}
		if err := probe([]string{directive}, "no_such_subdirective x"); err == nil || !unrecognized.MatchString(err.Error()) {
			t.Errorf("%s: a made-up subdirective gives %v; the check needs an 'unrecognized' error", directive, err)
		}
		for _, e := range entries[1:] {
			if err := probe(e.Path[:len(e.Path)-1], e.Path[len(e.Path)-1]); err != nil && unrecognized.MatchString(err.Error()) {
				t.Errorf("%s documents %q, which the parser refuses: %v", page.Path, strings.Join(e.Path, " "), err)
			}
		}
	}

	// The other way: each name a module's caddyfile.go switches on appears
	// in the docs, as a syntax entry or a code span.
	spans := map[string]bool{}
	for _, p := range pages {
		for _, c := range docscheck.Code(p.Prose()) {
			for _, w := range strings.Fields(c) {
				spans[w] = true
			}
		}
		for _, b := range p.Blocks {
			for _, w := range strings.Fields(b.Text) {
				spans[strings.Trim(w, ",")] = true
			}
		}
	}
	files, _ := filepath.Glob("modules/*/caddyfile.go")
	for _, file := range files {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if cc, ok := n.(*ast.CaseClause); ok {
				for _, e := range cc.List {
					if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						name, _ := strconv.Unquote(lit.Value)
						if !spans[name] {
							t.Errorf("%s accepts %q, which no page documents", file, name)
						}
					}
				}
			}
			return true
		})
	}
}

// TestDocsJSONEquivalentsDecode: every JSON handler object in the docs
// decodes into its module with no unknown field.
func TestDocsJSONEquivalentsDecode(t *testing.T) {
	n := 0
	for _, p := range loadPages(t) {
		for _, b := range p.Blocks {
			if b.Lang != "json" {
				continue
			}
			var probe struct {
				Handler string `json:"handler"`
			}
			if json.Unmarshal([]byte(b.Text), &probe) != nil || probe.Handler == "" {
				continue
			}
			info, err := caddy.GetModule("http.handlers." + probe.Handler)
			if err != nil {
				t.Errorf("%s:%d: handler %q is not a module", p.Path, b.Line, probe.Handler)
				continue
			}
			n++
			var raw map[string]json.RawMessage
			_ = json.Unmarshal([]byte(b.Text), &raw)
			delete(raw, "handler")
			rest, _ := json.Marshal(raw)
			dec := json.NewDecoder(bytes.NewReader(rest))
			dec.DisallowUnknownFields()
			if err := dec.Decode(info.New()); err != nil {
				t.Errorf("%s:%d: the %s JSON does not decode into the module: %v", p.Path, b.Line, probe.Handler, err)
			}
		}
	}
	if n < 5 {
		t.Fatalf("decoded only %d JSON equivalents", n)
	}
}

// TestModulesJSONFieldsAreDocumented: every JSON field of every sidecar
// handler module (and of the structs it holds) is named in the docs.
func TestModulesJSONFieldsAreDocumented(t *testing.T) {
	named := map[string]bool{}
	for _, p := range loadPages(t) {
		for _, c := range docscheck.Code(p.Prose()) {
			named[strings.TrimSuffix(strings.Fields(c + " x")[0], ":")] = true
		}
		for _, b := range p.Blocks {
			for _, m := range regexp.MustCompile(`"([a-z_$]+)"\s*:`).FindAllStringSubmatch(b.Text, -1) {
				named[m[1]] = true
			}
		}
	}
	for _, info := range caddy.GetModules("http.handlers") {
		mod := info.New()
		rt := reflect.TypeOf(mod).Elem()
		if !strings.HasPrefix(rt.PkgPath(), "github.com/alysio/privacy-sidecar/") {
			continue
		}
		for _, field := range jsonFieldNames(rt, map[reflect.Type]bool{}) {
			if !named[field] {
				t.Errorf("%s: JSON field %q is named nowhere in the docs", info.ID, field)
			}
		}
	}
}

func jsonFieldNames(rt reflect.Type, seen map[reflect.Type]bool) []string {
	for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice || rt.Kind() == reflect.Map {
		rt = rt.Elem()
	}
	if rt.Kind() != reflect.Struct || seen[rt] || !strings.HasPrefix(rt.PkgPath(), "github.com/alysio/") {
		return nil
	}
	seen[rt] = true
	var out []string
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		out = append(out, name)
		out = append(out, jsonFieldNames(f.Type, seen)...)
	}
	return out
}

// goCommand is a `go test|run|build` line of a code block.
type goCommand struct {
	where string
	dir   string // the directory the command runs in, relative to the root
	verb  string
	args  []string
}

// shellWords splits a command line as a shell would for the commands the
// docs show: words, single- and double-quoted strings, a trailing comment.
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'' || c == '"':
			end := strings.IndexByte(line[i+1:], c)
			if end < 0 {
				end = len(line) - i - 1
			}
			w.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			return words
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// goCommands returns every go test/run/build command of the docs' code
// blocks and code spans.
func goCommands(t *testing.T) []goCommand {
	t.Helper()
	var out []goCommand
	for _, p := range loadPages(t) {
		var lines []string
		for _, b := range p.Blocks {
			lines = append(lines, strings.Split(b.Text, "\n")...)
		}
		for _, span := range docscheck.Code(p.Prose()) {
			if strings.Contains(span, "./") || strings.HasSuffix(span, " .") { // a span that names a package
				lines = append(lines, span)
			}
		}
		for _, line := range lines {
			line = strings.TrimSpace(line)
			for _, part := range strings.Split(line, "&&") {
				words := shellWords(strings.TrimSpace(part))
				if len(words) >= 2 && words[0] == "cd" {
					continue
				}
				if len(words) < 3 || words[0] != "go" || !slices.Contains([]string{"test", "run", "build"}, words[1]) || strings.Contains(part, "<") {
					continue
				}
				dir := "."
				if before, _, ok := strings.Cut(line, "&&"); ok && strings.HasPrefix(strings.TrimSpace(before), "cd ") {
					dir = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(before), "cd "))
				}
				out = append(out, goCommand{where: fmt.Sprintf("%s: %s", p.Path, line), dir: dir, verb: words[1], args: words[2:]})
			}
		}
	}
	return out
}

// testFuncs lists the Test, Benchmark and Fuzz functions of a package dir.
func testFuncs(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*_test.go"))
	var out []string
	for _, file := range files {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil {
				out = append(out, fn.Name.Name)
			}
		}
	}
	return out
}

// TestDocsGoCommandsNameRealThings: every go test, run and build command in
// the docs names packages that exist, and its -run, -bench and -fuzz
// patterns select tests, benchmarks and exactly one fuzz target there.
func TestDocsGoCommandsNameRealThings(t *testing.T) {
	cmds := goCommands(t)
	if len(cmds) < 8 {
		t.Fatalf("found only %d go commands in the docs", len(cmds))
	}
	for _, c := range cmds {
		var pkgs []string
		flags := map[string]string{}
		for i := 0; i < len(c.args); i++ {
			a := c.args[i]
			switch {
			case strings.HasPrefix(a, "-"):
				name, value, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
				if !ok && i+1 < len(c.args) && slices.Contains([]string{"run", "bench", "fuzz", "fuzztime", "benchtime", "count"}, name) {
					value = c.args[i+1]
					i++
				}
				flags[name] = value
			case strings.HasPrefix(a, "."):
				pkgs = append(pkgs, filepath.Join(c.dir, a))
				if c.verb != "test" {
					i = len(c.args) // the rest are the program's arguments
				}
			}
		}
		if len(pkgs) == 0 {
			t.Errorf("%s: names no package", c.where)
		}
		var funcs []string
		for _, pkg := range pkgs {
			if strings.HasSuffix(pkg, "...") {
				continue
			}
			if matches, _ := filepath.Glob(filepath.Join(pkg, "*.go")); len(matches) == 0 {
				t.Errorf("%s: %s holds no Go package", c.where, pkg)
			}
			funcs = append(funcs, testFuncs(t, pkg)...)
		}
		for flag, prefix := range map[string]string{"run": "Test", "bench": "Benchmark", "fuzz": "Fuzz"} {
			pattern, ok := flags[flag]
			if !ok || pattern == "^$" || pattern == "." {
				continue
			}
			re, err := regexp.Compile(pattern)
			if err != nil {
				t.Errorf("%s: -%s %q: %v", c.where, flag, pattern, err)
				continue
			}
			var hits []string
			for _, f := range funcs {
				if strings.HasPrefix(f, prefix) && re.MatchString(f) {
					hits = append(hits, f)
				}
			}
			if len(hits) == 0 || flag == "fuzz" && len(hits) != 1 {
				t.Errorf("%s: -%s %q selects %v", c.where, flag, pattern, hits)
			}
		}
	}
}

// TestDocsNameRealFilesAndTests: a code span that names a repository path
// (`policies/crm.json`, `caddyfiles/test/`) names one that exists, and one
// that names a test, benchmark or fuzz target names a function that exists.
func TestDocsNameRealFilesAndTests(t *testing.T) {
	funcs := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != ".") {
			return filepath.SkipDir
		}
		if d.IsDir() {
			for _, f := range testFuncs(t, path) {
				funcs[f] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	roots := []string{"caddyfiles/", "policies/", "deploy/", "modules/", "internal/", "integration/", "cmd/", "scripts/", "docs/", ".ci/"}
	testName := regexp.MustCompile(`^(Test|Benchmark|Fuzz)[A-Z]\w*$`)
	lineSuffix := regexp.MustCompile(`:[0-9]+$`)
	paths, tests := 0, 0
	for _, p := range loadPages(t) {
		for _, span := range docscheck.Code(p.Prose()) {
			for _, word := range strings.Fields(span) {
				word = strings.Trim(word, ",;:()")
				word = lineSuffix.ReplaceAllString(word, "") // file:line
				switch {
				case testName.MatchString(word):
					tests++
					if !funcs[word] {
						t.Errorf("%s names %s, which no test file defines", p.Path, word)
					}
				case slices.ContainsFunc(roots, func(r string) bool { return strings.HasPrefix(word, r) }) && !strings.ContainsAny(word, "<{"):
					paths++
					if matches, _ := filepath.Glob(strings.TrimSuffix(word, "/")); len(matches) == 0 {
						t.Errorf("%s names %s, which does not exist", p.Path, word)
					}
				}
			}
		}
	}
	if paths < 10 || tests < 5 {
		t.Fatalf("checked only %d paths and %d test names", paths, tests)
	}
}
