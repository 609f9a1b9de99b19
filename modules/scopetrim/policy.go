package scopetrim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// policyFile is the on-disk format of one connector's policy; see
// policies/policy.schema.json.
type policyFile struct {
	Schema    string              `json:"$schema,omitempty"`
	Connector string              `json:"connector"`
	Version   string              `json:"version"`
	Roles     map[string][]string `json:"roles,omitempty"`
	Endpoints []endpointFile      `json:"endpoints"`
	// ResponseHeaders and RequestHeaders apply to every endpoint of the
	// file, in addition to the endpoint's own (headers_policy.go).
	ResponseHeaders []string `json:"response_headers,omitempty"`
	RequestHeaders  []string `json:"request_headers,omitzero"`
	// Scopes describes scopes for records of processing; see catalog.go.
	Scopes map[string]ScopeInfo `json:"scopes,omitempty"`
}

type endpointFile struct {
	Match struct {
		Methods []string `json:"methods"`
		Path    string   `json:"path"`
	} `json:"match"`
	Fields      map[string][]fieldFile `json:"fields"`
	ErrorFields []fieldFile            `json:"error_fields,omitempty"`
	// Records and RequestFields: see records.go and writes.go.
	Records       *recordsFile           `json:"records,omitempty"`
	RequestFields map[string][]fieldFile `json:"request_fields,omitempty"`
	// ResponseHeaders, RequestHeaders and Redirects: see headers_policy.go.
	ResponseHeaders []string       `json:"response_headers,omitempty"`
	RequestHeaders  []string       `json:"request_headers,omitzero"`
	Redirects       *redirectsFile `json:"redirects,omitempty"`
}

// fieldFile is a path, written either as a string or as
// {"path": ..., "transform": ...}.
type fieldFile struct {
	Path      string `json:"path"`
	Transform string `json:"transform,omitempty"`
}

func (f *fieldFile) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &f.Path)
	}
	type plain fieldFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p plain
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("a field is a path string or {\"path\": ..., \"transform\": ...}: %w", err)
	}
	*f = fieldFile(p)
	return nil
}

// policy is one compiled policy file.
type policy struct {
	file      string
	connector string
	version   string
	roles     map[string][]string
	label     string // connector@version, built once: every request records it
	// responseHeaders and requestHeaders are the file's lists; a nil
	// requestHeaders means no request allowlist at the policy level.
	responseHeaders, requestHeaders []string
	// headersRemoved counts what the response header allowlist dropped.
	headersRemoved prometheus.Counter
}

// name is how the decision record names the policy.
func (p *policy) name() string { return p.label }

// endpoint is one compiled policy endpoint.
type endpoint struct {
	policy  *policy
	methods map[string]bool
	path    string
	parts   []string // path split at "*"
	// root is the allowlist for 2xx responses; errRoot for other statuses
	// (nil: replace them with a generic problem body).
	root     *node
	errRoot  *node
	bits     map[string]uint64
	usesHash bool
	// hashScopes and errHashScopes are the scopes some grant of root
	// (errRoot) hashes for: a caller without any gets no hasher, whose
	// HMAC key schedule would cost every request.
	hashScopes, errHashScopes uint64
	// records judges each record of a 2xx answer (nil: no record rules).
	records *recordRules
	// writeRoot is the allowlist of request body fields (request_fields),
	// nil when the endpoint admits none.
	writeRoot *node
	// headers holds the endpoint's header allowlists and redirect rule.
	headers endpointHeaders
}

// matches reports whether the request method and path select the endpoint.
// HEAD selects the endpoints of GET, because it is answered as a GET is.
func (e *endpoint) matches(method, path string) bool {
	if !e.methods[method] && !(method == "HEAD" && e.methods["GET"]) {
		return false
	}
	return globMatch(e.parts, path)
}

// globMatch matches path against a pattern split at "*", where "*" matches
// any run of characters (including "/").
func globMatch(parts []string, path string) bool {
	if len(parts) == 1 {
		return path == parts[0]
	}
	if !strings.HasPrefix(path, parts[0]) {
		return false
	}
	path = path[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(path, p)
		if i < 0 {
			return false
		}
		path = path[i+len(p):]
	}
	return len(path) >= len(last) && strings.HasSuffix(path, last)
}

