package schema

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
	celparser "cel.dev/cel-go/parser"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/agg"
)

// Names every twin has besides its attributes and aggregates.
const (
	twinKey      = "key"
	twinRevision = "revision"
	twinSegments = "segments"
	twinTags     = "tags"
)

// twinBuiltins are the twin's own fields, which attribute and aggregate names
// must not take.
var twinBuiltins = []string{twinKey, twinRevision, twinSegments, twinTags}

// durationNumberRE matches CEL's refusal to compare a duration with a number.
var durationNumberRE = regexp.MustCompile(`applied to '\((duration, (int|double)|(int|double), duration)\)'`)

// nowVar is the hidden name days_since expands to: it always means the
// evaluation's now, even inside a comprehension that names a variable now.
const nowVar = "@now"

// Kinds of `event` an expression over the twin may see.
const (
	eventNone   = iota // segments, rules without on
	eventTyped         // an event of one type
	eventChange        // a segment entry or exit
)

// twinEnvs are the CEL environments of segment predicates, rule conditions
// and action templates: `twin` and `now` in all of them, `event` depending on
// what triggers the rule.
type twinEnvs struct {
	s      *Schema
	base   *cel.Env // twin, now and the helpers; no event
	change *cel.Env // base plus event as a segment change
	byType []*cel.Env
	twin   *celObject
	rt     *runtime
}

// runtime is what every compiled expression of one Schema shares when it
// runs: the object types, and a pool of activations, so that evaluation
// does not allocate one per call.
type runtime struct {
	twin, change *celObject
	acts         sync.Pool
}

func newTwinEnvs(s *Schema) (*twinEnvs, error) {
	e := &twinEnvs{s: s, twin: newTwinObject(s), byType: make([]*cel.Env, len(s.Events))}
	change := newChangeObject()
	e.rt = &runtime{twin: e.twin, change: change}
	e.rt.acts.New = func() any { return new(activation) }
	objs := []*celObject{e.twin, change}
	for _, t := range s.Events {
		if t.obj != nil {
			objs = append(objs, t.obj)
		}
	}
	p, err := newCELProvider(objs...)
	if err != nil {
		return nil, err
	}
	e.base, err = cel.NewEnv(append([]cel.EnvOption{
		cel.CustomTypeProvider(p),
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
		cel.ParserExpressionSizeLimit(maxWhereLen),
		cel.Variable("twin", e.twin.typ),
		cel.Variable("now", types.TimestampType),
		cel.Variable(nowVar, types.TimestampType),
		cel.Macros(cel.GlobalMacro("days_since", 1, expandDaysSince)),
	}, helperFunctions()...)...)
	if err != nil {
		return nil, err
	}
	if e.change, err = e.base.Extend(cel.Variable("event", change.typ)); err != nil {
		return nil, err
	}
	return e, nil
}

// forType returns the environment in which event is an event of type t.
func (e *twinEnvs) forType(t *EventType) (*cel.Env, error) {
	if e.byType[t.Index] == nil {
		if t.obj == nil {
			return nil, errors.New("event type " + t.Name + " has no expression type")
		}
		env, err := e.base.Extend(cel.Variable("event", t.obj.typ))
		if err != nil {
			return nil, err
		}
		e.byType[t.Index] = env
	}
	return e.byType[t.Index], nil
}

// expandDaysSince rewrites days_since(t) to days_between(t, @now), so that
// it uses the evaluation's now without a function that could see it.
func expandDaysSince(eh celparser.ExprHelper, _ ast.Expr, args []ast.Expr) (ast.Expr, *common.Error) {
	return eh.NewCall("days_between", args[0], eh.NewIdent(nowVar)), nil
}

// helperFunctions declares days, hours and days_between.
func helperFunctions() []cel.EnvOption {
	span := func(name string, unit time.Duration) cel.EnvOption {
		return cel.Function(name,
			cel.Overload(name+"_int", []*cel.Type{cel.IntType}, cel.DurationType,
				cel.UnaryBinding(func(v ref.Val) ref.Val { return durationOf(name, float64(v.(types.Int)), unit) })),
			cel.Overload(name+"_double", []*cel.Type{cel.DoubleType}, cel.DurationType,
				cel.UnaryBinding(func(v ref.Val) ref.Val { return durationOf(name, float64(v.(types.Double)), unit) })),
		)
	}
	return []cel.EnvOption{
		span("days", 24*time.Hour),
		span("hours", time.Hour),
		cel.Function("days_between",
			cel.Overload("days_between_timestamp_timestamp", []*cel.Type{cel.TimestampType, cel.TimestampType}, cel.DoubleType,
				cel.BinaryBinding(func(a, b ref.Val) ref.Val {
					return types.Double(daysBetween(a.(types.Timestamp).Time, b.(types.Timestamp).Time))
				}))),
	}
}

