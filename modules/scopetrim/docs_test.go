package scopetrim

import (
	"slices"
	"strings"
	"testing"

	"github.com/dustin/go-humanize"

	"github.com/alysio/privacy-sidecar/internal/docscheck"
)

func loadPage(t *testing.T) *docscheck.Page {
	t.Helper()
	page, err := docscheck.Load("docs/scope_trim.md")
	if err != nil {
		t.Fatal(err)
	}
	return page
}

// TestDocumentedDefaultsPlaceholdersAndPolicy: the subdirective table's
// defaults are the code's, the placeholder table names what the handler
// publishes (besides {sidecar.reason}), and the example policy compiles.
func TestDocumentedDefaultsPlaceholdersAndPolicy(t *testing.T) {
	page := loadPage(t)
	defaults := map[string]string{}
	for _, tb := range page.TablesIn("Syntax") {
		col := tb.Column("Default")
		if col < 0 {
			continue
		}
		for _, row := range tb.Rows {
			if name := docscheck.Code(row[0]); len(name) == 1 {
				if v := docscheck.Code(row[col]); len(v) == 1 {
					defaults[name[0]] = v[0]
				}
			}
		}
	}
	if n, err := humanize.ParseBytes(defaults["max_body"]); err != nil || n != DefaultMaxBody {
		t.Errorf("documented max_body default %q, the code's %d bytes", defaults["max_body"], DefaultMaxBody)
	}
	if defaults["max_depth"] != "64" || DefaultMaxDepth != 64 {
		t.Errorf("documented max_depth default %q, the code's %d", defaults["max_depth"], DefaultMaxDepth)
	}

	var placeholders []string
	for _, tb := range page.TablesIn("Placeholders") {
		for _, row := range tb.Rows {
			for _, c := range docscheck.Code(row[0]) {
				if c != "{sidecar.reason}" {
					placeholders = append(placeholders, strings.Trim(c, "{}"))
				}
			}
		}
	}
	slices.Sort(placeholders)
	want := []string{PlaceholderEndpoint, PlaceholderFieldsRemoved, PlaceholderPolicy}
	if !slices.Equal(placeholders, want) {
		t.Errorf("documented placeholders %v, published %v", placeholders, want)
	}

	policies := 0
	for _, b := range page.BlocksIn("Policy files") {
		if b.Lang != "json" {
			continue
		}
		policies++
		if _, err := compilePolicy("docs/scope_trim.md", []byte(b.Text), DefaultMaxDepth); err != nil {
			t.Errorf("the documented policy does not compile: %v", err)
		}
	}
	if policies != 1 {
		t.Errorf("found %d policy examples, want 1", policies)
	}
}
