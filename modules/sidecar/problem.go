package sidecar

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Problem is an RFC 9457 problem detail with the sidecar's reason code. It is
// also the error inside the caddyhttp.HandlerError that a refusal returns.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

func (p *Problem) Error() string { return p.Reason + ": " + p.Detail }

// ContentTypeProblem is the media type of refusal bodies.
const ContentTypeProblem = "application/problem+json"

// Refuse records the refusal in the decision record, publishes the reason as
// the {sidecar.reason} placeholder and ends the request.
//
// When one of the server's handle_errors routes would handle the refusal,
// Refuse returns it as a caddyhttp.Error so that route chooses the response
// ({http.error.status_code} and {sidecar.reason} are set). Otherwise it writes
// a small problem+json body itself: a server whose only errors route is
// `handle_errors 404` would else answer a 401 with Caddy's empty error
// response, which tells a client nothing. Headers the module set before
// (WWW-Authenticate, Retry-After) go out either way. detail must never
// contain a token or a personal value.
func Refuse(w http.ResponseWriter, r *http.Request, status int, reason, detail string) error {
	DecisionFrom(r).Deny(status, reason)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("sidecar.reason", reason)
	}
	p := &Problem{
		Type:   "https://alysio.dev/sidecar/reasons#" + reason,
		Title:  http.StatusText(status),
		Status: status,
		Reason: reason,
		Detail: detail,
	}
	err := caddyhttp.Error(status, p)
	if errorRoutesHandle(r, err) {
		return err
	}
	WriteProblem(w, p)
	return nil
}

// WriteProblem writes p as the whole response.
func WriteProblem(w http.ResponseWriter, p *Problem) {
	body, err := json.Marshal(p)
	if err != nil { // cannot happen for this struct; keep the status anyway
		body = []byte(fmt.Sprintf(`{"status":%d}`, p.Status))
	}
	h := w.Header()
	h.Set("Content-Type", ContentTypeProblem)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}