// maxSpan is the longest duration CEL holds (about 292 years).
const maxSpan = float64(math.MaxInt64)

func durationOf(name string, n float64, unit time.Duration) ref.Val {
	d := n * float64(unit)
	if math.IsNaN(d) || d >= maxSpan || d <= -maxSpan {
		return types.NewErr("%s(%v) is out of range", name, n)
	}
	return types.Duration{Duration: time.Duration(d)}
}

// daysBetween is b - a in days, fractional; it does not overflow for times
// centuries apart, as time.Sub would.
func daysBetween(a, b time.Time) float64 {
	secs := float64(b.Unix()-a.Unix()) + float64(b.Nanosecond()-a.Nanosecond())/1e9
	return secs / 86400
}

// aggCELType is the CEL type under which expressions read an aggregate of
// spec sp as twin.<name>.
func aggCELType(sp agg.Spec) *types.Type {
	switch sp.Kind {
	case agg.Count, agg.Distinct:
		return types.IntType
	case agg.TopK:
		return types.NewListType(types.StringType)
	case agg.Min, agg.Max, agg.First, agg.Last:
		if sp.IsTime {
			return types.TimestampType
		}
		return types.DoubleType
	case agg.Sum, agg.Avg, agg.EWMA, agg.TimeSince:
		return types.DoubleType
	}
	return types.DynType // an aggregate whose kind was invalid; reported elsewhere
}

// attrCELType is the CEL type of an attribute; dyn when its sources
// disagreed on a type (reported elsewhere).
func attrCELType(t twinhub.FieldType) *types.Type {
	if t == 0 {
		return types.DynType
	}
	return celType(t)
}

// twinVal is a twin as a CEL object: fields are read from TwinVars through
// the getters of the twin celObject.
type twinVal struct {
	obj *celObject
	tv  TwinVars
	now int64
}

var errTwinConvert = errors.New("a twin cannot be converted")

func (v *twinVal) ConvertToNative(reflect.Type) (any, error) { return nil, errTwinConvert }

func (v *twinVal) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return v.obj.typ
	}
	if t.TypeName() == v.obj.typ.TypeName() {
		return v
	}
	return types.NewErr("type conversion error from %s to %s", v.obj.typ.TypeName(), t.TypeName())
}

func (v *twinVal) Equal(other ref.Val) ref.Val {
	o, ok := other.(*twinVal)
	return types.Bool(ok && o == v) // TwinVars need not be comparable
}

func (v *twinVal) Type() ref.Type { return v.obj.typ }
func (v *twinVal) Value() any     { return v }

// Get implements traits.Indexer.
func (v *twinVal) Get(index ref.Val) ref.Val { return v.obj.get(v, index) }

// IsSet implements traits.FieldTester.
func (v *twinVal) IsSet(field ref.Val) ref.Val { return v.obj.isSet(v, field) }

// twinTypeName is the CEL type of `twin`; it shows in type errors.
const twinTypeName = "twinhub.twin"

// newTwinObject builds the CEL type of `twin` for s: its attributes and
// aggregates (as parsed so far), key, revision, segments and tags. The
// segments getter reads s.Segments when it runs, after they are parsed.
func newTwinObject(s *Schema) *celObject {
	o := &celObject{typ: types.NewObjectType(twinTypeName), fields: map[string]*types.FieldType{}}
	always := func(any) bool { return true }
	getter := func(get func(*twinVal) (ref.Val, error)) func(any) (any, error) {
		return func(target any) (any, error) {
			v, ok := target.(*twinVal)
			if !ok {
				return nil, errTwinConvert
			}
			return get(v)
		}
	}
	o.add(twinKey, &types.FieldType{Type: types.StringType, IsSet: always,
		GetFrom: getter(func(v *twinVal) (ref.Val, error) { return types.String(v.tv.Key()), nil })})
	o.add(twinRevision, &types.FieldType{Type: types.IntType, IsSet: always,
		GetFrom: getter(func(v *twinVal) (ref.Val, error) { return types.Int(v.tv.Revision()), nil })})
	o.add(twinSegments, &types.FieldType{Type: types.NewListType(types.StringType), IsSet: always,
		GetFrom: getter(func(v *twinVal) (ref.Val, error) {
			return types.NewStringList(types.DefaultTypeAdapter, memberships(s, v.tv)), nil
		})})
	o.add(twinTags, &types.FieldType{Type: types.NewListType(types.StringType), IsSet: always,
		GetFrom: getter(func(v *twinVal) (ref.Val, error) {
			return types.NewStringList(types.DefaultTypeAdapter, v.tv.Tags()), nil
		})})
	for _, a := range s.Attributes {
		if _, clash := o.fields[a.Name]; clash {
			continue // reported by the parser
		}
		i, name, typ := a.Index, a.Name, a.Type
		o.add(name, &types.FieldType{Type: attrCELType(typ),
			IsSet: func(target any) bool { v, ok := target.(*twinVal); return ok && v.tv.Attr(i).Set },
			GetFrom: getter(func(v *twinVal) (ref.Val, error) {
				val := v.tv.Attr(i)
				if !val.Set {
					return nil, fmt.Errorf("twin.%s is not set", name)
				}
				return celValue(typ, val), nil
			})})
	}
	for _, a := range s.Aggregates {
		if _, clash := o.fields[a.Name]; clash {
			continue
		}
		o.add(a.Name, aggField(a))
	}
	return o
}

