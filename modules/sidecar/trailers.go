package sidecar

import (
	"io"
	"net/http"
)

// ScrubTrailers keeps headers whose names match out of the request's
// trailers, recording each one removed as "Trailer: <name>". Modules with a
// HeaderNames set use its ScrubTrailers method, which records the rule
// instead; both run the one implementation below.
func ScrubTrailers(r *http.Request, matches func(name string) bool) {
	scrubTrailers(r, func(name string) (string, bool) { return name, matches(name) })
}

// scrubTrailers removes matching trailers. reverse_proxy forwards request
// trailers, and net/http merges every trailer the client sends into
// r.Trailer when the body ends, so declared names are removed now and the
// rest when the body reaches EOF, before anyone downstream copies them.
// Identity and tenant headers must arrive only as headers the sidecar set.
// The cost is linear in the number of trailers.
func scrubTrailers(r *http.Request, match func(name string) (rule string, ok bool)) {
	decision := DecisionFrom(r)
	for name := range r.Trailer {
		if rule, ok := match(name); ok {
			delete(r.Trailer, name)
			decision.AddSpoofedHeader("Trailer: " + rule)
		}
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerScrubber{ReadCloser: r.Body, req: r, match: match}
	}
}

// trailerScrubber deletes matching trailers as soon as the body reports EOF.
type trailerScrubber struct {
	io.ReadCloser
	req   *http.Request
	match func(string) (string, bool)
}

func (s *trailerScrubber) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	if err == io.EOF {
		for name := range s.req.Trailer {
			if _, ok := s.match(name); ok {
				delete(s.req.Trailer, name)
			}
		}
	}
	return n, err
}
