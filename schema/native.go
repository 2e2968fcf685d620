package schema

import (
	"math"
	"slices"
	"time"

	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/agg"
)

// Most segment predicates and rule conditions compare twin or event fields
// with constants or with each other, maybe after some time arithmetic, and
// join the comparisons with &&, || and !. Run through CEL they cost 100-450
// ns and an allocation per double or time read; compiled here to closures
// that read TwinVars directly they cost a tenth of that. The closures give
// CEL's answers, errors included; where an exact answer would take more
// than a few lines (an overflow, a time out of range) they decline and the
// expression runs in CEL. Expressions of any other shape always run in CEL.

// tri is the outcome of a bool expression: CEL's false, true or error (an
// unset value was read), which && and || absorb the way CEL does; or
// triCEL, the closure declining to answer.
type tri uint8

const (
	triFalse tri = iota
	triTrue
	triErr
	triCEL
)

func triOf(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

// native is a compiled bool expression; ev is the event when it reads one.
type native func(tv TwinVars, ev *twinhub.Event, now int64) tri

// valKind is the CEL type of a native operand.
type valKind uint8

const (
	kindInt valKind = iota + 1
	kindDouble
	kindString
	kindBool
	kindTime     // unix ns
	kindDuration // ns
)

// operand is a compiled value expression. Exactly one getter is set, by
// kind: i for int, time and duration; f for double; s for string; b for
// bool. A getter's tri is triTrue when it produced a value, triErr when
// CEL would fail (an unset field) and triCEL when it declines.
type operand struct {
	kind valKind
	i    func(tv TwinVars, ev *twinhub.Event, now int64) (int64, tri)
	f    func(tv TwinVars, ev *twinhub.Event, now int64) (float64, tri)
	s    func(tv TwinVars, ev *twinhub.Event) (string, tri)
	b    func(tv TwinVars, ev *twinhub.Event) (bool, tri)
	// konst marks a numeric constant, its value in ki (int, time,
	// duration) or kf (double): comparisons with one skip calling it.
	konst bool
	ki    int64
	kf    float64
}

func (o operand) ok() bool { return o.kind != 0 }

// nativeCompiler compiles one checked expression; t is the event type
// `event` is, nil when the expression sees no typed event.
type nativeCompiler struct {
	s *Schema
	t *EventType
}

// compileNative returns the native form of checked expression a, or nil
// when it has a shape that only CEL runs.
func compileNative(s *Schema, t *EventType, a *ast.AST) native {
	c := nativeCompiler{s: s, t: t}
	return c.bool(a.Expr())
}

// bool compiles a bool-valued expression.
func (c nativeCompiler) bool(e ast.Expr) native {
	if e.Kind() == ast.SelectKind && e.AsSelect().IsTestOnly() {
		return c.has(e.AsSelect())
	}
	if e.Kind() == ast.CallKind && !e.AsCall().IsMemberFunction() {
		if n := c.call(e.AsCall()); n != nil {
			return n
		}
	}
	o := c.operand(e)
	if o.kind != kindBool {
		return nil
	}
	return func(tv TwinVars, ev *twinhub.Event, _ int64) tri {
		v, st := o.b(tv, ev)
		if st != triTrue {
			return st
		}
		return triOf(v)
	}
}

func (c nativeCompiler) call(call ast.CallExpr) native {
	args := call.Args()
	switch fn := call.FunctionName(); {
	case fn == operators.LogicalNot && len(args) == 1:
		x := c.bool(args[0])
		if x == nil {
			return nil
		}
		return func(tv TwinVars, ev *twinhub.Event, now int64) tri {
			switch r := x(tv, ev, now); r {
			case triTrue:
				return triFalse
			case triFalse:
				return triTrue
			default:
				return r
			}
		}
	case (fn == operators.LogicalAnd || fn == operators.LogicalOr) && len(args) == 2:
		l, r := c.bool(args[0]), c.bool(args[1])
		if l == nil || r == nil {
			return nil
		}
		// CEL's && is false if either side is false, even when the other
		// fails; || likewise is true if either side is true.
		decisive := triFalse
		if fn == operators.LogicalOr {
			decisive = triTrue
		}
		return func(tv TwinVars, ev *twinhub.Event, now int64) tri {
			a := l(tv, ev, now)
			if a == decisive {
				return decisive
			}
			b := r(tv, ev, now)
			switch {
			case b == decisive:
				return decisive
			case a == triCEL || b == triCEL:
				return triCEL
			case a == triErr || b == triErr:
				return triErr
			}
			return a
		}
	case fn == operators.In && len(args) == 2:
		return c.in(args[0], args[1])
	case len(args) == 2:
		if op, ok := compareOps[fn]; ok {
			return c.compare(op, c.operand(args[0]), c.operand(args[1]))
		}
	}
	return nil
}

// compareOp is a comparison operator.
type compareOp uint8

const (
	opLess compareOp = iota
	opLessEq
	opGreater
	opGreaterEq
	opEq
	opNe
)

var compareOps = map[string]compareOp{
	operators.Less: opLess, operators.LessEquals: opLessEq, operators.Greater: opGreater,
	operators.GreaterEquals: opGreaterEq, operators.Equals: opEq, operators.NotEquals: opNe,
}

// ordered applies op to a and b.
// flip is the operator that gives the same answer with the operands
// swapped: a < b is b > a.
func (op compareOp) flip() compareOp {
	switch op {
	case opLess:
		return opGreater
	case opLessEq:
		return opGreaterEq
	case opGreater:
		return opLess
	case opGreaterEq:
		return opLessEq
	}
	return op
}

func ordered[T int64 | float64 | string](op compareOp, a, b T) bool {
	switch op {
	case opLess:
		return a < b
	case opLessEq:
		return a <= b
	case opGreater:
		return a > b
	case opGreaterEq:
		return a >= b
	case opEq:
		return a == b
	}
	return a != b
}

// both evaluates two operands the way CEL evaluates a call's arguments: a
// failure of either fails the call.
func both(a, b tri) tri {
	switch {
	case a == triCEL || b == triCEL:
		return triCEL
	case a == triErr || b == triErr:
		return triErr
	}
	return triTrue
}

// compare compiles a comparison of two operands, following CEL: ints compare
// exactly, an int and a double compare as doubles, a comparison with NaN is
// false (but NaN != x is true), false < true.
func (c nativeCompiler) compare(op compareOp, l, r operand) native {
	if !l.ok() || !r.ok() {
		return nil
	}
	intLike := func(k valKind) bool { return k == kindInt || k == kindTime || k == kindDuration }
	numeric := func(k valKind) bool { return k == kindInt || k == kindDouble }
	if l.konst && !r.konst { // 5 < twin.x is twin.x > 5
		l, r, op = r, l, op.flip()
	}
	switch {
	case r.konst && intLike(l.kind) && l.kind == r.kind:
		// Most comparisons are of a field with a constant: one call, not two.
		b := r.ki
		return func(tv TwinVars, ev *twinhub.Event, now int64) tri {
			a, sa := l.i(tv, ev, now)
			if sa != triTrue {
				return sa
			}
			return triOf(ordered(op, a, b))
		}
	case r.konst && numeric(l.kind) && numeric(r.kind):
		lf, b := l.double(), r.kf
		if r.kind == kindInt {
			b = float64(r.ki)
		}
		return func(tv TwinVars, ev *twinhub.Event, now int64) tri {
			a, sa := lf(tv, ev, now)
			if sa != triTrue {
				return sa
			}
			if a != a || b != b { // NaN: nothing compares, everything differs
				return triOf(op == opNe)
			}
			return triOf(ordered(op, a, b))
		}
	case intLike(l.kind) && l.kind == r.kind:
		return func(tv TwinVars, ev *twinhub.Event, now int64) tri {
			a, sa := l.i(tv, ev, now)
			b, sb := r.i(tv, ev, now)
			if st := both(sa, sb); st != triTrue {
				return st
			}
			return triOf(ordered(op, a, b))
		}
	case numeric(l.kind) && numeric(r.kind):
		lf, rf := l.double(), r.double()
		return func(tv TwinVars, ev *twinhub.Event, now int64) tri {
			a, sa := lf(tv, ev, now)
			b, sb := rf(tv, ev, now)
			if st := both(sa, sb); st != triTrue {
				return st
			}
			if a != a || b != b { // NaN: nothing compares, everything differs
				return triOf(op == opNe)
			}
			return triOf(ordered(op, a, b))
		}
	case l.kind == kindString && r.kind == kindString:
		return func(tv TwinVars, ev *twinhub.Event, _ int64) tri {
			a, sa := l.s(tv, ev)
			b, sb := r.s(tv, ev)
			if st := both(sa, sb); st != triTrue {
				return st
			}
			return triOf(ordered(op, a, b))
		}
	case l.kind == kindBool && r.kind == kindBool:
		num := func(b bool) int64 {
			if b {
				return 1
			}
			return 0
		}
		return func(tv TwinVars, ev *twinhub.Event, _ int64) tri {
			a, sa := l.b(tv, ev)
			b, sb := r.b(tv, ev)
			if st := both(sa, sb); st != triTrue {
				return st
			}
			return triOf(ordered(op, num(a), num(b)))
		}
	}
	return nil
}

// double returns a getter of a numeric operand as a double, as CEL
// converts an int to compare it with a double.
func (o operand) double() func(TwinVars, *twinhub.Event, int64) (float64, tri) {
	if o.kind == kindDouble {
		return o.f
	}
	get := o.i
	return func(tv TwinVars, ev *twinhub.Event, now int64) (float64, tri) {
		v, st := get(tv, ev, now)
		return float64(v), st
	}
}

// in compiles 'name' in twin.segments, 'name' in twin.tags and
// operand in ['a', 'b'].
func (c nativeCompiler) in(elem, list ast.Expr) native {
	if elem.Kind() == ast.LiteralKind {
		name, ok := elem.AsLiteral().(types.String)
		if !ok {
			return nil
		}
		switch {
		case isTwinField(list, twinSegments):
			seg, ok := c.s.segments[string(name)]
			if !ok {
				return nil
			}
			i := seg.Index
			return func(tv TwinVars, _ *twinhub.Event, _ int64) tri { return triOf(tv.InSegment(i)) }
		case isTwinField(list, twinTags):
			tag := string(name)
			return func(tv TwinVars, _ *twinhub.Event, _ int64) tri {
				return triOf(slices.Contains(tv.Tags(), tag))
			}
		}
		return nil
	}
	if list.Kind() != ast.ListKind {
		return nil
	}
	var want []string
	for _, e := range list.AsList().Elements() {
		if e.Kind() != ast.LiteralKind {
			return nil
		}
		s, ok := e.AsLiteral().(types.String)
		if !ok {
			return nil
		}
		want = append(want, string(s))
	}
	o := c.operand(elem)
	if o.kind != kindString {
		return nil
	}
	return func(tv TwinVars, ev *twinhub.Event, _ int64) tri {
		v, st := o.s(tv, ev)
		if st != triTrue {
			return st
		}
		return triOf(slices.Contains(want, v))
	}
}

// has compiles has(twin.x) and has(event.x).
func (c nativeCompiler) has(sel ast.SelectExpr) native {
	obj, name := selectOn(sel)
	switch obj {
	case "twin":
		if a, ok := c.s.attributes[name]; ok {
			i := a.Index
			return func(tv TwinVars, _ *twinhub.Event, _ int64) tri { return triOf(tv.Attr(i).Set) }
		}
		if a, ok := c.s.aggregates[name]; ok && a.Kind != agg.TopK {
			i := a.Index
			return func(tv TwinVars, _ *twinhub.Event, now int64) tri {
				_, ok := tv.AggNum(i, now)
				return triOf(ok)
			}
		}
	case "event":
		if f := c.field(name); f != nil {
			slot := f.Slot
			return func(_ TwinVars, ev *twinhub.Event, _ int64) tri {
				return triOf(slot < len(ev.Vals) && ev.Vals[slot].Set)
			}
		}
	}
	return nil
}

// selectOn splits twin.x and event.x; obj is "" for anything else.
func selectOn(sel ast.SelectExpr) (obj, field string) {
	op := sel.Operand()
	if op.Kind() != ast.IdentKind {
		return "", ""
	}
	switch op.AsIdent() {
	case "twin", "event":
		return op.AsIdent(), sel.FieldName()
	}
	return "", ""
}

// field is declared field name of the event type, or nil.
func (c nativeCompiler) field(name string) *Field {
	if c.t == nil {
		return nil
	}
	f, _ := c.t.Field(name)
	return f
}

// operand compiles a value expression: a constant, a twin or event field,
// now, time arithmetic, int and double arithmetic, days_between, and days, hours,
// duration and timestamp of constants. The zero operand means CEL only.
func (c nativeCompiler) operand(e ast.Expr) operand {
	switch e.Kind() {
	case ast.LiteralKind:
		return constant(e.AsLiteral())
	case ast.IdentKind:
		if n := e.AsIdent(); n == "now" || n == nowVar {
			return operand{kind: kindTime, i: func(_ TwinVars, _ *twinhub.Event, now int64) (int64, tri) { return now, triTrue }}
		}
	case ast.SelectKind:
		if e.AsSelect().IsTestOnly() {
			return operand{}
		}
		switch obj, name := selectOn(e.AsSelect()); obj {
		case "twin":
			return c.twinField(name)
		case "event":
			return c.eventField(name)
		}
	case ast.CallKind:
		if !e.AsCall().IsMemberFunction() {
			return c.callOperand(e.AsCall())
		}
	}
	return operand{}
}

// constant is a literal as an operand.
func constant(v any) operand {
	switch v := v.(type) {
	case types.Int:
		return constInt(kindInt, int64(v))
	case types.Double:
		f := float64(v)
		return operand{kind: kindDouble, f: func(TwinVars, *twinhub.Event, int64) (float64, tri) { return f, triTrue }, konst: true, kf: f}
	case types.String:
		s := string(v)
		return operand{kind: kindString, s: func(TwinVars, *twinhub.Event) (string, tri) { return s, triTrue }}
	case types.Bool:
		b := bool(v)
		return operand{kind: kindBool, b: func(TwinVars, *twinhub.Event) (bool, tri) { return b, triTrue }}
	case types.Duration:
		return constInt(kindDuration, int64(v.Duration))
	case types.Timestamp:
		if ns, ok := unixNano(v.Time); ok {
			return constInt(kindTime, ns)
		}
	}
	return operand{}
}

func constInt(k valKind, i int64) operand {
	return operand{kind: k, i: func(TwinVars, *twinhub.Event, int64) (int64, tri) { return i, triTrue }, konst: true, ki: i}
}

// Times whose unix nanoseconds fit an int64 (1678 to 2262); others run in CEL.
var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

func unixNano(t time.Time) (int64, bool) {
	if t.Before(minNanoTime) || t.After(maxNanoTime) {
		return 0, false
	}
	return t.UnixNano(), true
}

// microsToNano converts a time value (unix µs as a float64) to unix ns,
// declining when it does not fit.
func microsToNano(v float64) (int64, tri) {
	us := int64(v)
	if us > math.MaxInt64/1000 || us < math.MinInt64/1000 {
		return 0, triCEL
	}
	return us * 1000, triTrue
}

// twinField compiles twin.<name>.
func (c nativeCompiler) twinField(name string) operand {
	switch name {
	case twinKey:
		return operand{kind: kindString, s: func(tv TwinVars, _ *twinhub.Event) (string, tri) { return tv.Key(), triTrue }}
	case twinRevision:
		return operand{kind: kindInt, i: func(tv TwinVars, _ *twinhub.Event, _ int64) (int64, tri) {
			return int64(tv.Revision()), triTrue
		}}
	}
	if a, ok := c.s.attributes[name]; ok {
		i := a.Index
		return valueOperand(a.Type, func(tv TwinVars, _ *twinhub.Event) (twinhub.Value, bool) {
			v := tv.Attr(i)
			return v, v.Set
		})
	}
	a, ok := c.s.aggregates[name]
	if !ok {
		return operand{}
	}
	// Each getter calls AggNum itself: these run for nearly every
	// evaluation, and a shared helper closure was a call more.
	i := a.Index
	switch aggCELType(a.Spec) {
	case types.IntType:
		return operand{kind: kindInt, i: func(tv TwinVars, _ *twinhub.Event, now int64) (int64, tri) {
			v, ok := tv.AggNum(i, now)
			if !ok {
				return 0, triErr
			}
			return int64(v), triTrue
		}}
	case types.DoubleType:
		return operand{kind: kindDouble, f: func(tv TwinVars, _ *twinhub.Event, now int64) (float64, tri) {
			v, ok := tv.AggNum(i, now)
			if !ok {
				return 0, triErr
			}
			return v, triTrue
		}}
	case types.TimestampType:
		return operand{kind: kindTime, i: func(tv TwinVars, _ *twinhub.Event, now int64) (int64, tri) {
			v, ok := tv.AggNum(i, now)
			if !ok {
				return 0, triErr
			}
			return microsToNano(v)
		}}
	}
	return operand{}
}

// eventField compiles event.<name> for an event of type c.t.
func (c nativeCompiler) eventField(name string) operand {
	if c.t == nil {
		return operand{}
	}
	str := func(get func(*twinhub.Event) string) operand {
		return operand{kind: kindString, s: func(_ TwinVars, ev *twinhub.Event) (string, tri) { return get(ev), triTrue }}
	}
	switch name {
	case IDField:
		return str(func(ev *twinhub.Event) string { return ev.ID })
	case SourceField:
		return str(func(ev *twinhub.Event) string { return ev.Source })
	case TypeField:
		typ := c.t.Name
		return str(func(*twinhub.Event) string { return typ })
	case c.s.Key:
		return str(func(ev *twinhub.Event) string { return ev.Key })
	case TimeField:
		return operand{kind: kindTime, i: func(_ TwinVars, ev *twinhub.Event, _ int64) (int64, tri) { return ev.Time, triTrue }}
	case PositionField:
		return operand{kind: kindInt, i: func(_ TwinVars, ev *twinhub.Event, _ int64) (int64, tri) { return ev.Position, triTrue }}
	}
	f := c.field(name)
	if f == nil {
		return operand{}
	}
	slot := f.Slot
	return valueOperand(f.Type, func(_ TwinVars, ev *twinhub.Event) (twinhub.Value, bool) {
		if slot >= len(ev.Vals) || !ev.Vals[slot].Set {
			return twinhub.Value{}, false
		}
		return ev.Vals[slot], true
	})
}

// valueOperand reads a twinhub.Value of type typ as CEL sees it (celValue).
func valueOperand(typ twinhub.FieldType, get func(TwinVars, *twinhub.Event) (twinhub.Value, bool)) operand {
	switch typ {
	case twinhub.TypeString, twinhub.TypeEnum:
		return operand{kind: kindString, s: func(tv TwinVars, ev *twinhub.Event) (string, tri) {
			v, ok := get(tv, ev)
			if !ok {
				return "", triErr
			}
			return v.Str, triTrue
		}}
	case twinhub.TypeBool:
		return operand{kind: kindBool, b: func(tv TwinVars, ev *twinhub.Event) (bool, tri) {
			v, ok := get(tv, ev)
			if !ok {
				return false, triErr
			}
			return v.Num != 0, triTrue
		}}
	case twinhub.TypeInteger:
		return operand{kind: kindInt, i: func(tv TwinVars, ev *twinhub.Event, _ int64) (int64, tri) {
			v, ok := get(tv, ev)
			if !ok {
				return 0, triErr
			}
			return int64(v.Num), triTrue
		}}
	case twinhub.TypeNumber:
		return operand{kind: kindDouble, f: func(tv TwinVars, ev *twinhub.Event, _ int64) (float64, tri) {
			v, ok := get(tv, ev)
			if !ok {
				return 0, triErr
			}
			return v.Num, triTrue
		}}
	case twinhub.TypeTime:
		return operand{kind: kindTime, i: func(tv TwinVars, ev *twinhub.Event, _ int64) (int64, tri) {
			v, ok := get(tv, ev)
			if !ok {
				return 0, triErr
			}
			return microsToNano(v.Num)
		}}
	}
	return operand{}
}

// callOperand compiles arithmetic and helper calls.
func (c nativeCompiler) callOperand(call ast.CallExpr) operand {
	args := call.Args()
	fn := call.FunctionName()
	if len(args) == 1 && args[0].Kind() == ast.LiteralKind {
		return foldConstant(fn, args[0].AsLiteral())
	}
	if len(args) != 2 {
		return operand{}
	}
	l, r := c.operand(args[0]), c.operand(args[1])
	if !l.ok() || !r.ok() {
		return operand{}
	}
	switch {
	case fn == "days_between" && l.kind == kindTime && r.kind == kindTime:
		return operand{kind: kindDouble, f: func(tv TwinVars, ev *twinhub.Event, now int64) (float64, tri) {
			a, sa := l.i(tv, ev, now)
			b, sb := r.i(tv, ev, now)
			if st := both(sa, sb); st != triTrue {
				return 0, st
			}
			return daysBetween(time.Unix(0, a), time.Unix(0, b)), triTrue
		}}
	case l.kind == kindDouble && r.kind == kindDouble:
		return doubleArith(fn, l, r)
	case l.kind == kindInt && r.kind == kindInt:
		if op := intOps[fn]; op != nil {
			return intArith(kindInt, l, r, op)
		}
	case fn == operators.Subtract && l.kind == kindTime && r.kind == kindTime:
		return intArith(kindDuration, l, r, subChecked)
	case fn == operators.Subtract && l.kind == kindTime && r.kind == kindDuration:
		return intArith(kindTime, l, r, subChecked)
	case fn == operators.Add && l.kind == kindTime && r.kind == kindDuration:
		return intArith(kindTime, l, r, addChecked)
	case fn == operators.Add && l.kind == kindDuration && r.kind == kindTime:
		return intArith(kindTime, l, r, addChecked)
	}
	return operand{}
}

// foldConstant evaluates days, hours, duration and timestamp of a literal
// once, with the functions CEL runs.
func foldConstant(fn string, lit any) operand {
	switch fn {
	case "days", "hours":
		unit := time.Hour
		if fn == "days" {
			unit = 24 * time.Hour
		}
		var n float64
		switch v := lit.(type) {
		case types.Int:
			n = float64(v)
		case types.Double:
			n = float64(v)
		default:
			return operand{}
		}
		return constant(durationOf(fn, n, unit))
	case "duration", "timestamp":
		s, ok := lit.(types.String)
		if !ok {
			return operand{}
		}
		if fn == "duration" {
			return constant(s.ConvertToType(types.DurationType))
		}
		return constant(s.ConvertToType(types.TimestampType))
	}
	return operand{}
}

// doubleArith compiles +, -, * and / of doubles, which in CEL never fail.
func doubleArith(fn string, l, r operand) operand {
	var op func(a, b float64) float64
	switch fn {
	case operators.Add:
		op = func(a, b float64) float64 { return a + b }
	case operators.Subtract:
		op = func(a, b float64) float64 { return a - b }
	case operators.Multiply:
		op = func(a, b float64) float64 { return a * b }
	case operators.Divide:
		op = func(a, b float64) float64 { return a / b }
	default:
		return operand{}
	}
	return operand{kind: kindDouble, f: func(tv TwinVars, ev *twinhub.Event, now int64) (float64, tri) {
		a, sa := l.f(tv, ev, now)
		b, sb := r.f(tv, ev, now)
		if st := both(sa, sb); st != triTrue {
			return 0, st
		}
		return op(a, b), triTrue
	}}
}

// intArith compiles int arithmetic, and time and duration arithmetic in
// nanoseconds; a result that overflows declines, since CEL's answer there
// depends on its ranges.
func intArith(k valKind, l, r operand, op func(a, b int64) (int64, bool)) operand {
	if r.konst { // twin.events_total % 1000: one call, not two
		b := r.ki
		return operand{kind: k, i: func(tv TwinVars, ev *twinhub.Event, now int64) (int64, tri) {
			a, sa := l.i(tv, ev, now)
			if sa != triTrue {
				return 0, sa
			}
			v, ok := op(a, b)
			if !ok {
				return 0, triCEL
			}
			return v, triTrue
		}}
	}
	return operand{kind: k, i: func(tv TwinVars, ev *twinhub.Event, now int64) (int64, tri) {
		a, sa := l.i(tv, ev, now)
		b, sb := r.i(tv, ev, now)
		if st := both(sa, sb); st != triTrue {
			return 0, st
		}
		v, ok := op(a, b)
		if !ok {
			return 0, triCEL
		}
		return v, triTrue
	}}
}

// intOps are CEL's int arithmetic. Where CEL fails (an overflow, a zero
// divisor) they report false and the closure declines: CEL gives its error.
var intOps = map[string]func(a, b int64) (int64, bool){
	operators.Add:      addChecked,
	operators.Subtract: subChecked,
	operators.Multiply: mulChecked,
	operators.Divide: func(a, b int64) (int64, bool) {
		if b == 0 || (a == math.MinInt64 && b == -1) {
			return 0, false
		}
		return a / b, true
	},
	operators.Modulo: func(a, b int64) (int64, bool) {
		if b == 0 || (a == math.MinInt64 && b == -1) {
			return 0, false
		}
		return a % b, true // Go's remainder takes the dividend's sign, as CEL's does
	},
}

func mulChecked(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	p := a * b
	if p/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
		return 0, false
	}
	return p, true
}

func addChecked(a, b int64) (int64, bool) {
	s := a + b
	return s, (s > a) == (b > 0)
}

func subChecked(a, b int64) (int64, bool) {
	s := a - b
	return s, (s < a) == (b > 0)
}
