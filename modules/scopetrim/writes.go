package scopetrim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// writeMethods are the methods whose endpoints may have request_fields.
var writeMethods = []string{http.MethodPost, http.MethodPut, http.MethodPatch}

// compileRequestFields compiles the endpoint's request_fields: the body
// fields each scope may send. Paths are those of fields, without
// transforms: a write is allowed or refused, never rewritten.
func (e *endpoint) compileRequestFields(rf map[string][]fieldFile) error {
	if rf == nil {
		return nil
	}
	writes := false
	for _, m := range writeMethods {
		writes = writes || e.methods[m]
	}
	if !writes {
		return fmt.Errorf("request_fields is set but match.methods has none of POST, PUT, PATCH; only a write sends fields")
	}
	if len(rf) == 0 {
		return fmt.Errorf("request_fields is empty; omit it (a write endpoint without request_fields admits no body fields)")
	}
	e.writeRoot = &node{}
	for s, fields := range rf {
		if len(fields) == 0 {
			return fmt.Errorf("request_fields scope %q lists no fields", s)
		}
		for _, f := range fields {
			if f.Transform != "" && f.Transform != "raw" {
				return fmt.Errorf("request_fields scope %q: path %q has transform %q; a write is allowed or refused, never rewritten", s, f.Path, f.Transform)
			}
		}
		if err := addFields(e.writeRoot, fields, e.bits[s]); err != nil {
			return fmt.Errorf("request_fields scope %q: %v", s, err)
		}
	}
	e.writeRoot.finish()
	return nil
}

// judgeRequest lets a request body reach the connector only when every
// field in it is allowed by the caller's request_fields and, on an
// endpoint with record rules, every record in it is one the caller may
// write. up, the request to proxy, gets the judged bytes as its body. done
// is true when the request was refused (the refusal is written, or
// returned for handle_errors as err).
func (m *ScopeTrim) judgeRequest(w http.ResponseWriter, r, up *http.Request, ep *endpoint, mask uint64) (done bool, err error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return false, nil
	}
	refuse := func(status int, reason, detail string) (bool, error) {
		return true, sidecar.Refuse(w, r, status, reason, detail)
	}
	if enc := r.Header.Values("Content-Encoding"); len(enc) > 0 && !(len(enc) == 1 && strings.EqualFold(strings.TrimSpace(enc[0]), "identity")) {
		return refuse(http.StatusUnsupportedMediaType, sidecar.ReasonRequestNotJSON,
			"the request body has a content encoding; send it uncompressed, as JSON")
	}
	if r.ContentLength > m.MaxBody {
		return refuse(http.StatusRequestEntityTooLarge, sidecar.ReasonRequestTooLarge,
			fmt.Sprintf("the request body is larger than max_body (%d bytes)", m.MaxBody))
	}
	if len(r.Header.Values("Content-Type")) != 1 {
		return refuse(http.StatusUnsupportedMediaType, sidecar.ReasonRequestNotJSON,
			"a request body needs exactly one Content-Type, application/json")
	}
	if media, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || !isJSON(media) {
		return refuse(http.StatusUnsupportedMediaType, sidecar.ReasonRequestNotJSON,
			"the request body's Content-Type is not JSON; only JSON bodies can be checked")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, m.MaxBody+1))
	if int64(len(body)) > m.MaxBody {
		return refuse(http.StatusRequestEntityTooLarge, sidecar.ReasonRequestTooLarge,
			fmt.Sprintf("the request body is larger than max_body (%d bytes)", m.MaxBody))
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return refuse(http.StatusRequestEntityTooLarge, sidecar.ReasonRequestTooLarge, "the request body is larger than the server accepts")
		}
		return refuse(http.StatusBadRequest, sidecar.ReasonRequestMalformed, "the request body could not be read to its end")
	}
	if len(body) > 0 {
		fc := fieldCheck{mask: mask}
		fc.maxDepth = m.MaxDepth
		if err := fc.run(body, ep.writeRoot); err != nil {
			return refuse(http.StatusBadRequest, sidecar.ReasonRequestMalformed, "the request body is not valid JSON: "+err.Error())
		}
		if fc.offending != "" {
			return refuse(http.StatusForbidden, sidecar.ReasonWriteFieldNotAllowed,
				"the token's scopes may not write "+fc.offending+"; the request was not sent")
		}
		if ep.records != nil && !m.writableRecords(r, ep, mask, body) {
			return refuse(http.StatusForbidden, sidecar.ReasonRecordNotAllowed,
				"the token's scopes may not write this record (records.rules); the request was not sent")
		}
	}
	up.Body = io.NopCloser(bytes.NewReader(body))
	up.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	up.ContentLength = int64(len(body))
	up.TransferEncoding = nil
	delete(up.Header, "Expect") // the body is read already
	delete(up.Header, "Content-Encoding")
	return false, nil
}

