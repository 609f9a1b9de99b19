package sidecar

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
)

// oracleFold is the folding rule written independently of FoldHeaderByte.
func oracleFold(name string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
}

func TestSameHeaderName(t *testing.T) {
	for _, n := range []string{"X-Tenant-ID", "x-tenant-id", "X_Tenant_ID", "x-tenant_id", "X_TENANT-ID", "X.Tenant.ID", "x-tenant.id", "x.TENANT_id"} {
		if !SameHeaderName(n, "X-Tenant-Id") || FoldHeaderName(n) != "x-tenant-id" {
			t.Errorf("%q not folded to X-Tenant-Id", n)
		}
	}
	for _, n := range []string{"X-Tenant-IDs", "X-Tenant", "X:Tenant:ID", "X Tenant ID", "XTenantID", "X-Tenant-ıD"} {
		if SameHeaderName(n, "X-Tenant-Id") {
			t.Errorf("%q folded to X-Tenant-Id", n)
		}
	}
}

func TestHeaderNamesMatch(t *testing.T) {
	n := NewHeaderNames("X-Auth-*", "x_subject", " X-Tenant-ID ", "", "X-Auth-*", "x-tenant-id")
	for name, want := range map[string]string{
		"X-Auth-Subject": "X-Auth-*", "x.auth.client": "X-Auth-*", "X_AUTH_": "X-Auth-*",
		"X-Subject": "X_subject", "x.subject": "X_subject",
		"X-Tenant-ID": "X-Tenant-Id", "X.Tenant.Id": "X-Tenant-Id",
		"X-Auth" + strings.Repeat("-a", 200): "X-Auth-*", // longer than the stack buffer
	} {
		if rule, ok := n.Match(name); !ok || rule != want {
			t.Errorf("Match(%q) = %q, %v; want %q", name, rule, ok, want)
		}
	}
	for _, name := range []string{"X-Auth", "X-Subjects", "Accept", "", strings.Repeat("x", 300)} {
		if n.Matches(name) {
			t.Errorf("%q matched", name)
		}
	}
	if len(n.rules) != 3 {
		t.Fatalf("rules %q: repeated entries must be kept once", n.rules)
	}
	long := NewHeaderNames(strings.Repeat("x_", 150), "X-Short")
	if !long.Matches(strings.Repeat("X-", 150)) || long.Matches(strings.Repeat("X-", 149)) || !long.Matches("x.short") || long.Matches("X-Shorts") {
		t.Fatal("exact names are matched by length first; a long one must still match")
	}
	var none *HeaderNames
	if none.Matches("X-Auth-Subject") {
		t.Fatal("a nil set matches nothing")
	}
}

func TestHeaderNamesMatchDoesNotAllocate(t *testing.T) {
	n := NewHeaderNames("X-Auth-*", "X-Tenant-ID", "X-User*")
	if avg := testing.AllocsPerRun(100, func() {
		n.Matches("x_tenant_id")
		n.Matches("X.Auth.Subject")
		n.Matches("Accept-Encoding")
	}); avg != 0 {
		t.Fatalf("%.1f allocations per match", avg)
	}
}

func TestRemoveHeadersRecordsSortedNamesOnly(t *testing.T) {
	n := NewHeaderNames("X-Auth-*")
	h := http.Header{"X-Auth-Subject": {"alice"}, "x_auth_subject": {"b"}, "X.Auth.Client": {"c"}, "Accept": {"*/*"}}
	d := new(Decision)
	n.RemoveHeaders(h, d)
	if got := strings.Join(d.SpoofedHeaders, ","); got != "X-Auth-Subject,X.Auth.Client,x_auth_subject" {
		t.Fatalf("recorded %q", got)
	}
	if len(h) != 1 || h.Get("Accept") != "*/*" {
		t.Fatalf("left %v", h)
	}
}

