// Package docscheck reads the repository's Markdown documentation (README.md
// and docs/*.md) for the tests that hold it to the code: its fenced code
// blocks and its tables, each with the heading it stands under. It is used
// by tests only.
package docscheck

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
)

// Block is a fenced code block.
type Block struct {
	// Lang is the info string after the opening fence ("caddyfile", "sh", "").
	Lang string
	// Text is the block's content, without the fences.
	Text string
	// Section is the nearest heading above the block, without its #s.
	Section string
	// Line is the line number of the opening fence.
	Line int
}

// Table is a pipe table.
type Table struct {
	// Section is the nearest heading above the table, without its #s.
	Section string
	// Header holds the header cells, trimmed.
	Header []string
	// Rows holds the body rows' cells, trimmed; a row has as many cells as
	// its line has.
	Rows [][]string
	// Line is the line number of the header.
	Line int
}

// Page is one Markdown file.
type Page struct {
	// Path is the file's path relative to the repository root.
	Path   string
	Text   string
	Blocks []Block
	Tables []Table
}

// Root is the repository's top directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// Pages lists README.md and every docs/*.md, relative to the root.
func Pages() []string {
	pages, _ := filepath.Glob(filepath.Join(Root(), "docs", "*.md"))
	out := []string{"README.md"}
	for _, p := range pages {
		rel, _ := filepath.Rel(Root(), p)
		out = append(out, rel)
	}
	return out
}

// Load reads the page at path (relative to the root).
func Load(path string) (*Page, error) {
	data, err := os.ReadFile(filepath.Join(Root(), path))
	if err != nil {
		return nil, err
	}
	p := &Page{Path: path, Text: string(data)}
	lines := strings.Split(p.Text, "\n")
	section := ""
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "```"):
			fence := trimmed[:strings.LastIndex(trimmed, "`")+1]
			b := Block{Lang: strings.TrimSpace(trimmed[len(fence):]), Section: section, Line: i + 1}
			indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
			var body []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != fence; i++ {
				body = append(body, strings.TrimPrefix(lines[i], indent))
			}
			b.Text = strings.Join(body, "\n") + "\n"
			p.Blocks = append(p.Blocks, b)
		case strings.HasPrefix(line, "#"):
			section = strings.TrimSpace(strings.TrimLeft(line, "#"))
		case strings.HasPrefix(trimmed, "|") && i+1 < len(lines) && isSeparator(lines[i+1]):
			t := Table{Section: section, Header: SplitRow(trimmed), Line: i + 1}
			for i += 2; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "|"); i++ {
				t.Rows = append(t.Rows, SplitRow(strings.TrimSpace(lines[i])))
			}
			i--
			p.Tables = append(p.Tables, t)
		}
	}
	return p, nil
}

var separator = regexp.MustCompile(`^\s*\|(\s*:?-+:?\s*\|)+\s*$`)

func isSeparator(line string) bool { return separator.MatchString(line) }

// SplitRow splits a table line into trimmed cells. A "|" inside backticks
// or escaped as "\|" belongs to its cell.
func SplitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	line = strings.TrimSuffix(line, "|")
	var cells []string
	var cell strings.Builder
	inCode := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && i+1 < len(line) && line[i+1] == '|':
			cell.WriteByte('|')
			i++
		case c == '`':
			inCode = !inCode
			cell.WriteByte(c)
		case c == '|' && !inCode:
			cells = append(cells, strings.TrimSpace(cell.String()))
			cell.Reset()
		default:
			cell.WriteByte(c)
		}
	}
	return append(cells, strings.TrimSpace(cell.String()))
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// Code returns the contents of the code spans in s, in order; a span that
// breaks across lines is joined with a space.
func Code(s string) []string {
	var out []string
	for _, m := range codeSpan.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.Join(strings.Fields(m[1]), " "))
	}
	return out
}

// Prose returns the page's text without its fenced code blocks, so that
// code spans can be read without the fences' backticks in the way.
func (p *Page) Prose() string {
	var b strings.Builder
	inFence := false
	for _, line := range strings.Split(p.Text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if !inFence {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// TablesIn returns the page's tables under a heading that starts with
// section.
func (p *Page) TablesIn(section string) []Table {
	var out []Table
	for _, t := range p.Tables {
		if strings.HasPrefix(t.Section, section) {
			out = append(out, t)
		}
	}
	return out
}

// BlocksIn returns the page's code blocks under a heading that starts with
// section.
func (p *Page) BlocksIn(section string) []Block {
	var out []Block
	for _, b := range p.Blocks {
		if strings.HasPrefix(b.Section, section) {
			out = append(out, b)
		}
	}
	return out
}

// Column returns the index of the header cell named name, or -1.
func (t Table) Column(name string) int {
	for i, h := range t.Header {
		if strings.EqualFold(h, name) {
			return i
		}
	}
	return -1
}

// Anchor is the fragment GitHub gives a heading: lower case, punctuation
// other than "-" and "_" removed, spaces turned into "-".
func Anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Headings returns the anchors of every heading of the page.
func (p *Page) Headings() map[string]bool {
	out := map[string]bool{}
	inFence := false
	for _, line := range strings.Split(p.Text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
		}
		if !inFence && strings.HasPrefix(line, "#") {
			out[Anchor(strings.TrimSpace(strings.TrimLeft(line, "#")))] = true
		}
	}
	return out
}

// SyntaxEntry is one line of a directive's syntax block: a subdirective
// (or the directive itself, at depth 0) with its arguments and comment.
type SyntaxEntry struct {
	// Path is the chain of names from the directive down, e.g.
	// ["oidc_auth", "issuer", "audience"].
	Path []string
	// Args are the words after the name, before any comment.
	Args []string
	// Comment is the text after "#", trimmed.
	Comment string
}

// Syntax reads a Caddyfile syntax block: every line's first word, where it
// is nested, its arguments and its comment.
func Syntax(block string) []SyntaxEntry {
	var out []SyntaxEntry
	var stack []string
	for _, line := range strings.Split(block, "\n") {
		code, comment, _ := strings.Cut(line, "#")
		words := strings.Fields(code)
		if len(words) == 0 {
			continue
		}
		if words[0] == "}" {
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		opens := words[len(words)-1] == "{"
		if opens {
			words = words[:len(words)-1]
		}
		e := SyntaxEntry{Path: append(append([]string(nil), stack...), words[0]), Args: words[1:], Comment: strings.TrimSpace(comment)}
		out = append(out, e)
		if opens {
			stack = append(stack, words[0])
		}
	}
	return out
}
