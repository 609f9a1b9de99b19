package tenantguard

import (
	"slices"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/docscheck"
)

func loadPage(t *testing.T) *docscheck.Page {
	t.Helper()
	page, err := docscheck.Load("docs/tenant_guard.md")
	if err != nil {
		t.Fatal(err)
	}
	return page
}

// TestDocumentedDefaultsPlaceholdersAndRegistry: the syntax block's
// defaults are the code's, the placeholder table names what the handler
// publishes, and the example registry parses.
func TestDocumentedDefaultsPlaceholdersAndRegistry(t *testing.T) {
	page := loadPage(t)
	blocks := page.BlocksIn("Syntax")
	if len(blocks) == 0 {
		t.Fatal("docs/tenant_guard.md has no syntax block")
	}
	defaults := map[string]string{}
	for _, e := range docscheck.Syntax(blocks[0].Text) {
		if v, ok := strings.CutPrefix(e.Comment, "default "); ok {
			defaults[e.Path[len(e.Path)-1]] = v
		}
	}
	if defaults["claim"] != DefaultClaim || defaults["header"] != DefaultHeader || len(defaults) != 2 {
		t.Errorf("documented defaults %v; the code's are claim %s, header %s", defaults, DefaultClaim, DefaultHeader)
	}

	var placeholders []string
	for _, tb := range page.TablesIn("Decision record and placeholders") {
		for _, row := range tb.Rows {
			for _, c := range docscheck.Code(row[0]) {
				placeholders = append(placeholders, strings.Trim(c, "{}"))
			}
		}
	}
	slices.Sort(placeholders)
	want := []string{PlaceholderGuardConnector, PlaceholderGuardTenant, PlaceholderTenant}
	slices.Sort(want)
	if !slices.Equal(placeholders, want) {
		t.Errorf("documented placeholders %v, published %v", placeholders, want)
	}

	registries := 0
	for _, b := range page.BlocksIn("Tenant registry") {
		if b.Lang != "json" {
			continue
		}
		registries++
		if _, err := ParseRegistry("docs/tenant_guard.md", []byte(b.Text)); err != nil {
			t.Errorf("the documented registry does not parse: %v", err)
		}
	}
	if registries != 1 {
		t.Errorf("found %d registry examples, want 1", registries)
	}
}
