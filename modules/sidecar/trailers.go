package sidecar

import (
	"io"
	"net/http"
)

// ScrubTrailers keeps headers whose names match out of the request's
// trailers, recording each one removed as "Trailer: <name>". reverse_proxy
// forwards request trailers, and net/http merges every trailer the client
// sends into r.Trailer when the body ends, so declared names are removed now
// and the rest when the body reaches EOF, before anyone downstream copies
// them. Identity and tenant headers must arrive only as headers the sidecar
// set.
func ScrubTrailers(r *http.Request, matches func(name string) bool) {
	decision := DecisionFrom(r)
	trailer := r.Trailer
	for name := range trailer {
		if matches(name) {
			delete(trailer, name)
			decision.AddSpoofedHeader("Trailer: " + name)
		}
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerScrubber{ReadCloser: r.Body, req: r, matches: matches}
	}
}

// trailerScrubber deletes matching trailers as soon as the body reports EOF.
type trailerScrubber struct {
	io.ReadCloser
	req     *http.Request
	matches func(string) bool
}

func (s *trailerScrubber) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	if err == io.EOF {
		for name := range s.req.Trailer {
			if s.matches(name) {
				delete(s.req.Trailer, name)
			}
		}
	}
	return n, err
}
