package privacysidecar

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// manifest is xcaddy.json, in the key names of xcaddy's Builder.
type manifest struct {
	CaddyVersion string `json:"caddy_version"`
	Plugins      []struct {
		ModulePath string `json:"module_path"`
		Version    string `json:"version"`
		Replace    string `json:"replace"`
	} `json:"plugins"`
}

const modulePath = "github.com/alysio/privacy-sidecar"

// TestXcaddyManifestMatchesGoMod keeps xcaddy.json, go.mod and the binary's
// imports in step: the xcaddy build must produce the same program as
// `go build ./cmd/privacy-sidecar`.
func TestXcaddyManifestMatchesGoMod(t *testing.T) {
	data, err := os.ReadFile("xcaddy.json")
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("xcaddy.json: %v", err)
	}

	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	var caddyVersion string
	for _, line := range strings.Split(string(gomod), "\n") {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(fields) >= 2 && fields[0] == "github.com/caddyserver/caddy/v2" {
			caddyVersion = fields[1]
		}
	}
	if m.CaddyVersion != caddyVersion {
		t.Errorf("xcaddy.json caddy_version is %q, go.mod requires %q: make them equal", m.CaddyVersion, caddyVersion)
	}
	if len(m.Plugins) != 1 || m.Plugins[0].ModulePath != modulePath || m.Plugins[0].Replace != "." {
		t.Errorf("xcaddy.json plugins must be exactly this repository (%s, replace \".\"), got %+v", modulePath, m.Plugins)
	}
}

// TestEveryModuleIsPluggedIn checks that plugins.go imports every package
// under modules/ that registers a Caddy module, and that the binary imports
// plugins.go's package.
func TestEveryModuleIsPluggedIn(t *testing.T) {
	imported := importsOf(t, "plugins.go")
	dirs, err := filepath.Glob(filepath.Join("modules", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		registers := false
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			registers = registers || strings.Contains(string(src), "caddy.RegisterModule(")
		}
		pkg := modulePath + "/" + filepath.ToSlash(dir)
		if registers && !slices.Contains(imported, pkg) {
			t.Errorf("plugins.go does not import %s, which registers a Caddy module", pkg)
		}
	}
	main := importsOf(t, filepath.Join("cmd", "privacy-sidecar", "main.go"))
	for _, want := range []string{modulePath, "github.com/caddyserver/caddy/v2/modules/standard"} {
		if !slices.Contains(main, want) {
			t.Errorf("cmd/privacy-sidecar/main.go does not import %s", want)
		}
	}
}

func importsOf(t *testing.T, file string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		paths = append(paths, p)
	}
	return paths
}

// devOnlyPackages are the demo command and what only it uses: the
// development OIDC issuer that mints tokens, the sample connector and its
// authorization server.
var devOnlyPackages = []string{
	modulePath + "/internal/demo",
	modulePath + "/internal/devidp",
	modulePath + "/internal/democrm",
	modulePath + "/internal/demooauth",
}

// TestProductionBuildsLeaveOutTheDemo checks what the README says of each
// build: `go build ./cmd/privacy-sidecar` (what `go run ... demo` uses) links
// the demo; -tags nodemo (the Dockerfile's and CI's static build) and the
// xcaddy build (which imports this repository's top package, plugins.go)
// link every module and the audit commands but nothing that can mint tokens.
func TestProductionBuildsLeaveOutTheDemo(t *testing.T) {
	for _, tc := range []struct {
		name, tags, pkg string
		demo            bool
	}{
		{"default build", "", "./cmd/privacy-sidecar", true},
		{"nodemo build", "nodemo", "./cmd/privacy-sidecar", false},
		{"xcaddy build", "", ".", false},
	} {
		out, err := exec.Command("go", "list", "-deps", "-tags", tc.tags, tc.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: go list: %v\n%s", tc.name, err, out)
		}
		deps := strings.Fields(string(out))
		for _, pkg := range devOnlyPackages {
			if got := slices.Contains(deps, pkg); got != tc.demo {
				t.Errorf("%s: links %s = %v, want %v", tc.name, pkg, got, tc.demo)
			}
		}
		if !slices.Contains(deps, modulePath+"/modules/auditlog") {
			t.Errorf("%s: does not link audit_log and its audit commands", tc.name)
		}
	}
}
