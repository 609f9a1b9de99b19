package scopetrim

import (
	"fmt"
	"net/url"
	"strings"
)

// maxURLLength bounds a URL the upstream sends in a header.
const maxURLLength = 4096

// urlRule is an endpoint's "redirects": which URLs the upstream may send in
// Location, Content-Location and Link. A URL passes only as a path on this
// sidecar route: it starts with one '/', has no scheme, host, fragment, dot
// segment or backslash, its path matches one of paths (the same globs as
// match.path, matched on the decoded path as endpoints are), and every
// query parameter is one of query. Query values are not judged, as the
// values of allowed body fields are not: list only parameters whose values
// carry no personal data (a cursor, a page number).
type urlRule struct {
	paths [][]string // each split at "*"
	query map[string]bool
}

func compileURLRule(f *redirectsFile) (*urlRule, error) {
	if len(f.Paths) == 0 {
		return nil, fmt.Errorf("paths is empty; list the paths on this route the upstream may redirect or link to, such as %q", "/v1/contacts")
	}
	rule := &urlRule{query: make(map[string]bool, len(f.Query))}
	for _, p := range f.Paths {
		if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
			return nil, fmt.Errorf("path %q must start with a single /: redirects stay on this route", p)
		}
		if strings.Contains(p, "**") || hasDotSegment(strings.ReplaceAll(p, "*", "x")) {
			return nil, fmt.Errorf("path %q has \"**\" or a dot segment", p)
		}
		rule.paths = append(rule.paths, strings.Split(p, "*"))
	}
	for _, q := range f.Query {
		if q == "" || strings.ContainsAny(q, "&=;#? \t") {
			return nil, fmt.Errorf("query parameter %q is not a parameter name", q)
		}
		rule.query[q] = true
	}
	return rule, nil
}

// allows reports whether raw is a URL the rule lets through. A nil rule
// allows nothing.
func (u *urlRule) allows(raw string) bool {
	if u == nil || len(raw) == 0 || len(raw) > maxURLLength || raw[0] != '/' || (len(raw) > 1 && raw[1] == '/') {
		return false
	}
	for i := 0; i < len(raw); i++ {
		// no spaces, controls, non-ASCII, backslash or fragment: what a
		// client might read differently than this check
		if c := raw[i]; c <= ' ' || c >= 0x7f || c == '\\' || c == '#' {
			return false
		}
	}
	parsed, err := url.ParseRequestURI(raw)
	if err != nil || parsed.Scheme != "" || parsed.Host != "" || parsed.Opaque != "" || parsed.User != nil {
		return false
	}
	if hasDotSegment(parsed.Path) || !u.matchesPath(parsed.Path) {
		return false
	}
	if parsed.RawQuery == "" {
		return true // "/path?" carries nothing
	}
	values, err := url.ParseQuery(parsed.RawQuery)
	if err != nil {
		return false
	}
	for name := range values {
		if !u.query[name] {
			return false
		}
	}
	return true
}

func (u *urlRule) matchesPath(p string) bool {
	for _, parts := range u.paths {
		if globMatch(parts, p) {
			return true
		}
	}
	return false
}

// checkLink returns the Link header values rebuilt from what passes: each
// link-value (RFC 8288 section 3) must parse, its target must pass rule, and
// it must have a rel of registered relation types (lower-case tokens such as
// next, prev, first, last). Only rel is kept: other parameters (title,
// anchor, hreflang...) are free text or point elsewhere. ok is false when any
// link fails: the whole header is then dropped.
func checkLink(values []string, rule *urlRule) (out []string, ok bool) {
	var b strings.Builder
	for _, v := range values {
		links, ok := parseLinks(v)
		if !ok {
			return nil, false
		}
		for _, l := range links {
			if !rule.allows(l.target) || !validRel(l.rel) {
				return nil, false
			}
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString("<" + l.target + `>; rel="` + l.rel + `"`)
		}
	}
	if b.Len() == 0 {
		return nil, false
	}
	return []string{b.String()}, true
}

type link struct {
	target, rel string
}

// maxLinks bounds the links of one header value.
const maxLinks = 32

// parseLinks parses one Link field value: `<target>; param=value; ...`,
// link-values separated by commas. Parameter values are tokens or quoted
// strings; a comma inside a quoted string or the target does not separate.
func parseLinks(v string) ([]link, bool) {
	var links []link
	i := 0
	skipOWS := func() {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
	}
	for {
		skipOWS()
		for i < len(v) && v[i] == ',' { // empty list elements are allowed (RFC 9110 5.6.1)
			i++
			skipOWS()
		}
		if i == len(v) {
			return links, len(links) > 0
		}
		if v[i] != '<' || len(links) == maxLinks {
			return nil, false
		}
		end := strings.IndexByte(v[i:], '>')
		if end < 0 {
			return nil, false
		}
		l := link{target: v[i+1 : i+end]}
		i += end + 1
		relSeen := false
		for {
			skipOWS()
			if i == len(v) || v[i] == ',' {
				break
			}
			if v[i] != ';' {
				return nil, false
			}
			i++
			skipOWS()
			start := i
			for i < len(v) && isTokenByte(v[i]) {
				i++
			}
			name := strings.ToLower(v[start:i])
			if name == "" {
				return nil, false
			}
			skipOWS()
			var value string
			if i < len(v) && v[i] == '=' {
				i++
				skipOWS()
				var ok bool
				if value, ok = paramValue(v, &i); !ok {
					return nil, false
				}
			}
			if name == "rel" {
				if relSeen { // RFC 8288 3.3: only the first rel counts; refuse the ambiguity
					return nil, false
				}
				relSeen, l.rel = true, value
			}
		}
		links = append(links, l)
	}
}

// paramValue reads a token or a quoted string at v[*i:].
func paramValue(v string, i *int) (string, bool) {
	if *i < len(v) && v[*i] == '"' {
		var b strings.Builder
		for j := *i + 1; j < len(v); j++ {
			switch c := v[j]; c {
			case '"':
				*i = j + 1
				return b.String(), true
			case '\\':
				if j+1 == len(v) {
					return "", false
				}
				j++
				b.WriteByte(v[j])
			default:
				b.WriteByte(c)
			}
		}
		return "", false
	}
	start := *i
	for *i < len(v) && isTokenByte(v[*i]) {
		*i++
	}
	return v[start:*i], *i > start
}

// validRel accepts one or more space-separated registered relation types:
// lower-case letters, digits, '.' and '-' (RFC 8288 2.1.1), at most 64
// bytes. Extension types are URIs, which could point anywhere.
func validRel(rel string) bool {
	if rel == "" || len(rel) > 64 {
		return false
	}
	for _, t := range strings.Split(rel, " ") {
		if t == "" || t[0] < 'a' || t[0] > 'z' {
			return false
		}
		for i := 0; i < len(t); i++ {
			c := t[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
				return false
			}
		}
	}
	return true
}

func isTokenByte(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