// TestRemoveHeadersBounded: 40,000 reserved names are all removed, and the
// record lists the alphabetically first MaxRecordedNames and counts the rest.
func TestRemoveHeadersBounded(t *testing.T) {
	n := NewHeaderNames("X-User*")
	h := http.Header{"Accept": {"*/*"}}
	var all []string
	for i := range 40000 {
		name := fmt.Sprintf("X-User-%05d", i)
		h[name] = []string{"v"}
		all = append(all, name)
	}
	d := new(Decision)
	n.RemoveHeaders(h, d)
	sort.Strings(all)
	if len(h) != 1 || !slices.Equal(d.SpoofedHeaders, all[:MaxRecordedNames]) || d.SpoofedHeadersOmitted != 40000-MaxRecordedNames {
		t.Fatalf("left %d headers; recorded %q and %d more", len(h), d.SpoofedHeaders, d.SpoofedHeadersOmitted)
	}
}

func TestNameSampleKeepsFirstNames(t *testing.T) {
	var s nameSample
	var all []string
	for i := range 100 {
		name := fmt.Sprintf("n%03d", (i*37)%100) // every name once, out of order
		s.add(name)
		all = append(all, name)
	}
	sort.Strings(all)
	if !slices.Equal(s.names, all[:MaxRecordedNames]) || s.more != 100-MaxRecordedNames {
		t.Fatalf("sample %q, %d more", s.names, s.more)
	}
}

func TestCleanConnection(t *testing.T) {
	n := NewHeaderNames("X-Auth-*", "X-Tenant-ID")
	tests := []struct {
		name     string
		in       []string
		want     []string // nil: the header is gone
		recorded string
	}{
		{"tokens of two rules", []string{"keep-alive, x-auth-subject", "X_Auth_Client", "X.Tenant.ID , close"}, []string{"keep-alive", "close"}, "Connection: X-Auth-*,Connection: X-Tenant-Id"},
		{"only a reserved name", []string{"X-Auth-Subject"}, nil, "Connection: X-Auth-*"},
		{"empty tokens", []string{" , x-tenant-id ,,"}, nil, "Connection: X-Tenant-Id"},
		{"nothing to clean", []string{"close"}, []string{"close"}, ""},
		{"no token is a prefix of a name", []string{"X-Auth, X-Tenant"}, []string{"X-Auth, X-Tenant"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Connection": slices.Clone(tt.in)}
			d := new(Decision)
			n.CleanConnection(h, d)
			if got, ok := h["Connection"]; !slices.Equal(got, tt.want) || ok != (tt.want != nil) {
				t.Fatalf("Connection %q (present %v), want %q", got, ok, tt.want)
			}
			if got := strings.Join(d.SpoofedHeaders, ","); got != tt.recorded {
				t.Fatalf("recorded %q, want %q", got, tt.recorded)
			}
		})
	}
}

// TestCleanConnectionBounded: a Connection header naming 40,000 reserved
// headers is emptied with one record entry per rule, the client's tokens
// never recorded.
func TestCleanConnectionBounded(t *testing.T) {
	n := NewHeaderNames("X-User*", "X-Auth-*")
	var b strings.Builder
	for i := range 40000 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "X-User-%d", i)
	}
	b.WriteString(", x.auth.subject, keep-alive")
	h := http.Header{"Connection": {b.String()}}
	d := new(Decision)
	n.CleanConnection(h, d)
	if got := h.Get("Connection"); got != "keep-alive" {
		t.Fatalf("Connection %q", got)
	}
	if !slices.Equal(d.SpoofedHeaders, []string{"Connection: X-User*", "Connection: X-Auth-*"}) || d.SpoofedHeadersOmitted != 0 {
		t.Fatalf("recorded %q, %d more", d.SpoofedHeaders, d.SpoofedHeadersOmitted)
	}
}

func TestAddSpoofedHeaderCaps(t *testing.T) {
	d := new(Decision)
	for i := range 1000 {
		d.AddSpoofedHeader(fmt.Sprint("name", i%40))
	}
	if len(d.SpoofedHeaders) != MaxRecordedNames || d.SpoofedHeadersOmitted != 1000-MaxRecordedNames*25 {
		t.Fatalf("%d names listed, %d omitted", len(d.SpoofedHeaders), d.SpoofedHeadersOmitted)
	}
	for range 3 {
		d.AddHeaderRemoved("Set-Cookie")
	}
	if !slices.Equal(d.HeadersRemoved, []string{"Set-Cookie"}) || d.HeadersRemovedOmitted != 0 {
		t.Fatalf("headers removed %q, %d more", d.HeadersRemoved, d.HeadersRemovedOmitted)
	}
}

