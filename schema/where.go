package schema

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/twinhub/twinhub"
)

// maxWhereLen bounds a where expression, in code points.
const maxWhereLen = 4096

// Where is an aggregate's compiled filter: one CEL program per event type the
// aggregate is on, type-checked against that event type's fields. It is
// immutable and safe for concurrent use.
type Where struct {
	Expr  string
	progs []cel.Program // by event type index; nil for types the aggregate is not on
}

// Match reports whether event ev of type t passes the filter. ev.Vals must
// follow t's slots. An evaluation error (such as reading an optional field
// the event does not carry) or a non-bool result is false. A nil *Where
// matches every event. Match allocates a little; only aggregates with a
// where pay for it.
func (w *Where) Match(t *EventType, ev *twinhub.Event) bool {
	if w == nil {
		return true
	}
	if t == nil || ev == nil || t.Index < 0 || t.Index >= len(w.progs) || w.progs[t.Index] == nil || t.obj == nil {
		return false
	}
	out, _, err := w.progs[t.Index].Eval(&eventActivation{event: eventVal{t: t, ev: ev}})
	if err != nil {
		return false
	}
	b, ok := out.(types.Bool)
	return ok && bool(b)
}

// eventActivation binds the single variable `event` without the map that
// cel.Program.Eval would otherwise build.
type eventActivation struct {
	event eventVal
}

func (a *eventActivation) ResolveName(name string) (any, bool) {
	if name == "event" {
		return &a.event, true
	}
	return nil, false
}

func (a *eventActivation) Parent() interpreter.Activation { return nil }

// eventVal is an event as a CEL object. Field reads go through the getters
// in celObject.fields (the interpreter calls them directly for checked
// expressions); Get and IsSet serve dynamic access.
type eventVal struct {
	t  *EventType
	ev *twinhub.Event
}

var errEventConvert = errors.New("an event cannot be converted")

func (e *eventVal) ConvertToNative(reflect.Type) (any, error) { return nil, errEventConvert }

func (e *eventVal) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return e.t.obj.typ
	}
	if t.TypeName() == e.t.obj.typ.TypeName() {
		return e
	}
	return types.NewErr("type conversion error from %s to %s", e.t.obj.typ.TypeName(), t.TypeName())
}

func (e *eventVal) Equal(other ref.Val) ref.Val {
	o, ok := other.(*eventVal)
	return types.Bool(ok && o.ev == e.ev)
}

func (e *eventVal) Type() ref.Type { return e.t.obj.typ }
func (e *eventVal) Value() any     { return e }

// Get implements traits.Indexer.
func (e *eventVal) Get(index ref.Val) ref.Val { return e.t.obj.get(e, index) }

// IsSet implements traits.FieldTester.
func (e *eventVal) IsSet(field ref.Val) ref.Val { return e.t.obj.isSet(e, field) }

// celObject is a CEL struct type whose fields are read through getters:
// an event type, the twin, a segment change.
type celObject struct {
	typ    *types.Type
	names  []string // field names, in the order problems list them
	fields map[string]*types.FieldType
}

func (o *celObject) add(name string, ft *types.FieldType) {
	o.names = append(o.names, name)
	o.fields[name] = ft
}

// get reads field index of target, an object of type o, for dynamic access.
func (o *celObject) get(target any, index ref.Val) ref.Val {
	name, ok := index.(types.String)
	if !ok {
		return types.NewErr("no such key: %v", index)
	}
	ft, ok := o.fields[string(name)]
	if !ok {
		return types.NewErr("no such field: %s", name)
	}
	v, err := ft.GetFrom(target)
	if err != nil {
		return types.WrapErr(err)
	}
	return v.(ref.Val)
}

// isSet tests field of target, an object of type o, for has().
func (o *celObject) isSet(target any, field ref.Val) ref.Val {
	name, ok := field.(types.String)
	if !ok {
		return types.NewErr("no such key: %v", field)
	}
	ft, ok := o.fields[string(name)]
	if !ok {
		return types.NewErr("no such field: %s", name)
	}
	return types.Bool(ft.IsSet(target))
}

// celTypeName is the CEL type name of event type name; it shows in type errors.
func celTypeName(name string) string { return "twinhub.event." + name }

