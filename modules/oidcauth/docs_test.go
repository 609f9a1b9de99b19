package oidcauth

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/alysio/privacy-sidecar/internal/docscheck"
	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

func loadPage(t *testing.T) *docscheck.Page {
	t.Helper()
	page, err := docscheck.Load("docs/oidc_auth.md")
	if err != nil {
		t.Fatal(err)
	}
	return page
}

// TestDocumentedDefaultsAreTheDefaults: every "# default X" in the syntax
// block of docs/oidc_auth.md is the value Provision gives the field.
func TestDocumentedDefaultsAreTheDefaults(t *testing.T) {
	page := loadPage(t)
	blocks := page.BlocksIn("Syntax")
	if len(blocks) == 0 {
		t.Fatal("docs/oidc_auth.md has no syntax block")
	}
	m := &OIDCAuth{Issuers: []*Issuer{{Issuer: "https://idp.example.com", Audiences: []string{"connector-api"}}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := m.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	top, issuer := jsonFields(t, m), jsonFields(t, m.Issuers[0])
	checked := 0
	for _, e := range docscheck.Syntax(blocks[0].Text) {
		value, ok := strings.CutPrefix(e.Comment, "default ")
		if !ok {
			continue // "default: ..." describes a default in words
		}
		value = strings.TrimRight(strings.Fields(value)[0], ",;")
		name := e.Path[len(e.Path)-1]
		fields := top
		if len(e.Path) == 3 && e.Path[1] == "issuer" {
			fields = issuer
		}
		got, ok := fields[name]
		if !ok {
			t.Errorf("%s: default %s documented, but the provisioned config has no field %q", strings.Join(e.Path, " "), value, name)
			continue
		}
		checked++
		var want any = value
		if d, err := caddy.ParseDuration(value); err == nil && strings.ContainsAny(value, "smh") {
			want = float64(d)
		} else if n, err := json.Number(value).Float64(); err == nil {
			want = n
		}
		if got != want {
			t.Errorf("%s: documented default %s, provisioned %v", strings.Join(e.Path, " "), value, got)
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d defaults", checked)
	}
}

func jsonFields(t *testing.T, v any) map[string]any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDocumentedReservedHeadersAndAlgorithms: the page's built-in reserved
// header list and algorithm allowlist are the code's.
func TestDocumentedReservedHeadersAndAlgorithms(t *testing.T) {
	page := loadPage(t)
	start := strings.Index(page.Text, "<!-- reserved-headers -->")
	end := strings.Index(page.Text, "<!-- /reserved-headers -->")
	if start < 0 || end < start {
		t.Fatal("docs/oidc_auth.md lost its reserved-headers markers")
	}
	if got := docscheck.Code(page.Text[start:end]); !slices.Equal(got, defaultReservedHeaders) {
		t.Errorf("the page lists reserved headers\n%v\nthe code\n%v", got, defaultReservedHeaders)
	}

	var algs []string
	for _, tb := range page.TablesIn("Syntax") {
		for _, row := range tb.Rows {
			if slices.Equal(docscheck.Code(row[0]), []string{"algorithms"}) {
				algs = strings.Fields(docscheck.Code(row[1])[0])
			}
		}
	}
	var want []string
	for a := range asymmetricAlgs {
		want = append(want, a)
	}
	slices.Sort(want)
	slices.Sort(algs)
	if !slices.Equal(algs, want) {
		t.Errorf("the page's algorithm allowlist %v, the code's %v", algs, want)
	}
}

// TestDocumentedPlaceholdersResolve: every placeholder in the page's table
// has a value after a verification.
func TestDocumentedPlaceholdersResolve(t *testing.T) {
	page := loadPage(t)
	id := &sidecar.Identity{Subject: "s", Issuer: "https://idp.example.com", Audiences: []string{"a"}, ClientID: "c",
		Scopes: []string{"x"}, Roles: []string{"r"}, Expiry: time.Now(),
		Claims: map[string]any{"org": map[string]any{"id": "o"}, "https://example.com/tenant": "t"}}
	p := newPlaceholders(id)
	n := 0
	for _, tb := range page.TablesIn("Placeholders") {
		for _, row := range tb.Rows {
			for _, code := range docscheck.Code(row[0]) {
				key := strings.Trim(code, "{}")
				key = strings.Replace(key, "<path>", "org.id", 1)
				n++
				if v, ok := p.lookup(key); !ok || v == "" {
					t.Errorf("placeholder %s has no value", code)
				}
			}
		}
	}
	if n < 9 {
		t.Fatalf("read only %d placeholders", n)
	}
}
