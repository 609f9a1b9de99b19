package main

import (
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/docscheck"
)

// TestDocsCommandsParse: every `go run ./integration/loadbench ...` in the
// docs passes the harness's own flag parsing, so a renamed or removed flag
// shows here.
func TestDocsCommandsParse(t *testing.T) {
	n := 0
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
			_, args, ok := strings.Cut(strings.TrimSpace(line), "go run ./integration/loadbench")
			if !ok {
				continue
			}
			n++
			if _, err := parseFlags(strings.Fields(args)); err != nil {
				t.Errorf("%s: %q: %v", path, line, err)
			}
		}
	}
	if n < 4 {
		t.Fatalf("found only %d loadbench commands in the docs", n)
	}

	// The flags docs/performance.md names on their own (`-sizes 10KB`).
	page, err := docscheck.Load("docs/performance.md")
	if err != nil {
		t.Fatal(err)
	}
	flags := 0
	for _, span := range docscheck.Code(page.Prose()) {
		if !strings.HasPrefix(span, "-") || strings.HasPrefix(span, "--") || len(span) < 2 || span[1] < 'a' || span[1] > 'z' {
			continue
		}
		flags++
		name := strings.Fields(span)[0]
		if _, err := parseFlags([]string{name}); err != nil && strings.Contains(err.Error(), "not defined") {
			t.Errorf("docs/performance.md names %s, which the harness does not define", name)
		}
	}
	if flags < 8 {
		t.Fatalf("found only %d flags in docs/performance.md", flags)
	}
}