// writableRecords reports whether every record of a (validated) request
// body passes one of the caller's record rules.
func (m *ScopeTrim) writableRecords(r *http.Request, ep *endpoint, mask uint64, body []byte) bool {
	var f recordFilter
	tenant := ""
	if d := sidecar.DecisionFrom(r); d != nil {
		tenant = d.Tenant
	}
	f.reset(ep.records, mask, sidecar.IdentityFrom(r), tenant)
	if ep.records.single {
		return f.release(bytes.TrimSpace(body))
	}
	res := gjson.Get(unsafeString(body), ep.records.atPath)
	switch {
	case !res.Exists() || res.Type == gjson.Null:
		return true // no records in the body
	case !res.IsArray():
		return false
	}
	ok := true
	res.ForEach(func(_, v gjson.Result) bool {
		ok = f.release([]byte(v.Raw))
		return ok
	})
	return ok
}

// fieldCheck validates a request body with the scanner and finds its
// first field that the caller's request_fields do not allow.
type fieldCheck struct {
	scanner
	mask      uint64
	path      []string
	offending string // the first field not allowed, as a path pattern
}

// run checks the whole body. It returns the scanner's error for a body
// that is not strict JSON; offending is set for one that is but writes a
// field that is not allowed.
func (c *fieldCheck) run(body []byte, root *node) error {
	c.reset(body)
	c.ws()
	if c.pos < len(body) && !validStart(body[c.pos]) {
		c.fail(sidecar.ReasonUpstreamInvalidJSON, "not a JSON value")
	} else {
		c.value(root, 0)
	}
	if c.err == nil {
		c.ws()
		if c.pos != len(body) {
			c.fail(sidecar.ReasonUpstreamInvalidJSON, "trailing data after the JSON value")
		}
	}
	if c.err != nil {
		c.offending = ""
		return c.err
	}
	return nil
}

// value checks the value at c.pos, at node n of the allowlist. A value
// whose node a scope of the caller grants is allowed whole; an object or
// array is looked into; anything else (a scalar, an empty object or array
// at a node not granted) is the offending field. Once one is found, the
// rest is only validated.
func (c *fieldCheck) value(n *node, depth int) {
	if c.pos >= len(c.src) {
		c.fail(sidecar.ReasonUpstreamInvalidJSON, "unexpected end of input")
		return
	}
	if c.offending != "" || (n != nil && n.granted&c.mask != 0) {
		c.skip(depth)
		return
	}
	switch c.src[c.pos] {
	case '{':
		if !c.enter(depth) {
			return
		}
		base := len(c.keys)
		for first := true; ; first = false {
			key, _, ok := c.member(first, base)
			if !ok {
				return
			}
			if key == nil {
				if first && depth > 0 {
					c.offend()
				}
				return
			}
			c.path = append(c.path, escapeKey(string(key)))
			c.value(n.child(key), depth+1)
			c.path = c.path[:len(c.path)-1]
			if c.err != nil {
				return
			}
		}
	case '[':
		if !c.enter(depth) {
			return
		}
		var elem *node
		if n != nil {
			elem = n.elem
		}
		c.pos++
		c.ws()
		if c.pos < len(c.src) && c.src[c.pos] == ']' {
			c.pos++
			if depth > 0 {
				c.offend()
			}
			return
		}
		c.path = append(c.path, "#")
		defer func() { c.path = c.path[:len(c.path)-1] }()
		for {
			c.ws()
			c.value(elem, depth+1)
			if c.err != nil || !c.afterElement() {
				return
			}
		}
	default:
		if c.skip(depth) {
			c.offend()
		}
	}
}

// offend records the current path as the offending field.
func (c *fieldCheck) offend() {
	if c.offending != "" {
		return
	}
	if len(c.path) == 0 {
		c.offending = "(root)"
		return
	}
	p := strings.Join(c.path, ".")
	if len(p) > 200 { // a path is named, not echoed at any length
		p = strings.ToValidUTF8(p[:200], "") + "..."
	}
	c.offending = p
}
