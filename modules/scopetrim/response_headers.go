package scopetrim

import (
	"errors"
	"mime"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// The response header allowlist. What reaches the client of a trimmed route:
//
//   - the headers that were set before scope_trim ran (by Caddy or by
//     handlers before it, such as the header directive): the sidecar's own,
//     passed unchanged;
//   - the safe set, each upstream value checked: Content-Type (rebuilt as the
//     media type and charset), Date and Retry-After (an HTTP date or a number
//     of seconds), Vary (only names of request headers);
//   - the names an endpoint's or its policy's response_headers lists; Location,
//     Content-Location and Link only with URLs the endpoint's redirects rule
//     allows, and Location of a redirect the rule allowed;
//   - Content-Length, Cache-Control and X-Content-Type-Options, which the
//     sidecar sets itself.
//
// Every other header from the upstream (or from a handler after scope_trim)
// is dropped, counted and named in the decision record. Headers that
// describe the untrimmed body (dropHeaders) and Caddy's own Via are dropped
// without being named: no policy could allow them.

// judgeHeaders applies the allowlist to the chain's answer, writing the
// result into dst, the client's header map, which still holds what was set
// before scope_trim ran. With dst nil (an answer refused or replaced), it
// only counts and records what the allowlist drops. It runs once per answer.
func (tw *trimWriter) judgeHeaders(dst http.Header) {
	if tw.judged {
		return
	}
	tw.judged = true
	src := tw.snapshot
	if src == nil {
		src = tw.header
	}
	base := tw.ResponseWriter.Header()
	var removed []string // rare: most answers drop nothing a policy could allow
	for k, vals := range src {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue // trailers are never forwarded
		}
		out, dropped := tw.judgeHeader(k, vals, base[k])
		if dropped {
			removed = append(removed, k)
		}
		if dst == nil {
			continue
		}
		if len(out) == 0 {
			delete(dst, k)
		} else {
			dst[k] = out // the snapshot is ours alone: its slices can be shared
		}
	}
	if dst != nil {
		for k := range dst {
			if _, ok := src[k]; !ok {
				delete(dst, k) // the chain deleted it (reverse_proxy deletes Server)
			}
		}
	}
	if len(removed) > 0 {
		sidecar.DecisionFrom(tw.r).AddHeadersRemoved(removed)
		tw.ep.policy.headersRemoved.Add(float64(len(removed)))
	}
}

// judgeHeader returns the values of header k the client gets (none to drop
// it) and whether the allowlist dropped upstream values that a policy could
// have allowed. baseVals are k's values before scope_trim ran.
func (tw *trimWriter) judgeHeader(k string, vals, baseVals []string) (out []string, dropped bool) {
	if sidecarResponseHeaders[k] {
		return nil, k == "Via" && upstreamVia(vals)
	}
	if baseVals != nil && slices.Equal(vals, baseVals) {
		return vals, false
	}
	allowed, checked := tw.allowHeader(k, vals)
	if allowed && len(checked) > 0 {
		return checked, false
	}
	return baseVals, true
}

// allowHeader reports whether the allowlist names k for this answer, and the
// values that pass its check.
func (tw *trimWriter) allowHeader(k string, vals []string) (bool, []string) {
	h := &tw.ep.headers
	switch k {
	case "Content-Type":
		return true, checkContentType(vals)
	case "Date":
		return true, checkDate(vals)
	case "Retry-After":
		return true, checkRetryAfter(vals)
	case "Vary":
		return true, tw.checkVary(vals)
	case "Location", "Content-Location":
		if !h.response[k] && !(k == "Location" && isRedirect(tw.status)) {
			return false, nil
		}
		for _, v := range vals {
			if !h.redirects.allows(v) {
				return true, nil
			}
		}
		return true, vals
	case "Link":
		if !h.response[k] {
			return false, nil
		}
		out, _ := checkLink(vals, h.redirects)
		return true, out
	}
	if h.response[k] {
		return true, vals
	}
	return false, nil
}

// isRedirect reports whether status is a redirect that carries a Location
// (304 Not Modified is a 3xx that is not).
func isRedirect(status int) bool {
	return status >= 300 && status <= 399 && status != http.StatusNotModified
}

// redirectAllowed reports whether a 3xx answer's one Location is a URL the
// endpoint's redirects rule allows.
func (tw *trimWriter) redirectAllowed(h http.Header) bool {
	loc := h["Location"]
	return len(loc) == 1 && tw.ep.headers.redirects.allows(loc[0])
}

// upstreamVia reports whether Via holds more than the entry Caddy's
// reverse_proxy adds ("1.1 Caddy", reverseproxy.go finalizeResponse).
func upstreamVia(vals []string) bool {
	for _, v := range vals {
		if !strings.HasSuffix(v, " Caddy") {
			return true
		}
	}
	return false
}

// checkContentType rebuilds one media type with at most its charset: other
// parameters are free text an upstream could fill with anything.
func checkContentType(vals []string) []string {
	if len(vals) != 1 {
		return nil
	}
	switch vals[0] {
	case "application/json", "application/json; charset=utf-8", "application/x-ndjson", "application/problem+json":
		return vals // the usual values, without parsing them
	}
	media, params, err := mime.ParseMediaType(vals[0])
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return nil // with an invalid parameter, the type alone is kept: as the body was judged
	}
	var keep map[string]string
	if cs := params["charset"]; cs != "" && len(cs) <= 32 && httpguts.ValidHeaderFieldName(cs) {
		keep = map[string]string{"charset": strings.ToLower(cs)}
	}
	if out := mime.FormatMediaType(media, keep); out != "" {
		return []string{out}
	}
	return nil
}

// checkDate keeps one HTTP date.
func checkDate(vals []string) []string {
	if len(vals) == 1 {
		if _, err := http.ParseTime(vals[0]); err == nil {
			return vals
		}
	}
	return nil
}

// checkRetryAfter keeps one delay in seconds or one HTTP date (RFC 9110
// 10.2.3).
func checkRetryAfter(vals []string) []string {
	if len(vals) != 1 {
		return nil
	}
	v := vals[0]
	if v != "" && len(v) <= 10 && strings.Trim(v, "0123456789") == "" {
		return vals
	}
	return checkDate(vals)
}

// varyNames are request headers a Vary may name although the client did not
// send them.
var varyNames = map[string]bool{
	"Accept": true, "Accept-Charset": true, "Accept-Encoding": true, "Accept-Language": true,
	"Authorization": true, "Cookie": true, "Origin": true, "User-Agent": true,
}

// checkVary keeps the names that are "*", a usual request header, or a
// header of the client's own request: nothing the client did not know.
func (tw *trimWriter) checkVary(vals []string) []string {
	var kept []string
	all := true
	for _, v := range vals {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.TrimSpace(tok)
			if tok == "" {
				continue
			}
			key := http.CanonicalHeaderKey(tok)
			if tok == "*" || httpguts.ValidHeaderFieldName(tok) && (varyNames[key] || tw.r.Header[key] != nil) {
				kept = append(kept, key)
				continue
			}
			all = false
		}
	}
	switch {
	case len(kept) == 0:
		return nil
	case all && len(vals) == 1:
		return vals
	}
	return []string{strings.Join(kept, ", ")}
}