func TestScrubRemovesEverySpelling(t *testing.T) {
	n := NewHeaderNames("X-Auth-Subject")
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("body"))
	r.Header = http.Header{"X-Auth-Subject": {"a"}, "X_auth_subject": {"b"}, "X.Auth.Subject": {"c"}, "Connection": {"x_auth_subject"}}
	r.Trailer = http.Header{"X-Auth-Subject": nil}
	r, d := WithDecision(r)
	n.Scrub(r)
	if len(r.Header) != 0 || len(r.Trailer) != 0 {
		t.Fatalf("left headers %v, trailers %v", r.Header, r.Trailer)
	}
	want := []string{"X-Auth-Subject", "X.Auth.Subject", "X_auth_subject", "Connection: X-Auth-Subject", "Trailer: X-Auth-Subject"}
	if !slices.Equal(d.SpoofedHeaders, want) {
		t.Fatalf("recorded %q, want %q", d.SpoofedHeaders, want)
	}
}

// FuzzCleanConnection: whatever the Connection header, no token that the set
// matches survives, every other token survives in order, and the record
// holds only rules, never the client's text.
func FuzzCleanConnection(f *testing.F) {
	for _, seed := range []string{"keep-alive, X-Auth-Subject", "x_auth_subject", " , ,", "X.AUTH.x,close,X-Tenant-ID", "\t x-tenant-id\t", "Upgrade"} {
		f.Add(seed, "close")
	}
	n := NewHeaderNames("X-Auth-*", "X-Tenant-ID")
	f.Fuzz(func(t *testing.T, v1, v2 string) {
		h := http.Header{"Connection": {v1, v2}}
		d := new(Decision)
		n.CleanConnection(h, d)
		var want []string
		for _, v := range []string{v1, v2} {
			for tok := range strings.SplitSeq(v, ",") {
				tok = strings.TrimSpace(tok)
				f := oracleFold(tok)
				if tok == "" || strings.HasPrefix(f, "x-auth-") || f == "x-tenant-id" {
					continue
				}
				want = append(want, tok)
			}
		}
		var got []string
		for _, v := range h["Connection"] {
			for tok := range strings.SplitSeq(v, ",") {
				if tok = strings.TrimSpace(tok); tok != "" { // an untouched header keeps its empty tokens
					got = append(got, tok)
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Connection %q -> %q, want tokens %q", []string{v1, v2}, h["Connection"], want)
		}
		for _, rec := range d.SpoofedHeaders {
			if rec != "Connection: X-Auth-*" && rec != "Connection: X-Tenant-Id" {
				t.Fatalf("recorded %q", rec)
			}
		}
	})
}

func TestAddHeadersRemovedListsFirstNames(t *testing.T) {
	var names []string
	for i := range 40 {
		names = append(names, fmt.Sprintf("X-H-%02d", 39-i))
	}
	d := new(Decision)
	d.AddHeadersRemoved(names)
	if len(d.HeadersRemoved) != MaxRecordedNames || d.HeadersRemoved[0] != "X-H-00" || d.HeadersRemoved[15] != "X-H-15" || d.HeadersRemovedOmitted != 40-MaxRecordedNames {
		t.Fatalf("listed %q, %d more", d.HeadersRemoved, d.HeadersRemovedOmitted)
	}
}

// TestScrubTrailersFunc: the function form records the trailer's name, and
// removes an undeclared trailer once the body ends.
func TestScrubTrailersFunc(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, d := WithDecision(r)
		ScrubTrailers(r, func(name string) bool { return SameHeaderName(name, "X-Tenant-Id") })
		_, _ = io.Copy(io.Discard, r.Body)
		if len(r.Trailer) != 1 || r.Trailer.Get("X-Other") != "kept" || !slices.Equal(d.SpoofedHeaders, []string{"Trailer: X-Tenant-Id"}) {
			t.Errorf("trailers %v, recorded %q", r.Trailer, d.SpoofedHeaders)
		}
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Tenant-ID, X-Other\r\nConnection: close\r\n\r\n"+
		"4\r\nbody\r\n0\r\nX-Tenant-ID: globex\r\nX_Tenant_ID: globex\r\nX-Other: kept\r\n\r\n")
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatal(err)
	}
}
