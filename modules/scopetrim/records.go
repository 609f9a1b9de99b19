package scopetrim

import (
	"fmt"
	"net/http"
	"strings"
	"unsafe"

	"cel.dev/cel-go/common/types"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// recordsFile is an endpoint's "records" block; see policies/policy.schema.json.
type recordsFile struct {
	// At is where the records are: the path of an array, or "" when the
	// body (each line, for NDJSON) is one record. Required, so that "" is
	// said on purpose.
	At *string `json:"at"`
	// ID is the path of a record's id, for the audit record's record_ids.
	ID string `json:"id,omitempty"`
	// Rules are one CEL expression per scope.
	Rules map[string]string `json:"rules"`
}

// recordRules is an endpoint's compiled "records" block.
type recordRules struct {
	at string
	// single is set for at "": the body is one record, and an answer whose
	// record is withheld becomes 404 record_not_visible.
	single bool
	// atPath is at as a gjson path; idPath the gjson path of a record's
	// id within it, "" without id.
	atPath, idPath string
	// idKey is the id's key when the id is a member of the record itself
	// (records.id names one key), read from the record's noted members.
	idKey    string
	idMember bool
	rules    []rule
	// node is the records array's node (nil when single), path the keys
	// that lead to it.
	node *node
	path []string
}

// compileRecords compiles the endpoint's records block, and marks the
// nodes from the root to the records array: the trimmer must descend
// along them even where a grant would copy a whole subtree, or the records
// inside would pass unjudged.
func (e *endpoint) compileRecords(rf *recordsFile) error {
	if rf == nil {
		return nil
	}
	if rf.At == nil {
		return fmt.Errorf("records.at is missing: name the array that holds the records (\"data\"), or \"\" when the body is one record")
	}
	if len(rf.Rules) == 0 {
		return fmt.Errorf("records.rules is empty: no scope could see a record; give each scope that may see records a rule (\"true\" for all)")
	}
	rr := &recordRules{at: *rf.At, single: *rf.At == ""}
	if !rr.single {
		segs, err := keyPath(rr.at)
		if err != nil {
			return fmt.Errorf("records.at: %v", err)
		}
		e.root.insert(segs, 0, tfRaw) // creates the nodes, grants nothing
		n := e.root
		n.recordPath = true
		for _, s := range segs {
			n = n.keys[s.key]
			n.recordPath = true
			rr.path = append(rr.path, s.key)
		}
		n.records = true
		rr.node = n
		rr.atPath = gjsonPath(segs)
	}
	if rf.ID != "" {
		segs, err := keyPath(rf.ID)
		if err != nil {
			return fmt.Errorf("records.id: %v", err)
		}
		rr.idPath = gjsonPath(segs)
		if len(segs) == 1 {
			rr.idKey, rr.idMember = segs[0].key, true
		}
	}
	rules, err := compileRules(rf.Rules, e.bits)
	if err != nil {
		return err
	}
	rr.rules = rules
	e.records = rr
	return nil
}

// checkRecords refuses a records block that no field reaches: with a typo
// in records.at, the fields under the real array would pass unjudged.
func (e *endpoint) checkRecords() error {
	rr := e.records
	if rr == nil || rr.single {
		return nil
	}
	// reached: a grant under the array, or on it or an ancestor (which
	// the trimmer turns into a descent along the path)
	reached := rr.node.below != 0
	n := e.root
	for _, k := range rr.path {
		n = n.keys[k]
		reached = reached || n.granted != 0
	}
	if !reached {
		return fmt.Errorf("records.at %q: no field of this endpoint is at or under it, so no record would ever be judged; fields under another array would pass unjudged (check the path)", rr.at)
	}
	return nil
}

// gjsonPath writes a path of keys for gjson, every key escaped (no key
// can be read as a query, a wildcard or a modifier).
func gjsonPath(segs []segment) string {
	parts := make([]string, len(segs))
	for i, s := range segs {
		parts[i] = gjson.Escape(s.key)
	}
	return strings.Join(parts, ".")
}

// keyPath parses a path of object keys only (records.at, records.id).
func keyPath(p string) ([]segment, error) {
	segs, err := parsePath(p)
	if err != nil {
		return nil, err
	}
	for _, s := range segs {
		if s.kind != segKey {
			return nil, fmt.Errorf("path %q has a wildcard; name object keys only", p)
		}
	}
	return segs, nil
}

// recordFilter judges the records of one response (or one request body)
// for one caller.
type recordFilter struct {
	rules *recordRules
	mask  uint64
	// always: one of the caller's rules is the constant true
	always bool
	act    ruleActivation

	released, withheld int
	// rootReleased is the verdict on the last document's record (single)
	rootReleased bool
	ids          []string
	idsOmitted   int
	// idBytes holds the ids' bytes: the ids are strings over it, so it is
	// only ever appended to, never written over, and a new one is started
	// for each response (the decision record keeps the ids).
	idBytes  []byte
	failures int // rule evaluations that failed (counted as false)

	// members are the record's members as the trimmer read them
	members recordMembers
}

// forget drops what f holds of the last response and caller.
func (f *recordFilter) forget() {
	f.reset(nil, 0, nil, "")
}

// reset prepares f for a caller: its scopes (mask), claims, tenant. Only
// the buffers' capacity is kept; what they held is zeroed.
func (f *recordFilter) reset(rr *recordRules, mask uint64, id *sidecar.Identity, tenant string) {
	ids, claimCache := f.ids[:0], f.act.claimVals.cache
	clear(f.ids[:cap(f.ids)])
	clear(claimCache)
	f.members.forget()
	*f = recordFilter{rules: rr, mask: mask, ids: ids, members: f.members}
	f.act.claimVals.cache = claimCache
	if rr == nil {
		return
	}
	for i := range rr.rules {
		if rr.rules[i].always && rr.rules[i].bit&mask != 0 {
			f.always = true
		}
	}
	f.act.tenant = tenant
	if id != nil {
		f.act.claimVals.claims, f.act.scopeList = id.Claims, id.Scopes
	}
}

// release evaluates the caller's rules on one record (validated JSON)
// until one returns true. A rule that fails counts as false.
func (f *recordFilter) release(span []byte) bool {
	if f.always {
		return true
	}
	f.act.setRecord(span, &f.members)
	released := false
	for i := range f.rules.rules {
		r := &f.rules.rules[i]
		if r.bit&f.mask == 0 {
			continue
		}
		if r.fast != nil {
			if v, decided := r.fast.decide(&f.act); decided {
				if v {
					released = true
					break
				}
				continue
			}
		}
		out, _, err := r.prg.Eval(f.act.input(r))
		if err != nil {
			f.failures++
			continue
		}
		if b, ok := out.(types.Bool); ok && bool(b) {
			released = true
			break
		}
	}
	f.act.clearRecord()
	return released
}

// judge decides one record of an answer, counts it, and notes the id of a
// released one.
func (f *recordFilter) judge(span []byte) bool {
	if !f.release(span) {
		f.withheld++
		return false
	}
	f.released++
	if f.rules.idPath == "" {
		return true
	}
	if len(f.ids) >= sidecar.MaxRecordIDs {
		f.idsOmitted++
		return true
	}
	var res gjson.Result
	if f.members.indexed && f.rules.idMember {
		if raw, ok := f.members.find(span, f.rules.idKey); ok {
			res = parseValue(raw)
		}
	} else {
		res = gjson.Get(unsafeString(span), f.rules.idPath)
	}
	switch res.Type {
	case gjson.String:
		f.ids = append(f.ids, f.keepID(res.Str))
	case gjson.Number:
		f.ids = append(f.ids, f.keepID(res.Raw))
	default:
		f.idsOmitted++ // no id, or not a string or number
	}
	return true
}

// keepID copies an id out of the body (zeroed after the response) into
// idBytes: one allocation for the ids of many records, not one each.
func (f *recordFilter) keepID(id string) string {
	if len(id) == 0 {
		return ""
	}
	if cap(f.idBytes)-len(f.idBytes) < len(id) {
		// a new array; the ids already made keep the old one alive as it is
		f.idBytes = make([]byte, 0, max(256, 2*len(id), cap(f.idBytes)*2))
	}
	start := len(f.idBytes)
	f.idBytes = append(f.idBytes, id...)
	return unsafe.String(&f.idBytes[start], len(id))
}

// report adds the counts and ids to the decision record.
func (f *recordFilter) report(d *sidecar.Decision) {
	d.AddRecords(f.released, f.withheld, f.ids, f.idsOmitted)
}

// recordArray writes the array of records at t.pos: each element is trimmed
// as array() would, then judged on its source bytes (validated by then); a
// withheld one is taken back out, with its comma and the counts of what was
// withheld inside it, so the answer does not show that it was there.
func (t *trimmer) recordArray(n *node, inherited transform, depth int) {
	if !t.openArray(depth) {
		return
	}
	elem := n.elem
	wrote := false
	for {
		t.ws()
		if t.pos >= len(t.src) {
			t.fail(sidecar.ReasonUpstreamInvalidJSON, "unterminated array")
			return
		}
		mark := len(t.out)
		t.markCounts()
		if wrote {
			t.out = append(t.out, ',')
		}
		start := t.pos
		t.startRecord()
		d, tf := t.decide(elem, inherited, t.src[start])
		if d == dWithhold {
			t.noteRecord = false
			if !t.skip(depth + 1) {
				return
			}
			t.out = append(t.out, "null"...)
			t.elementWithheld(n)
		} else {
			t.emit(elem, d, tf, depth+1)
			t.noteRecord = false
			if t.err != nil {
				return
			}
		}
		if t.rec.judge(t.src[start:t.pos]) {
			wrote = true
		} else {
			t.out = t.out[:mark]
			t.restoreCounts()
		}
		if !t.afterElement() {
			if t.err == nil {
				t.out = append(t.out, ']')
			}
			return
		}
	}
}

// decideOnRecordPath is decide for a node from the root to the records
// array: such a node is always descended into, never copied whole. At the
// records node itself only an array passes: an object is refused (it may
// be one record, which the rules did not judge) and a scalar withheld.
func (t *trimmer) decideOnRecordPath(n *node, best transform, c byte) (decision, transform) {
	if c != '{' && c != '[' {
		if n.records {
			return dWithhold, tfNone
		}
		return t.decideScalar(best)
	}
	if best != tfNone || n.below&t.mask != 0 {
		return dDescend, best
	}
	return dWithhold, tfNone
}

// decideScalar is decide's answer for a scalar under the transform best.
func (t *trimmer) decideScalar(best transform) (decision, transform) {
	switch best {
	case tfRaw:
		return dCopy, tfRaw
	case tfNone:
		return dWithhold, tfNone
	}
	return dTransform, best
}

// markCounts remembers the withheld counts before a record, so that a
// record taken back out takes its counts with it.
func (t *trimmer) markCounts() {
	t.countMark = t.countMark[:0]
	for i := range t.withheld {
		t.countMark = append(t.countMark, t.withheld[i].count)
	}
	t.removedMark = t.removed
}

// restoreCounts goes back to the counts of the last markCounts.
func (t *trimmer) restoreCounts() {
	for i := range t.withheld {
		if i < len(t.countMark) {
			t.withheld[i].count = t.countMark[i]
		} else {
			t.withheld[i].count = 0
		}
	}
	t.removed = t.removedMark
}

// releaseRecords reports what the record rules decided about the answer
// just trimmed, and whether it may be sent: a single record that was
// withheld may not (nothing of what the trimmer counted in it is kept).
func (tw *trimWriter) releaseRecords(t *trimmer) bool {
	t.rec.report(sidecar.DecisionFrom(tw.r))
	tw.logRuleFailures(t.rec)
	if t.rec.rules.single && !t.rec.rootReleased {
		t.withheldPatterns()
		t.removed = 0
		return false
	}
	return true
}

// hidesMissingRecord reports whether the upstream's answer is a "not found"
// for one record, or a read's answer without the record to judge (304, 204,
// 205: prepareUpstreamRequest removes the preconditions that ask for a 304,
// but a connector may send one unasked): on an endpoint whose answer is one
// record, it is answered as a withheld record is, so that a client cannot
// tell a record it may not see from one that does not exist.
func (tw *trimWriter) hidesMissingRecord() bool {
	if tw.ep.records == nil || !tw.ep.records.single {
		return false
	}
	switch tw.status {
	case http.StatusNotFound, http.StatusGone:
		return true
	case http.StatusNotModified, http.StatusNoContent, http.StatusResetContent:
		return tw.r.Method == http.MethodGet || tw.r.Method == http.MethodHead
	}
	return false
}

// recordNotVisible answers 404 record_not_visible: the same problem for a
// record the rules withheld and one the connector did not find. No header
// or byte of the upstream's answer is sent.
func (tw *trimWriter) recordNotVisible() error {
	tw.judgeHeaders(nil) // record what the upstream sent that no policy allowed
	return sidecar.Refuse(tw.ResponseWriter, tw.r, http.StatusNotFound, sidecar.ReasonRecordNotVisible,
		"no record the caller may see is at this path")
}

// logRuleFailures notes, without any value or CEL message (either may
// quote the record), that rules failed and counted as false.
func (tw *trimWriter) logRuleFailures(f *recordFilter) {
	if f.failures == 0 {
		return
	}
	if c := tw.m.logger.Check(zap.DebugLevel, "record rules failed and counted as false"); c != nil {
		c.Write(zap.String("endpoint", tw.ep.path), zap.Int("failures", f.failures))
	}
}

// recordFilterFor returns t's record filter set up for this response's
// caller, or nil when the endpoint has no record rules.
func (tw *trimWriter) recordFilterFor(t *trimmer) *recordFilter {
	if tw.ep.records == nil {
		return nil
	}
	t.recState.reset(tw.ep.records, tw.mask, sidecar.IdentityFrom(tw.r), tw.tenant())
	return &t.recState
}
