package mapping

import (
	"fmt"
	"reflect"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
	"github.com/valyala/fastjson"
	"go.yaml.in/yaml/v3"

	"github.com/twinhub/twinhub"
)

// maxWhenLen bounds a condition, in code points.
const maxWhenLen = 4096

// celEnv is the environment conditions compile in: record, a map from
// column or member name to its value; item, the element of each; op, the
// Debezium operation.
type celEnv struct {
	env *cel.Env
}

func newCELEnv() (*celEnv, error) {
	env, err := cel.NewEnv(
		cel.Variable("record", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("item", cel.DynType),
		cel.Variable("op", cel.StringType),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		cel.DefaultUTCTimeZone(true),
		cel.ParserExpressionSizeLimit(maxWhenLen),
		ext.Strings(),
	)
	if err != nil {
		return nil, err
	}
	return &celEnv{env: env}, nil
}

// compileWhen compiles a condition, reporting problems at their position
// inside the YAML scalar n. sc says whether item and op exist.
func (p *parser) compileWhen(n *yaml.Node, path, expr string, env *celEnv, sc pathScope) cel.Program {
	report := func(line, col int, msg, hint string) {
		l, c := n.Line, n.Column
		if line > 0 {
			l, c = p.exprPos(n, expr, line, col)
		}
		p.Problems = append(p.Problems, schemaProblem(l, c, path, msg, hint))
	}
	parsed, iss := env.env.Parse(expr)
	if iss.Err() != nil {
		for _, e := range iss.Errors() {
			msg := e.Message
			if strings.HasPrefix(msg, "Syntax error: mismatched input '<EOF>'") {
				msg = "Syntax error: unexpected end of expression"
			} else if i := strings.Index(msg, " expecting "); i > 0 {
				msg = msg[:i]
			}
			report(e.Location.Line(), e.Location.Column(), msg, "")
		}
		return nil
	}
	checked, iss := env.env.Check(parsed)
	if iss.Err() != nil {
		for _, e := range iss.Errors() {
			hint := ""
			if strings.Contains(e.Message, "undeclared reference") {
				hint = "the variables are record (record.column or record[\"a column\"]), item (inside each) and op (Debezium)"
			}
			report(e.Location.Line(), e.Location.Column(), e.Message, hint)
		}
		return nil
	}
	if out := checked.OutputType(); !out.IsExactType(types.BoolType) && out.Kind() != types.DynKind {
		report(0, 0, fmt.Sprintf("a condition must be a bool expression, not %s", out), `e.g. record.quantity != "0"`)
		return nil
	}
	for _, r := range checked.NativeRep().ReferenceMap() {
		switch {
		case r.Name == "item" && !sc.each:
			report(0, 0, "item exists only in an entry with each", "add each: PATH, or use record")
			return nil
		case r.Name == "op" && !sc.debezium:
			report(0, 0, "op exists only for format debezium", "")
			return nil
		}
	}
	prg, err := env.env.Program(checked, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		report(0, 0, err.Error(), "")
		return nil
	}
	return prg
}

// when evaluates the entry's condition for the current record (and element).
func (mp *Mapper) when(en *entry) (bool, error) {
	out, _, err := en.when.Eval(&mp.act)
	if err != nil {
		return false, &twinhub.Error{Code: twinhub.EINVALID, Message: fmt.Sprintf("%s.when: %s: %v", en.name, en.whenText, err)}
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, &twinhub.Error{Code: twinhub.EINVALID, Message: fmt.Sprintf("%s.when: %s returned %s, not a bool", en.name, en.whenText, out.Type().TypeName())}
	}
	return bool(b), nil
}

// activation binds record, item and op without building a map per record.
type activation struct {
	mp *Mapper
}

var (
	opC ref.Val = types.String("c")
	opU ref.Val = types.String("u")
	opD ref.Val = types.String("d")
	opR ref.Val = types.String("r")
	opX ref.Val = types.String("")
)

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "record":
		return &a.mp.celRec, true
	case "item":
		if !a.mp.inEach {
			return types.NullValue, true
		}
		return celOf(a.mp.item), true
	case "op":
		switch a.mp.op {
		case 'c':
			return opC, true
		case 'u':
			return opU, true
		case 'd':
			return opD, true
		case 'r':
			return opR, true
		}
		return opX, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// celOf converts a value for conditions: texts are strings, JSON keeps its
// types (numbers are doubles), objects are maps read lazily.
func celOf(v value) ref.Val {
	switch v.kind {
	case kText, kFloat:
		return types.String(v.text)
	case kInt:
		return types.Int(v.n)
	case kBool:
		return types.Bool(v.n != 0)
	case kJSON:
		return jsonCEL(v.j)
	}
	return types.NullValue
}

func jsonCEL(v *fastjson.Value) ref.Val {
	switch v.Type() {
	case fastjson.TypeObject:
		return &lazyMap[objSrc]{src: objSrc{v}}
	case fastjson.TypeArray:
		a, _ := v.Array()
		elems := make([]ref.Val, len(a))
		for i, e := range a {
			elems[i] = jsonCEL(e)
		}
		return types.NewRefValList(types.DefaultTypeAdapter, elems)
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return types.String(b2s(b))
	case fastjson.TypeNumber:
		f, _ := v.Float64()
		return types.Double(f)
	case fastjson.TypeTrue:
		return types.True
	case fastjson.TypeFalse:
		return types.False
	}
	return types.NullValue
}

// mapSource is what a lazy CEL map reads from.
type mapSource interface {
	find(key string) (ref.Val, bool)
	keys() []string
}

// lazyMap is a CEL map over a record, a lookup row or a JSON object that
// converts only the members an expression reads.
type lazyMap[S mapSource] struct {
	src S
}

var errMapConvert = fmt.Errorf("a record map cannot be converted")

func (m *lazyMap[S]) materialize() traits.Mapper {
	mm := map[ref.Val]ref.Val{}
	for _, k := range m.src.keys() {
		if v, ok := m.src.find(k); ok {
			mm[types.String(k)] = v
		}
	}
	return types.NewRefValMap(types.DefaultTypeAdapter, mm)
}

func (m *lazyMap[S]) ConvertToNative(t reflect.Type) (any, error) {
	if m == nil {
		return nil, errMapConvert
	}
	return m.materialize().ConvertToNative(t)
}

func (m *lazyMap[S]) ConvertToType(t ref.Type) ref.Val {
	switch t.TypeName() {
	case types.MapType.TypeName():
		return m
	case types.TypeType.TypeName():
		return types.MapType
	}
	return types.NewErr("type conversion error from map to %s", t.TypeName())
}

func (m *lazyMap[S]) Equal(other ref.Val) ref.Val { return m.materialize().Equal(other) }
func (m *lazyMap[S]) Type() ref.Type              { return types.MapType }
func (m *lazyMap[S]) Value() any                  { return m.materialize().Value() }

func (m *lazyMap[S]) Contains(key ref.Val) ref.Val {
	_, found := m.Find(key)
	return types.Bool(found)
}

func (m *lazyMap[S]) Get(key ref.Val) ref.Val {
	v, found := m.Find(key)
	if !found {
		if v != nil {
			return v
		}
		return types.NewErr("no such key: %v", key)
	}
	return v
}

func (m *lazyMap[S]) Iterator() traits.Iterator {
	return types.NewStringList(types.DefaultTypeAdapter, m.src.keys()).Iterator()
}

func (m *lazyMap[S]) Size() ref.Val { return types.Int(len(m.src.keys())) }

func (m *lazyMap[S]) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return nil, false
	}
	return m.src.find(string(k))
}