func newCELObject(t *EventType, key string) *celObject {
	o := &celObject{typ: types.NewObjectType(celTypeName(t.Name)), fields: map[string]*types.FieldType{}}
	always := func(any) bool { return true }
	str := func(get func(*eventVal) string) *types.FieldType {
		return &types.FieldType{Type: types.StringType, IsSet: always, GetFrom: func(target any) (any, error) {
			e, ok := target.(*eventVal)
			if !ok {
				return nil, errEventConvert
			}
			return types.String(get(e)), nil
		}}
	}
	add := o.add
	add(IDField, str(func(e *eventVal) string { return e.ev.ID }))
	add(TypeField, str(func(e *eventVal) string { return e.t.Name }))
	add(key, str(func(e *eventVal) string { return e.ev.Key }))
	add(SourceField, str(func(e *eventVal) string { return e.ev.Source }))
	add(TimeField, &types.FieldType{Type: types.TimestampType, IsSet: always, GetFrom: func(target any) (any, error) {
		e, ok := target.(*eventVal)
		if !ok {
			return nil, errEventConvert
		}
		return types.Timestamp{Time: time.Unix(0, e.ev.Time).UTC()}, nil
	}})
	add(PositionField, &types.FieldType{Type: types.IntType, IsSet: always, GetFrom: func(target any) (any, error) {
		e, ok := target.(*eventVal)
		if !ok {
			return nil, errEventConvert
		}
		return types.Int(e.ev.Position), nil // 0 when the event has none
	}})
	for _, f := range t.Fields {
		add(f.Name, declaredField(f))
	}
	return o
}

func declaredField(f *Field) *types.FieldType {
	slot, name, typ := f.Slot, f.Name, f.Type
	// An explicit null (Value.Null) is no value: it reads as unset.
	value := func(target any) (twinhub.Value, bool) {
		e, ok := target.(*eventVal)
		if !ok || slot >= len(e.ev.Vals) || !e.ev.Vals[slot].Set {
			return twinhub.Value{}, false
		}
		return e.ev.Vals[slot], true
	}
	ft := &types.FieldType{
		Type:  celType(typ),
		IsSet: func(target any) bool { _, ok := value(target); return ok },
	}
	ft.GetFrom = func(target any) (any, error) {
		v, ok := value(target)
		if !ok {
			return nil, fmt.Errorf("field %s is not set", name)
		}
		return celValue(typ, v), nil
	}
	return ft
}

// celValue is v, of type typ, as the CEL value of celType(typ).
func celValue(typ twinhub.FieldType, v twinhub.Value) ref.Val {
	switch typ {
	case twinhub.TypeString, twinhub.TypeEnum:
		return types.String(v.Str)
	case twinhub.TypeInteger:
		return types.Int(int64(v.Num))
	case twinhub.TypeBool:
		return types.Bool(v.Num != 0)
	case twinhub.TypeTime:
		return types.Timestamp{Time: v.Time()}
	default:
		return types.Double(v.Num)
	}
}

func celType(t twinhub.FieldType) *types.Type {
	switch t {
	case twinhub.TypeString, twinhub.TypeEnum:
		return types.StringType
	case twinhub.TypeInteger:
		return types.IntType
	case twinhub.TypeBool:
		return types.BoolType
	case twinhub.TypeTime:
		return types.TimestampType
	default:
		return types.DoubleType
	}
}

// celProvider resolves the event object types for the checker and the
// interpreter and defers everything else to CEL's standard registry.
type celProvider struct {
	*types.Registry
	objects map[string]*celObject // by CEL type name
}

func (p *celProvider) FindStructType(name string) (*types.Type, bool) {
	if o, ok := p.objects[name]; ok {
		return types.NewTypeTypeWithParam(o.typ), true
	}
	return p.Registry.FindStructType(name)
}

func (p *celProvider) FindStructFieldNames(name string) ([]string, bool) {
	if o, ok := p.objects[name]; ok {
		return o.names, true
	}
	return p.Registry.FindStructFieldNames(name)
}

func (p *celProvider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if o, ok := p.objects[name]; ok {
		ft, ok := o.fields[field]
		return ft, ok
	}
	return p.Registry.FindStructFieldType(name, field)
}

func (p *celProvider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := p.objects[name]; ok {
		return types.NewErr("%s cannot be constructed in expressions", name)
	}
	return p.Registry.NewValue(name, fields)
}

// celEnvs holds one CEL environment per event type, in which `event` is an
// object of that type.
type celEnvs struct {
	base *cel.Env
	envs []*cel.Env // by event type index
}

// newCELProvider returns a provider that knows objs besides CEL's own types.
func newCELProvider(objs ...*celObject) (*celProvider, error) {
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	p := &celProvider{Registry: reg, objects: map[string]*celObject{}}
	for _, o := range objs {
		p.objects[o.typ.TypeName()] = o
	}
	return p, nil
}

func newCELEnvs(events []*EventType, key string) (*celEnvs, error) {
	objs := make([]*celObject, len(events))
	for i, t := range events {
		t.obj = newCELObject(t, key)
		objs[i] = t.obj
	}
	p, err := newCELProvider(objs...)
	if err != nil {
		return nil, err
	}
	base, err := cel.NewEnv(
		cel.CustomTypeProvider(p),
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
		cel.ParserExpressionSizeLimit(maxWhereLen),
	)
	if err != nil {
		return nil, err
	}
	c := &celEnvs{base: base, envs: make([]*cel.Env, len(events))}
	for i, t := range events {
		if c.envs[i], err = base.Extend(cel.Variable("event", t.obj.typ)); err != nil {
			return nil, err
		}
	}
	return c, nil
}
