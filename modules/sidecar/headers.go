package sidecar

import (
	"net/http"
	"strings"
)

// Header names are compared the way the most lenient upstream reads them:
// ASCII case is ignored, and '_' and '.' are read as '-'. CGI and FastCGI
// turn X-User into HTTP_X_USER, so X_User reaches such a backend as the same
// variable, and PHP folds '.' the same way. Caddy drops such names by default
// for this reason unless a server allowlists them (expected_underscore_headers
// and expected_dot_headers, GHSA-f59h-q822-g45g and GHSA-49wc-4hcv-v58q; see
// modules/caddyhttp/server.go). The sidecar's modules do not rely on that
// default: a guard that compares names more strictly than its upstream lets a
// disguised copy through.

// FoldHeaderByte is the folding rule for one byte of a header name: ASCII
// letters in lower case, '_' and '.' as '-'.
func FoldHeaderByte(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + ('a' - 'A')
	case c == '_', c == '.':
		return '-'
	}
	return c
}

// FoldHeaderName returns name under the folding rule ("X_User.ID" ->
// "x-user-id").
func FoldHeaderName(name string) string {
	b := make([]byte, len(name))
	for i := 0; i < len(name); i++ {
		b[i] = FoldHeaderByte(name[i])
	}
	return string(b)
}

// SameHeaderName reports whether a and b name the same header under the
// folding rule. It does not allocate.
func SameHeaderName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if FoldHeaderByte(a[i]) != FoldHeaderByte(b[i]) {
			return false
		}
	}
	return true
}

// foldBufSize is the longest name folded on the stack; longer ones are
// folded into a new string (rare: no usual header name comes close).
const foldBufSize = 128

// HeaderNames is a set of header names under the folding rule: exact names
// ("X-Tenant-ID") and prefixes written with a trailing '*' ("X-Auth-*").
// It is built once, at provision, and only read afterwards, so one set may
// serve concurrent requests.
type HeaderNames struct {
	exact    map[string]int // folded name -> rule index
	prefixes []prefixRule
	rules    []string // each rule as recorded: canonical name, or the pattern
	matchFn  func(string) (string, bool)
	// exactLens has bit n set when an exact name is n bytes long (n < 256;
	// longExact for longer ones), and minPrefix is the shortest prefix (-1
	// without prefixes): most names are ruled out by their length alone,
	// before they are folded.
	exactLens [4]uint64
	longExact bool
	minPrefix int
}

type prefixRule struct {
	folded string
	rule   int
}

// NewHeaderNames compiles names and prefix patterns. Blank entries are
// skipped and repeated ones kept once.
func NewHeaderNames(patterns ...string) *HeaderNames {
	n := &HeaderNames{exact: make(map[string]int, len(patterns)), minPrefix: -1}
	n.matchFn = n.Match // made once: a method value per request would allocate
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			folded := FoldHeaderName(prefix)
			dup := false
			for _, q := range n.prefixes {
				dup = dup || q.folded == folded
			}
			if !dup {
				n.prefixes = append(n.prefixes, prefixRule{folded: folded, rule: len(n.rules)})
				n.rules = append(n.rules, p)
				if n.minPrefix < 0 || len(folded) < n.minPrefix {
					n.minPrefix = len(folded)
				}
			}
			continue
		}
		folded := FoldHeaderName(p)
		if _, dup := n.exact[folded]; !dup {
			n.exact[folded] = len(n.rules)
			n.rules = append(n.rules, http.CanonicalHeaderKey(p))
			if l := len(folded); l < 256 {
				n.exactLens[l>>6] |= 1 << (l & 63)
			} else {
				n.longExact = true
			}
		}
	}
	return n
}