// memberships lists the names of the segments twin tv is in.
func memberships(s *Schema, tv TwinVars) []string {
	var in []string
	for i, seg := range s.Segments {
		if tv.InSegment(i) {
			in = append(in, seg.Name)
		}
	}
	return in
}

// aggField reads aggregate a through TwinVars at the evaluation's now.
func aggField(a *Aggregate) *types.FieldType {
	i, name, spec := a.Index, a.Name, a.Spec
	typ := aggCELType(spec)
	if spec.Kind == agg.TopK {
		return &types.FieldType{Type: typ, IsSet: func(any) bool { return true },
			GetFrom: func(target any) (any, error) {
				v, ok := target.(*twinVal)
				if !ok {
					return nil, errTwinConvert
				}
				top := v.tv.AggTop(i, v.now)
				vals := make([]string, len(top))
				for j, e := range top {
					vals[j] = e.Value
				}
				return types.NewStringList(types.DefaultTypeAdapter, vals), nil
			}}
	}
	return &types.FieldType{Type: typ,
		IsSet: func(target any) bool {
			v, ok := target.(*twinVal)
			if !ok {
				return false
			}
			_, set := v.tv.AggNum(i, v.now)
			return set
		},
		GetFrom: func(target any) (any, error) {
			v, ok := target.(*twinVal)
			if !ok {
				return nil, errTwinConvert
			}
			n, set := v.tv.AggNum(i, v.now)
			if !set {
				return nil, fmt.Errorf("twin.%s has no value", name)
			}
			switch typ {
			case types.IntType:
				return types.Int(n), nil
			case types.TimestampType:
				return types.Timestamp{Time: time.UnixMicro(int64(n)).UTC()}, nil
			}
			return types.Double(n), nil
		}}
}

// changeTypeName is the CEL type of `event` in rules triggered by entering
// or leaving a segment.
const changeTypeName = "twinhub.segment_change"

// changeVal is a segment entry or exit as a CEL object.
type changeVal struct {
	obj *celObject
	c   *Cause
	now int64
}

func (v *changeVal) ConvertToNative(reflect.Type) (any, error) {
	return nil, errors.New("a segment change cannot be converted")
}

func (v *changeVal) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return v.obj.typ
	}
	if t.TypeName() == changeTypeName {
		return v
	}
	return types.NewErr("type conversion error from %s to %s", changeTypeName, t.TypeName())
}

func (v *changeVal) Equal(other ref.Val) ref.Val {
	o, ok := other.(*changeVal)
	return types.Bool(ok && o.c == v.c)
}

func (v *changeVal) Type() ref.Type { return v.obj.typ }
func (v *changeVal) Value() any     { return v }

// Get implements traits.Indexer.
func (v *changeVal) Get(index ref.Val) ref.Val { return v.obj.get(v, index) }

// IsSet implements traits.FieldTester.
func (v *changeVal) IsSet(field ref.Val) ref.Val { return v.obj.isSet(v, field) }

// time is when the change happened: the time of the event that caused it,
// or now when time alone did.
func (v *changeVal) time() int64 {
	if v.c.Event != nil {
		return v.c.Event.Time
	}
	return v.now
}

// kind is the change as an output kind: segment.entered or segment.left.
func (v *changeVal) kind() string {
	if v.c.Enter {
		return string(twinhub.SegmentEntered)
	}
	return string(twinhub.SegmentLeft)
}

