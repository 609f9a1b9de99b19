package docscheck

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitRowKeepsCodeAndEscapedPipes(t *testing.T) {
	got := SplitRow("| `a|b` | c \\| d | `e` |")
	if want := []string{"`a|b`", "c | d", "`e`"}; !slices.Equal(got, want) {
		t.Fatalf("SplitRow = %q, want %q", got, want)
	}
}

func TestSyntaxNestsAndReadsComments(t *testing.T) {
	entries := Syntax("d {\n\tissuer <url> { # repeatable\n\t\taudience <aud> # required\n\t}\n\tleeway <d> # default 30s\n}\n")
	var paths []string
	for _, e := range entries {
		paths = append(paths, strings.Join(e.Path, " ")+"|"+strings.Join(e.Args, ",")+"|"+e.Comment)
	}
	want := []string{"d||", "d issuer|<url>|repeatable", "d issuer audience|<aud>|required", "d leeway|<d>|default 30s"}
	if !slices.Equal(paths, want) {
		t.Fatalf("Syntax = %q, want %q", paths, want)
	}
}

func TestAnchorIsGitHubs(t *testing.T) {
	for heading, want := range map[string]string{
		"Pseudonyms and erasure (crypto-shredding)": "pseudonyms-and-erasure-crypto-shredding",
		"oidc_auth benchmark":                       "oidc_auth-benchmark",
		"Metrics, alerts and the dashboard":         "metrics-alerts-and-the-dashboard",
		"`audit_log`: one record per request":       "audit_log-one-record-per-request",
	} {
		if got := Anchor(heading); got != want {
			t.Errorf("Anchor(%q) = %q, want %q", heading, got, want)
		}
	}
}

func TestLoadReadsBlocksAndTablesWithTheirSection(t *testing.T) {
	p, err := Load("docs/reasons.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Blocks) == 0 || len(p.Tables) != 1 || p.Tables[0].Section != "Refusals: status and reason codes" || p.Tables[0].Column("Reason") != 1 {
		t.Fatalf("blocks %d, tables %+v", len(p.Blocks), p.Tables)
	}
	if strings.Contains(p.Prose(), "```") {
		t.Fatal("Prose kept a fence")
	}
}