// objSrc reads a JSON object.
type objSrc struct{ v *fastjson.Value }

func (s objSrc) find(key string) (ref.Val, bool) {
	o, _ := s.v.Object()
	e := o.Get(key)
	if e == nil {
		return nil, false
	}
	return jsonCEL(e), true
}

func (s objSrc) keys() []string {
	o, _ := s.v.Object()
	var ks []string
	o.Visit(func(k []byte, _ *fastjson.Value) { ks = append(ks, string(k)) })
	return ks
}

// rowSrc reads a CSV lookup row.
type rowSrc struct {
	t *table
	r int32
}

func (s rowSrc) find(key string) (ref.Val, bool) {
	c, ok := s.t.colIdx[key]
	if !ok {
		return nil, false
	}
	return types.String(s.t.cell(s.r, c)), true
}

func (s rowSrc) keys() []string { return s.t.cols }

// recordMap is `record`: the joined rows under their names, then the CSV
// columns (as strings, null_values not applied) or the JSON members.
type recordMap = lazyMap[recordSrc]

type recordSrc struct{ mp *Mapper }

func (s recordSrc) find(key string) (ref.Val, bool) {
	mp := s.mp
	for i, j := range mp.m.joins {
		if j.as != key {
			continue
		}
		r := &mp.rows[i]
		if !r.ok {
			return nil, false
		}
		if j.table.csv {
			return &lazyMap[rowSrc]{src: rowSrc{t: j.table, r: r.row}}, true
		}
		if v := mp.joinJSON(i); v != nil {
			return jsonCEL(v), true
		}
		return nil, false
	}
	if mp.m.csv {
		i, ok := mp.headerIndex()[key]
		if !ok || i >= len(mp.rec.Fields) {
			return nil, false
		}
		return types.String(mp.rec.Fields[i]), true
	}
	if mp.root == nil {
		return nil, false
	}
	return objSrc{mp.root}.find(key)
}

func (s recordSrc) keys() []string {
	mp := s.mp
	var ks []string
	for i, j := range mp.m.joins {
		if mp.rows[i].ok {
			ks = append(ks, j.as)
		}
	}
	if mp.m.csv {
		for i, h := range mp.hdr {
			if i < len(mp.rec.Fields) {
				ks = append(ks, h)
			}
		}
		return ks
	}
	if mp.root != nil {
		ks = append(ks, objSrc{mp.root}.keys()...)
	}
	return ks
}