func newChangeObject() *celObject {
	o := &celObject{typ: types.NewObjectType(changeTypeName), fields: map[string]*types.FieldType{}}
	always := func(any) bool { return true }
	getter := func(get func(*changeVal) ref.Val) func(any) (any, error) {
		return func(target any) (any, error) {
			v, ok := target.(*changeVal)
			if !ok || v.c == nil {
				return nil, errors.New("not a segment change")
			}
			return get(v), nil
		}
	}
	o.add(TypeField, &types.FieldType{Type: types.StringType, IsSet: always,
		GetFrom: getter(func(v *changeVal) ref.Val { return types.String(v.kind()) })})
	o.add("segment", &types.FieldType{Type: types.StringType, IsSet: always,
		GetFrom: getter(func(v *changeVal) ref.Val {
			if v.c.Segment == nil {
				return types.String("")
			}
			return types.String(v.c.Segment.Name)
		})})
	o.add(TimeField, &types.FieldType{Type: types.TimestampType, IsSet: always,
		GetFrom: getter(func(v *changeVal) ref.Val { return types.Timestamp{Time: time.Unix(0, v.time()).UTC()} })})
	return o
}

// activation binds twin, now and event for one evaluation without the map
// cel.Program.Eval would otherwise build. Activations are pooled per Schema.
type activation struct {
	twin   twinVal
	event  eventVal
	change changeVal
	kind   int // eventNone, eventTyped or eventChange
	now    int64
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "twin":
		return &a.twin, true
	case "now", nowVar:
		return types.Timestamp{Time: time.Unix(0, a.now).UTC()}, true
	case "event":
		switch a.kind {
		case eventTyped:
			return &a.event, true
		case eventChange:
			return &a.change, true
		}
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// Evaluation errors of causes a program cannot run for.
var (
	errNoEvent   = errors.New("the cause has no event")
	errNoTrigger = errors.New("the rule is not triggered by this cause")
)

// bind fills a pooled activation for twin tv at now, with event from c as
// kind needs it.
func (rt *runtime) bind(tv TwinVars, c *Cause, kind int, now int64) (*activation, error) {
	a := rt.acts.Get().(*activation)
	a.twin = twinVal{obj: rt.twin, tv: tv, now: now}
	a.now, a.kind = now, kind
	switch kind {
	case eventTyped:
		if c == nil || c.Type == nil || c.Event == nil || c.Type.obj == nil {
			rt.release(a)
			return nil, errNoEvent
		}
		a.event = eventVal{t: c.Type, ev: c.Event}
	case eventChange:
		if c == nil {
			rt.release(a)
			return nil, errNoEvent
		}
		a.change = changeVal{obj: rt.change, c: c, now: now}
	}
	return a, nil
}

// release returns a to the pool, dropping what it points to.
func (rt *runtime) release(a *activation) {
	*a = activation{}
	rt.acts.Put(a)
}

// twinHint rewrites and explains type-check messages of an expression over
// the twin. kind says what event the expression may read; t is the event
// type when kind is eventTyped. owner says what the expression belongs to,
// for the message about reading event where there is none.
func (e *twinEnvs) twinHint(expr string, kind int, t *EventType, owner string) func(string) (string, string) {
	return func(msg string) (string, string) {
		if m := undefinedFieldRE.FindStringSubmatch(msg); m != nil {
			name := m[1]
			if kind != eventNone && strings.Contains(expr, "event."+name) && !strings.Contains(expr, "twin."+name) {
				obj := e.rt.change
				what := "a segment change"
				if kind == eventTyped {
					obj, what = t.obj, t.Name
				}
				if h := Suggest(name, obj.names); h != "" {
					return msg, h
				}
				return msg, "fields of " + what + ": " + strings.Join(obj.names, ", ")
			}
			if h := Suggest(name, e.twin.names); h != "" {
				return msg, h
			}
			return msg, "the twin has key, revision, segments, tags and the schema's attributes and aggregates"
		}
		if m := undeclaredRefRE.FindStringSubmatch(msg); m != nil {
			name := m[1]
			switch {
			case name == "event" && kind == eventNone && owner == "segment":
				return "a segment cannot read event", "a segment is about the twin alone: read twin.<attribute> or twin.<aggregate>"
			case name == "event" && kind == eventNone:
				return "a rule without on cannot read event; add on: [...]", "list the event types that trigger it, e.g. on: [purchase]"
			case e.twin.fields[name] != nil:
				return msg, "write twin." + name
			case kind == eventTyped && t.obj.fields[name] != nil:
				return msg, "write event." + name
			}
			return msg, "the twin is called twin, e.g. twin.key; now is the time of evaluation"
		}
		if strings.Contains(msg, "'days_between'") && strings.Contains(expr, "days_since") {
			return msg, "days_since and days_between take timestamps, e.g. days_since(twin.last_seen)"
		}
		if durationNumberRE.MatchString(msg) {
			return msg, "a duration compares with a duration: write days(30), hours(12) or duration('90m')"
		}
		return msg, numbersHint(msg)
	}
}
