package integration

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Received is one request as the upstream saw it.
type Received struct {
	Method string
	Path   string // with the query string
	Header http.Header
	Body   []byte
	// Trailer holds the request trailers, read after the body.
	Trailer http.Header
}

// Upstream is a connector stand-in that records every request it receives.
type Upstream struct {
	// URL is http://127.0.0.1:port.
	URL string
	// Addr is the host:port, for reverse_proxy.
	Addr string

	mu       sync.Mutex
	received []Received
}

// StartUpstream runs an upstream on loopback that records each request and
// then calls handler (nil answers 200 {"ok":true}). It stops when the test ends.
func StartUpstream(t testing.TB, handler http.HandlerFunc) *Upstream {
	t.Helper()
	if handler == nil {
		handler = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":true}`)
		}
	}
	u := new(Upstream)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.received = append(u.received, Received{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body, Trailer: r.Trailer.Clone()})
		u.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	u.URL = srv.URL
	u.Addr = strings.TrimPrefix(srv.URL, "http://")
	return u
}

// Calls is how many requests the upstream received.
func (u *Upstream) Calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.received)
}

// Received returns a copy of every request received, oldest first.
func (u *Upstream) Received() []Received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Received(nil), u.received...)
}

// Last returns the newest request, failing the test when there is none.
func (u *Upstream) Last(t testing.TB) Received {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.received) == 0 {
		t.Fatal("the upstream received no request")
	}
	return u.received[len(u.received)-1]
}

// Reset forgets what was received.
func (u *Upstream) Reset() {
	u.mu.Lock()
	u.received = nil
	u.mu.Unlock()
}

// AssertNotCalled fails the test if the upstream received any request.
func (u *Upstream) AssertNotCalled(t testing.TB) {
	t.Helper()
	if n := u.Calls(); n != 0 {
		t.Fatalf("the upstream was called %d time(s); it must never be reached here", n)
	}
}
