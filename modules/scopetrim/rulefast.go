package scopetrim

import (
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
)

// fastRule is a record rule of the simplest shape, decided without CEL's
// interpreter (which cost about 60% of a record's time on the load
// harness's contacts page): a comparison of a record member with a claim,
//
//	record.owner_id == claims.crm_user_id
//	record.owner_id != claims.crm_user_id
//	claims.crm_user_id == record.owner_id
//	record.owner_id in claims.crm_team
//
// or such comparisons joined by && and ||. It decides only what it can
// decide exactly as CEL would: a comparison of two plain strings (a JSON
// string written without escapes, read from the member table, and a claim
// that is a Go string, or for in a list of Go strings). Anything else (a missing member or claim, another
// type, an escape, a record the trimmer did not walk member by member)
// leaves the record to the rule's CEL program.
type fastRule struct {
	// op is operators.Equals, NotEquals, In, LogicalAnd or LogicalOr.
	op string
	// member and claim are the comparison's names (==, != and in).
	member, claim string
	// terms are the operands of && and ||.
	terms []fastRule
}

// recogniseFastRule returns the fast form of a checked rule's expression,
// or false when the rule has another shape.
func recogniseFastRule(e ast.Expr) (fastRule, bool) {
	if e.Kind() != ast.CallKind {
		return fastRule{}, false
	}
	call := e.AsCall()
	if call.IsMemberFunction() {
		return fastRule{}, false
	}
	args := call.Args()
	switch fn := call.FunctionName(); fn {
	case operators.Equals, operators.NotEquals:
		if len(args) != 2 {
			return fastRule{}, false
		}
		l, lname, lok := plainSelect(args[0])
		r, rname, rok := plainSelect(args[1])
		if !lok || !rok {
			return fastRule{}, false
		}
		switch {
		case l == "record" && r == "claims":
			return fastRule{op: fn, member: lname, claim: rname}, true
		case l == "claims" && r == "record":
			// string equality is symmetric
			return fastRule{op: fn, member: rname, claim: lname}, true
		}
		return fastRule{}, false
	case operators.In:
		if len(args) != 2 {
			return fastRule{}, false
		}
		l, lname, lok := plainSelect(args[0])
		r, rname, rok := plainSelect(args[1])
		if !lok || !rok || l != "record" || r != "claims" {
			return fastRule{}, false
		}
		return fastRule{op: fn, member: lname, claim: rname}, true
	case operators.LogicalAnd, operators.LogicalOr:
		if len(args) < 2 {
			return fastRule{}, false
		}
		terms := make([]fastRule, len(args))
		for i, a := range args {
			t, ok := recogniseFastRule(a)
			if !ok {
				return fastRule{}, false
			}
			terms[i] = t
		}
		return fastRule{op: fn, terms: terms}, true
	}
	return fastRule{}, false
}

// plainSelect returns the variable and field of a select written
// variable.field: not a presence test (has(record.f) is a select marked
// test-only), and not a select on anything but a variable's name.
func plainSelect(e ast.Expr) (variable, field string, ok bool) {
	if e.Kind() != ast.SelectKind {
		return "", "", false
	}
	sel := e.AsSelect()
	if sel.IsTestOnly() || sel.Operand().Kind() != ast.IdentKind {
		return "", "", false
	}
	return sel.Operand().AsIdent(), sel.FieldName(), true
}

// decide returns the rule's value on the activation's record, and false
// when it cannot be decided here (the CEL program decides then). It
// follows CEL's logic for && and ||, under which an operand that cannot be
// decided (an error in CEL) does not matter when another decides the
// whole: true || error is true, false && error is false.
func (fr *fastRule) decide(a *ruleActivation) (value, decided bool) {
	switch fr.op {
	case operators.LogicalOr, operators.LogicalAnd:
		// the value that decides the whole: true for ||, false for &&
		decisive := fr.op == operators.LogicalOr
		undecided := false
		for i := range fr.terms {
			v, ok := fr.terms[i].decide(a)
			switch {
			case !ok:
				undecided = true
			case v == decisive:
				return decisive, true
			}
		}
		if undecided {
			return false, false
		}
		return !decisive, true
	}
	m := a.record.members
	if m == nil || a.nonObject != nil {
		return false, false
	}
	raw, found := m.find(a.record.raw, fr.member)
	if !found {
		return false, false
	}
	member, ok := plainString(raw)
	if !ok {
		return false, false
	}
	if fr.op == operators.In {
		return inStrings(member, a.claimVals.claims[fr.claim])
	}
	claim, ok := a.claimVals.claims[fr.claim].(string)
	if !ok {
		return false, false
	}
	return (member == claim) == (fr.op == operators.Equals), true
}

// inStrings is CEL's s in claim for a claim that is a list of strings
// only (as a token's claims decode, []any): whether an element equals s.
// Any other claim is not decided here.
func inStrings(s string, claim any) (value, decided bool) {
	switch list := claim.(type) {
	case []string:
		for _, e := range list {
			if e == s {
				return true, true
			}
		}
		return false, true
	case []any:
		found := false
		for _, e := range list {
			es, ok := e.(string)
			if !ok {
				return false, false
			}
			found = found || es == s
		}
		return found, true
	}
	return false, false
}