// scopeMask returns the bits of the endpoint's scopes that the identity's
// scopes, plus the scopes its roles map to, include.
func (e *endpoint) scopeMask(scopes, roles []string) uint64 {
	var m uint64
	for _, s := range scopes {
		m |= e.bits[s]
	}
	for _, r := range roles {
		for _, s := range e.policy.roles[r] {
			m |= e.bits[s]
		}
	}
	return m
}

// loadPolicies reads a policy file or every *.json file of a directory but
// *.schema.json (in name order), and compiles their endpoints in order. In a
// policy directory every JSON file must be a policy: nothing is guessed, so
// a stray file is refused by name (the tenant registry lives in registry/).
func loadPolicies(path string, maxDepth int) ([]*endpoint, []string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("policies: %w", err)
	}
	var files []string
	if !info.IsDir() {
		files = []string{path}
	} else {
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != path && d.IsDir() {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(p, ".json") && !strings.HasSuffix(p, ".schema.json") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("policies: %w", err)
		}
		sort.Strings(files)
	}
	var all []*endpoint
	var loaded []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("policy %s: %w", f, err)
		}
		eps, err := compilePolicy(f, data, maxDepth)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range eps {
			for _, prev := range all {
				if prev.path == e.path && overlaps(prev.methods, e.methods) {
					return nil, nil, fmt.Errorf("policy %s: endpoint %s %s duplicates one in %s; each method and path may appear once", f, methodList(e.methods), e.path, prev.policy.file)
				}
			}
		}
		all = append(all, eps...)
		loaded = append(loaded, f)
	}
	if len(all) == 0 {
		return nil, nil, fmt.Errorf("policies: %s holds no policy file with endpoints", path)
	}
	return all, loaded, nil
}

// policiesDigest is the digest of the policy files loadPolicies would read
// (see sidecar.FilesDigest).
func policiesDigest(path string) (string, error) {
	_, files, err := loadPolicies(path, DefaultMaxDepth)
	if err != nil {
		return "", err
	}
	return sidecar.FilesDigest(files)
}

// compilePolicy validates a policy file and compiles its endpoints.
func compilePolicy(file string, data []byte, maxDepth int) ([]*endpoint, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("policy %s: %s", file, fmt.Sprintf(format, args...))
	}
	// Our scanner first: encoding/json accepts duplicate keys (the last
	// wins) and invalid UTF-8, which would make a policy mean something else
	// than a reviewer read.
	var sc scanner
	sc.maxDepth = maxDepth
	sc.reset(data)
	sc.ws()
	if sc.skip(0) {
		sc.ws()
		if sc.pos != len(data) {
			sc.fail("", "trailing data after the JSON value")
		}
	}
	if sc.err != nil {
		return nil, fail("not valid JSON: %v", sc.err)
	}
	var pf policyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pf); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return nil, fail("%s has the wrong type: %v", ute.Field, err)
		}
		return nil, fail("%v", err)
	}
	if pf.Connector == "" {
		return nil, fail("\"connector\" is missing")
	}
	if pf.Version == "" {
		return nil, fail("\"version\" is missing")
	}
	if len(pf.Endpoints) == 0 {
		return nil, fail("\"endpoints\" is empty; a policy with no endpoint allows nothing")
	}
	label := pf.Connector + "@" + pf.Version
	pol := &policy{file: file, connector: pf.Connector, version: pf.Version, roles: pf.Roles, label: label,
		responseHeaders: pf.ResponseHeaders, requestHeaders: pf.RequestHeaders,
		headersRemoved: headersRemovedTotal.WithLabelValues(label)}
	known := map[string]bool{}
	var eps []*endpoint
	for i, ef := range pf.Endpoints {
		where := fmt.Sprintf("endpoint %d (%s)", i, ef.Match.Path)
		e, err := compileEndpoint(pol, ef)
		if err != nil {
			return nil, fail("%s: %v", where, err)
		}
		for _, prev := range eps {
			if prev.path == e.path && overlaps(prev.methods, e.methods) {
				return nil, fail("%s: duplicate endpoint %s %s", where, methodList(e.methods), e.path)
			}
		}
		for s := range e.bits {
			known[s] = true
		}
		eps = append(eps, e)
	}
	if err := checkScopeInfo(pf.Scopes, known); err != nil {
		return nil, fail("%v", err)
	}
	roles := make([]string, 0, len(pf.Roles))
	for r := range pf.Roles {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	for _, r := range roles {
		if r == "" {
			return nil, fail("roles: a role name is empty")
		}
		for _, s := range pf.Roles[r] {
			if !known[s] {
				return nil, fail("role %q maps to unknown scope %q: no endpoint grants anything to it", r, s)
			}
		}
	}
	return eps, nil
}

