package scopetrim

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// RuleCostLimit bounds what one record rule that loops (all, exists, map,
// filter...) may cost on one record, in CEL's cost units (cel.CostLimit:
// roughly one unit per operation, more for string and list work in
// proportion to their sizes). A rule that passes it fails, and a failed
// rule counts as false.
const RuleCostLimit = 10000

// ruleEnv is the CEL environment every record rule compiles in. Building
// one costs milliseconds, so it is built once. The variables are those the
// policy language documents; a rule naming anything else does not compile.
var ruleEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("record", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("tenant", cel.StringType),
		cel.Variable("scopes", cel.ListType(cel.StringType)),
		// record.amount > 1000 must hold for an amount written 1500.5
		cel.CrossTypeNumericComparisons(true),
	)
})

// rule is one scope's compiled record rule.
type rule struct {
	scope string
	bit   uint64
	// always is set for the rule `true`: it releases every record without
	// being evaluated.
	always bool
	prg    cel.Program
	// costLimited: the program tracks its cost (it loops), and is given
	// the activation to wrap in a frame of its own at each evaluation.
	costLimited bool
	// fast is set when the rule compares record members with claims
	// only: it decides most records without the program (see fastRule).
	fast *fastRule
}

// compileRule compiles and type-checks one rule. The error is CEL's message,
// or says that the rule is not boolean.
func compileRule(src string) (rule, error) {
	env, err := ruleEnv()
	if err != nil {
		return rule{}, fmt.Errorf("the CEL environment: %v", err)
	}
	if strings.TrimSpace(src) == "" {
		return rule{}, fmt.Errorf("the rule is empty; write \"true\" to release every record")
	}
	checked, iss := env.Compile(src)
	if iss.Err() != nil {
		return rule{}, iss.Err()
	}
	// Compiling does not require a boolean result (size(scopes) + 1 compiles
	// to an int): a rule must be exactly bool. A dyn result (record.active)
	// is refused too: compare it (record.active == true).
	if out := checked.OutputType(); !out.IsExactType(cel.BoolType) {
		return rule{}, fmt.Errorf("the rule returns %s, not bool; a rule must decide (compare a value: record.active == true)", out)
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	costLimited := loops(checked.NativeRep().Expr())
	if costLimited {
		// Only a comprehension (all, exists, exists_one, map, filter) can
		// make a rule's work grow faster than the values it reads; without
		// one, a rule costs at most its size times the record's, which
		// max_body bounds. Tracking cost at run time costs every evaluation
		// several allocations (interpreter/runtimecost.go), so only rules
		// that loop pay it.
		opts = append(opts, cel.CostLimit(RuleCostLimit))
	}
	prg, err := env.Program(checked, opts...)
	if err != nil {
		return rule{}, err
	}
	r := rule{prg: prg, always: isLiteralTrue(checked), costLimited: costLimited}
	if fr, ok := recogniseFastRule(checked.NativeRep().Expr()); ok {
		r.fast = &fr
	}
	return r, nil
}

// loops reports whether the expression holds a comprehension.
func loops(e ast.Expr) bool {
	found := false
	ast.PreOrderVisit(e, ast.NewExprVisitor(func(e ast.Expr) {
		found = found || e.Kind() == ast.ComprehensionKind
	}))
	return found
}

// isLiteralTrue reports whether the rule is the constant true.
func isLiteralTrue(a *cel.Ast) bool {
	e := a.NativeRep().Expr()
	return e.Kind() == ast.LiteralKind && e.AsLiteral() == types.True
}

// compileRules compiles an endpoint's rules, in an order that tries the
// cheapest first: the constant true, then the others by scope name.
func compileRules(src map[string]string, bits map[string]uint64) ([]rule, error) {
	scopes := make([]string, 0, len(src))
	for s := range src {
		scopes = append(scopes, s)
	}
	sort.Strings(scopes)
	rules := make([]rule, 0, len(scopes))
	for _, s := range scopes {
		r, err := compileRule(src[s])
		if err != nil {
			return nil, fmt.Errorf("records.rules scope %q: %v", s, err)
		}
		r.scope, r.bit = s, bits[s]
		rules = append(rules, r)
	}
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].always && !rules[j].always })
	return rules, nil
}

// ruleActivation gives a rule its variables. Everything but the record is
// the caller's and the same for every record of a response; the values are
// built when a rule first names them.
type ruleActivation struct {
	record    jsonObject
	nonObject ref.Val // the record, when it is not a JSON object
	claimVals claimsMap
	tenant    string
	scopeList []string

	tenantVal ref.Val
	scopesVal ref.Val

	// frame is the evaluation frame over this activation, reused by every
	// evaluation of a rule that does not track its cost: prog.Eval given a
	// frame uses it as it is, instead of taking one from its pool and
	// returning it (interpreter.NewExecutionFrame, ExecutionFrame.Close).
	// Such a rule's evaluation sets nothing in the root frame (no context,
	// no observer); comprehensions push frames of their own.
	frame interpreter.ExecutionFrame
}

// input is what a rule's program is evaluated on.
func (a *ruleActivation) input(r *rule) any {
	if r.costLimited {
		return a
	}
	if a.frame.Activation == nil {
		a.frame.Activation = a
	}
	return &a.frame
}

// ResolveName implements interpreter.Activation.
func (a *ruleActivation) ResolveName(name string) (any, bool) {
	switch name {
	case "record":
		if a.nonObject != nil {
			return a.nonObject, true
		}
		return &a.record, true
	case "claims":
		return &a.claimVals, true
	case "tenant":
		if a.tenantVal == nil {
			a.tenantVal = types.String(a.tenant)
		}
		return a.tenantVal, true
	case "scopes":
		if a.scopesVal == nil {
			a.scopesVal = types.NewStringList(types.DefaultTypeAdapter, a.scopeList)
		}
		return a.scopesVal, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *ruleActivation) Parent() interpreter.Activation { return nil }

// setRecord makes span (one validated JSON value) the record; members
// are its members as the trimmer read them, if it read them all.
func (a *ruleActivation) setRecord(span []byte, members *recordMembers) {
	if len(span) > 0 && span[0] == '{' {
		a.record = jsonObject{raw: span}
		if members.indexed {
			a.record.members = members
		}
		a.nonObject = nil
		return
	}
	a.record = jsonObject{}
	a.nonObject = jsonValue(span)
}

// clearRecord drops the activation's reference to the last record.
func (a *ruleActivation) clearRecord() { a.record, a.nonObject = jsonObject{}, nil }

var _ interpreter.Activation = (*ruleActivation)(nil)