// match returns the index of the first rule that name matches, or -1.
// Names up to foldBufSize bytes are folded on the stack: a map index and a
// comparison with string(bytes) do not allocate.
func (n *HeaderNames) match(name string) int {
	if n == nil || !n.mayMatch(len(name)) {
		return -1
	}
	var buf [foldBufSize]byte
	var folded []byte
	if len(name) <= len(buf) {
		folded = buf[:len(name)]
		for i := 0; i < len(name); i++ {
			folded[i] = FoldHeaderByte(name[i])
		}
	} else {
		folded = []byte(FoldHeaderName(name))
	}
	if i, ok := n.exact[string(folded)]; ok {
		return i
	}
	for _, p := range n.prefixes {
		if len(folded) >= len(p.folded) && string(folded[:len(p.folded)]) == p.folded {
			return p.rule
		}
	}
	return -1
}

// mayMatch reports whether a name of l bytes could be in the set.
func (n *HeaderNames) mayMatch(l int) bool {
	if n.minPrefix >= 0 && l >= n.minPrefix {
		return true
	}
	if l >= 256 {
		return n.longExact
	}
	return n.exactLens[l>>6]&(1<<(l&63)) != 0
}

// Matches reports whether name is in the set under the folding rule.
func (n *HeaderNames) Matches(name string) bool { return n.match(name) >= 0 }

// Match returns the rule that name matches, as the set records it: the
// canonical form of an exact name, or the pattern of a prefix.
func (n *HeaderNames) Match(name string) (rule string, ok bool) {
	if i := n.match(name); i >= 0 {
		return n.rules[i], true
	}
	return "", false
}

// Scrub keeps every header of the set out of r: headers in any spelling,
// Connection tokens that name one (which would make reverse_proxy strip a
// header the sidecar set), and trailers. Each is recorded in r's decision as
// a spoofed header.
func (n *HeaderNames) Scrub(r *http.Request) {
	d := DecisionFrom(r)
	n.RemoveHeaders(r.Header, d)
	n.CleanConnection(r.Header, d)
	n.ScrubTrailers(r)
}

// RemoveHeaders deletes every header of h whose name is in the set and
// records the names, as the client spelled them, as spoofed headers. Its
// cost is linear in the number of headers.
func (n *HeaderNames) RemoveHeaders(h http.Header, d *Decision) {
	var removed nameSample
	for name := range h {
		if n.match(name) >= 0 {
			delete(h, name)
			removed.add(name)
		}
	}
	d.addSpoofedSample(&removed, "")
}

// CleanConnection removes from the Connection header every token that names
// a header of the set. reverse_proxy deletes the headers a client names in
// Connection after every handler before it ran (RFC 9110 7.6.1), so a client
// could otherwise strip the headers the sidecar set. An emptied Connection
// header is deleted.
//
// The tokens are the client's text, not header names it sent, so they are
// not recorded one by one: each rule they matched is recorded once, as
// "Connection: <rule>". The cost is linear in the header's length.
func (n *HeaderNames) CleanConnection(h http.Header, d *Decision) {
	values, ok := h["Connection"]
	if !ok || !n.anyToken(values) {
		return
	}
	seen := make([]bool, len(n.rules))
	kept := make([]string, 0, len(values))
	var b strings.Builder
	for _, v := range values {
		b.Reset()
		for token := range strings.SplitSeq(v, ",") {
			token = strings.TrimSpace(token)
			if token == "" {
				continue
			}
			if i := n.match(token); i >= 0 {
				if !seen[i] {
					seen[i] = true
					d.AddSpoofedHeader("Connection: " + n.rules[i])
				}
				continue
			}
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(token)
		}
		if b.Len() > 0 {
			kept = append(kept, b.String())
		}
	}
	if len(kept) == 0 {
		delete(h, "Connection")
		return
	}
	h["Connection"] = kept
}

// anyToken reports whether a Connection header names a header of the set,
// without allocating: most requests have nothing to clean.
func (n *HeaderNames) anyToken(values []string) bool {
	for _, v := range values {
		for token := range strings.SplitSeq(v, ",") {
			if token = strings.TrimSpace(token); token != "" && n.match(token) >= 0 {
				return true
			}
		}
	}
	return false
}

// ScrubTrailers keeps the set's headers out of r's trailers, recording each
// rule matched as "Trailer: <rule>"; see the package function ScrubTrailers.
func (n *HeaderNames) ScrubTrailers(r *http.Request) {
	scrubTrailers(r, n.matchFn)
}