func compileEndpoint(pol *policy, ef endpointFile) (*endpoint, error) {
	e := &endpoint{policy: pol, methods: map[string]bool{}, path: ef.Match.Path, bits: map[string]uint64{}}
	if len(ef.Match.Methods) == 0 {
		return nil, fmt.Errorf("match.methods is empty; name the methods (GET, POST...)")
	}
	for _, m := range ef.Match.Methods {
		if m == "" || strings.ToUpper(m) != m || strings.ContainsAny(m, " \t/") {
			return nil, fmt.Errorf("method %q is not an upper-case HTTP method", m)
		}
		if e.methods[m] {
			return nil, fmt.Errorf("method %q is listed twice", m)
		}
		e.methods[m] = true
	}
	if !strings.HasPrefix(e.path, "/") {
		return nil, fmt.Errorf("match.path %q must start with /", e.path)
	}
	if strings.Contains(e.path, "**") {
		return nil, fmt.Errorf("match.path %q has \"**\"; one \"*\" already matches any run of characters", e.path)
	}
	e.parts = strings.Split(e.path, "*")
	if len(ef.Fields) == 0 {
		return nil, fmt.Errorf("fields is empty; the endpoint would allow nothing")
	}
	// Every scope the endpoint names (in fields, request_fields and record
	// rules) gets one bit.
	named := map[string]bool{}
	for s := range ef.Fields {
		named[s] = true
	}
	for s := range ef.RequestFields {
		named[s] = true
	}
	if ef.Records != nil {
		for s := range ef.Records.Rules {
			named[s] = true
		}
	}
	scopes := make([]string, 0, len(named))
	for s := range named {
		scopes = append(scopes, s)
	}
	sort.Strings(scopes)
	if len(scopes) > 64 {
		return nil, fmt.Errorf("%d scopes; an endpoint may name at most 64", len(scopes))
	}
	e.root = &node{}
	for i, s := range scopes {
		if s == "" || strings.ContainsAny(s, " \t\n") {
			return nil, fmt.Errorf("scope %q is not a scope name", s)
		}
		bit := uint64(1) << i
		e.bits[s] = bit
		fields, ok := ef.Fields[s]
		if !ok {
			continue // named only by request_fields or a record rule
		}
		if len(fields) == 0 {
			return nil, fmt.Errorf("scope %q lists no fields", s)
		}
		if err := addFields(e.root, fields, bit); err != nil {
			return nil, fmt.Errorf("scope %q: %v", s, err)
		}
	}
	if err := e.compileRecords(ef.Records); err != nil {
		return nil, err
	}
	e.root.finish()
	if err := e.checkRecords(); err != nil {
		return nil, err
	}
	if err := e.compileRequestFields(ef.RequestFields); err != nil {
		return nil, err
	}
	if ef.ErrorFields != nil {
		if len(ef.ErrorFields) == 0 {
			return nil, fmt.Errorf("error_fields is empty; omit it to replace error bodies with a generic problem")
		}
		e.errRoot = &node{}
		if err := addFields(e.errRoot, ef.ErrorFields, 1); err != nil {
			return nil, fmt.Errorf("error_fields: %v", err)
		}
		e.errRoot.finish()
	}
	e.hashScopes, e.errHashScopes = e.root.hashScopes(), e.errRoot.hashScopes()
	e.usesHash = e.hashScopes|e.errHashScopes != 0
	if err := e.headers.compile(pol, ef); err != nil {
		return nil, err
	}
	return e, nil
}

func addFields(root *node, fields []fieldFile, bit uint64) error {
	for _, f := range fields {
		segs, err := parsePath(f.Path)
		if err != nil {
			return err
		}
		tf, ok := transformNames[f.Transform]
		if !ok {
			return fmt.Errorf("path %q: unknown transform %q (use mask, hash, redact or null, or none for the raw value)", f.Path, f.Transform)
		}
		root.insert(segs, bit, tf)
	}
	return nil
}

func overlaps(a, b map[string]bool) bool {
	for m := range a {
		if b[m] {
			return true
		}
	}
	return false
}

func methodList(m map[string]bool) string {
	l := make([]string, 0, len(m))
	for k := range m {
		l = append(l, k)
	}
	sort.Strings(l)
	return strings.Join(l, ",")
}
