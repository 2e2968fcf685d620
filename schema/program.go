package schema

import (
	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/twinhub/twinhub"
)

// program is one expression over the twin (a segment predicate, a rule
// condition, a template expression) compiled for every way its owner runs:
// with no event, once per triggering event type, or for segment changes.
// It is immutable and safe for concurrent use.
type program struct {
	rt     *runtime
	plain  cel.Program   // segments and rules without on
	byType []cel.Program // by event type index; nil where the type is no trigger
	change cel.Program   // for enter: and exit: triggers
	ast    *cel.Ast      // one of the checked ASTs, for what the expression reads
	// The native forms of bool programs, where they have one (native.go);
	// nil entries run in CEL.
	plainFast  native
	byTypeFast []native
	changeFast native
}

// variants says in which environments a rule's expressions are compiled.
type variants struct {
	types  []*EventType // the event types in on
	change bool         // on lists enter: or exit: triggers
	owner  string       // "segment" or "rule", for the message about reading event
}

// compileProgram compiles expr in every environment v asks for. It returns
// nil when expr has problems, which it reports.
func (p *parser) compileProgram(env *twinEnvs, loc exprLoc, path, expr string, v variants, check exprCheck) *program {
	var targets []exprTarget
	for _, t := range v.types {
		te, err := env.forType(t)
		if err != nil {
			p.Problems = append(p.Problems, Problem{Path: path, Message: "cannot build the expression environment: " + err.Error()})
			return nil
		}
		targets = append(targets, exprTarget{name: t.Name, env: te, hint: env.twinHint(expr, eventTyped, t, v.owner)})
	}
	if v.change {
		targets = append(targets, exprTarget{name: "enter:/exit:", env: env.change, hint: env.twinHint(expr, eventChange, nil, v.owner)})
	}
	if len(targets) == 0 {
		targets = append(targets, exprTarget{env: env.base, hint: env.twinHint(expr, eventNone, nil, v.owner)})
	}
	progs, asts, ok := p.compile(loc, path, expr, env.base, targets, check)
	if !ok {
		return nil
	}
	pr := &program{rt: env.rt, ast: asts[0]}
	fast := func(t *EventType, a *cel.Ast) native {
		if !check.native || !a.OutputType().IsExactType(types.BoolType) {
			return nil
		}
		return compileNative(env.s, t, a.NativeRep())
	}
	if len(v.types) == 0 && !v.change {
		pr.plain, pr.plainFast = progs[0], fast(nil, asts[0])
		return pr
	}
	pr.byType = make([]cel.Program, len(env.s.Events))
	pr.byTypeFast = make([]native, len(env.s.Events))
	for i, t := range v.types {
		pr.byType[t.Index], pr.byTypeFast[t.Index] = progs[i], fast(t, asts[i])
	}
	if v.change {
		last := len(progs) - 1
		pr.change, pr.changeFast = progs[last], fast(nil, asts[last])
	}
	return pr
}

// pick returns the program to run for cause c, its native form if it has
// one, and the event it reads.
func (pr *program) pick(c *Cause) (cel.Program, native, int) {
	switch {
	case pr.plain != nil:
		return pr.plain, pr.plainFast, eventNone
	case c == nil:
		return nil, nil, eventNone
	case c.Segment != nil:
		return pr.change, pr.changeFast, eventChange
	case c.Type != nil && c.Type.Index >= 0 && c.Type.Index < len(pr.byType):
		return pr.byType[c.Type.Index], pr.byTypeFast[c.Type.Index], eventTyped
	}
	return nil, nil, eventNone
}

// holds runs a bool program; an error, or a cause it was not compiled for,
// is false.
func (pr *program) holds(tv TwinVars, c *Cause, now int64) bool {
	// The two common cases first, without pick: a segment's predicate, and
	// a rule's condition on the typed event that triggered it.
	switch {
	case pr.plainFast != nil:
		return pr.plainFast(tv, nil, now) == triTrue
	case c != nil && c.Segment == nil && c.Event != nil && c.Type != nil && c.Type.Index >= 0 && c.Type.Index < len(pr.byTypeFast):
		if f := pr.byTypeFast[c.Type.Index]; f != nil {
			return f(tv, c.Event, now) == triTrue
		}
	}
	prg, fast, kind := pr.pick(c)
	if prg == nil {
		return false
	}
	if fast != nil {
		var ev *twinhub.Event
		if kind == eventTyped {
			if ev = c.Event; ev == nil {
				return false
			}
		}
		return fast(tv, ev, now) == triTrue
	}
	return pr.celHolds(prg, tv, c, kind, now) == triTrue
}

// celHolds runs a bool program in CEL.
func (pr *program) celHolds(prg cel.Program, tv TwinVars, c *Cause, kind int, now int64) tri {
	a, err := pr.rt.bind(tv, c, kind, now)
	if err != nil {
		return triErr
	}
	out, _, err := prg.Eval(a)
	pr.rt.release(a)
	b, ok := out.(types.Bool)
	if err != nil || !ok {
		return triErr
	}
	return triOf(bool(b))
}

// eval runs the program and passes its result to use, which must not keep
// it: the result may point into the pooled activation.
func (pr *program) eval(tv TwinVars, c *Cause, now int64, use func(ref.Val) error) error {
	prg, _, kind := pr.pick(c)
	if prg == nil {
		return errNoTrigger
	}
	a, err := pr.rt.bind(tv, c, kind, now)
	if err != nil {
		return err
	}
	defer pr.rt.release(a)
	out, _, err := prg.Eval(a)
	if err != nil {
		return err
	}
	return use(out)
}
