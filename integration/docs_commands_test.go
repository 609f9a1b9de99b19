package integration

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/docscheck"
)

// sidecarCommand is a privacy-sidecar command line the docs show.
type sidecarCommand struct {
	where string
	sub   []string // the command and subcommand, e.g. [audit verify]
	flags []string // --name, without values
}

var (
	commandWord = regexp.MustCompile(`^[a-z][a-z-]*$`)
	flagWord    = regexp.MustCompile(`^--?([a-z][a-z-]*)`)
	helpFlag    = regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z][a-z-]*)`)
)

// docsSidecarCommands returns every privacy-sidecar command of the docs'
// code blocks and code spans.
func docsSidecarCommands(t *testing.T) []sidecarCommand {
	t.Helper()
	var out []sidecarCommand
	for _, path := range docscheck.Pages() {
		page, err := docscheck.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, b := range page.Blocks {
			lines = append(lines, strings.Split(b.Text, "\n")...)
		}
		lines = append(lines, docscheck.Code(page.Prose())...)
		for _, line := range lines {
			line, _, _ = strings.Cut(strings.TrimSpace(line), " #")
			var rest string
			for _, prefix := range []string{"go run ./cmd/privacy-sidecar ", "privacy-sidecar "} {
				if r, ok := strings.CutPrefix(line, prefix); ok {
					rest = r
				}
			}
			if rest == "" {
				continue
			}
			c := sidecarCommand{where: path + ": " + line}
			for _, w := range strings.Fields(rest) {
				w = strings.Trim(w, "[]()|") // [--partial], (--keyring PATH | --log FILE)
				if m := flagWord.FindStringSubmatch(w); m != nil {
					c.flags = append(c.flags, m[1])
				} else if len(c.flags) == 0 && len(c.sub) < 2 && commandWord.MatchString(w) && (len(c.sub) == 0 || c.sub[0] == "audit") {
					c.sub = append(c.sub, w)
				}
			}
			if len(c.sub) > 0 {
				out = append(out, c)
			}
		}
	}
	return out
}

// TestDocsSidecarCommandsExist: every privacy-sidecar command in the docs is
// a command of the built binary, and every flag it shows is one of that
// command's flags (as its --help lists them).
func TestDocsSidecarCommandsExist(t *testing.T) {
	cmds := docsSidecarCommands(t)
	if len(cmds) < 8 {
		t.Fatalf("found only %d privacy-sidecar commands in the docs", len(cmds))
	}
	help := map[string]map[string]bool{}
	for _, c := range cmds {
		key := strings.Join(c.sub, " ")
		flags, ok := help[key]
		if !ok {
			out, err := exec.Command(sidecarBin, append(c.sub, "--help")...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Usage:") {
				t.Errorf("%s: `privacy-sidecar %s --help` fails: %v\n%s", c.where, key, err, out)
				help[key] = nil
				continue
			}
			if len(c.sub) == 1 && strings.Contains(string(out), "Available Commands:") {
				t.Errorf("%s: %s needs a subcommand", c.where, key)
			}
			flags = map[string]bool{}
			for _, m := range helpFlag.FindAllStringSubmatch(string(out), -1) {
				flags[m[1]] = true
			}
			help[key] = flags
		}
		if flags == nil {
			continue
		}
		for _, f := range c.flags {
			if !flags[f] {
				t.Errorf("%s: `privacy-sidecar %s` has no flag --%s", c.where, key, f)
			}
		}
	}

	// A flag the prose names on its own (`--per-instance`, `reload --force`)
	// belongs to one of the commands the docs show.
	all := map[string]bool{}
	for _, flags := range help {
		for f := range flags {
			all[f] = true
		}
	}
	spanFlag := regexp.MustCompile(`(?:^| )--([a-z][a-z-]*)`)
	for _, path := range docscheck.Pages() {
		page, err := docscheck.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, span := range docscheck.Code(page.Prose()) {
			for _, m := range spanFlag.FindAllStringSubmatch(span, -1) {
				if !all[m[1]] {
					t.Errorf("%s: `%s` names --%s, which no privacy-sidecar command the docs show has", path, span, m[1])
				}
			}
		}
	}
}
