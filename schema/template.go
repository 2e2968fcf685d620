package schema

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"go.yaml.in/yaml/v3"

	"github.com/twinhub/twinhub/internal/yamlread"
)

// Template delimiters.
const (
	tmplOpen  = "{{"
	tmplClose = "}}"
)

// tmpl is a compiled payload value: a literal, a string that is exactly one
// {{ expression }} (its value keeps its CEL type), text with expressions
// interpolated, or a mapping or list of those. It is immutable.
type tmpl struct {
	path  string // where it is in the document, for evaluation errors
	lit   any    // a literal: string, int64, float64, bool or nil
	expr  *program
	parts []tmplPart
	keys  []string // a mapping: keys and values
	vals  []*tmpl
	items []*tmpl // a list
	kind  tmplKind
}

type tmplKind uint8

const (
	tmplLiteral tmplKind = iota
	tmplExpr
	tmplText
	tmplMap
	tmplList
)

// tmplPart is a piece of a text template: literal text, or an expression.
type tmplPart struct {
	text string
	expr *program
}

// tmplCheck accepts template expressions of any type: they are converted
// to JSON values when they run.
var tmplCheck = exprCheck{label: "template"}

// maxTmplDepth bounds the nesting of payload mappings and lists.
const maxTmplDepth = 32

// payload compiles a payload node: a mapping of templates.
func (p *parser) payload(env *twinEnvs, n *yaml.Node, path string, v variants) *tmpl {
	if n == nil || n.Kind != yaml.MappingNode {
		p.Add(n, path, "write e.g. payload: {message: \"Hello {{ twin.name }}\"}", "expected a mapping, found %s", yamlread.Describe(n))
		return nil
	}
	return p.template(env, n, path, v, 0)
}

// template compiles any payload value.
func (p *parser) template(env *twinEnvs, n *yaml.Node, path string, v variants, depth int) *tmpl {
	n = yamlread.Resolve(n)
	t := &tmpl{path: path}
	if depth > maxTmplDepth {
		p.Add(n, path, "flatten the payload", "payload is nested more than %d levels deep", maxTmplDepth)
		return nil
	}
	switch {
	case n == nil:
		p.Add(n, path, "", "an alias that refers to itself")
		return nil
	case n.Kind == yaml.MappingNode:
		t.kind = tmplMap
		for _, e := range p.Mapping(n, path, nil, "a mapping") {
			if vt := p.template(env, e.V, e.Path, v, depth+1); vt != nil {
				t.keys = append(t.keys, e.Key)
				t.vals = append(t.vals, vt)
			}
		}
	case n.Kind == yaml.SequenceNode:
		t.kind = tmplList
		for i, c := range n.Content {
			if ct := p.template(env, c, fmt.Sprintf("%s[%d]", path, i), v, depth+1); ct != nil {
				t.items = append(t.items, ct)
			}
		}
	case yamlread.IsNull(n):
		t.lit = nil
	case n.ShortTag() == "!!str":
		return p.textTemplate(env, n, path, v, tmplCheck)
	default:
		lit, ok := p.literal(n, path)
		if !ok {
			return nil
		}
		t.lit = lit
	}
	return t
}

// literal decodes a non-string scalar: ints as int64, floats as float64,
// bools; a YAML timestamp stays the text it was written as.
func (p *parser) literal(n *yaml.Node, path string) (any, bool) {
	switch n.ShortTag() {
	case "!!int":
		var i int64
		if n.Decode(&i) == nil {
			return i, true
		}
		f, ok := p.number(n, path)
		return f, ok
	case "!!float":
		f, ok := p.number(n, path)
		return f, ok
	case "!!bool":
		b, ok := p.Bool(n, path)
		return b, ok
	}
	return n.Value, true
}

// tmplPiece is a piece of a template's text before compilation: literal
// text, or an expression starting at byte start of the scalar's value.
type tmplPiece struct {
	text  string
	expr  bool
	start int
}

// splitTemplate cuts s, the value of scalar n, at {{ and }}. It reports a
// {{ that is not closed and returns ok false.
func (p *parser) splitTemplate(n *yaml.Node, path, s string) (pieces []tmplPiece, ok bool) {
	for off := 0; off < len(s); {
		i := strings.Index(s[off:], tmplOpen)
		if i < 0 {
			pieces = append(pieces, tmplPiece{text: s[off:]})
			break
		}
		if i > 0 {
			pieces = append(pieces, tmplPiece{text: s[off : off+i]})
		}
		start := off + i + len(tmplOpen)
		j := strings.Index(s[start:], tmplClose)
		if j < 0 {
			line, col := p.templateLoc(n, s, off+i)(0, 0)
			p.Problems = append(p.Problems, Problem{Line: line, Column: col, Path: path,
				Message: "template: {{ is not closed", Hint: "close it with }}"})
			return nil, false
		}
		pieces = append(pieces, tmplPiece{text: s[start : start+j], expr: true, start: start})
		off = start + j + len(tmplClose)
	}
	return pieces, true
}

// textTemplate compiles the string value of scalar n: a literal when it has
// no {{, one expression when it is exactly one {{ }} (blanks around it
// aside), else text with expressions. An expression alone is checked with
// single (its value is used as it is), one in text with tmplCheck (any
// value can be written into text).
func (p *parser) textTemplate(env *twinEnvs, n *yaml.Node, path string, v variants, single exprCheck) *tmpl {
	s := n.Value
	t := &tmpl{path: path}
	if !strings.Contains(s, tmplOpen) {
		t.lit = s
		return t
	}
	pieces, ok := p.splitTemplate(n, path, s)
	if !ok {
		return nil
	}
	exprs := 0
	blank := true
	for _, pc := range pieces {
		if pc.expr {
			exprs++
		} else if strings.TrimSpace(pc.text) != "" {
			blank = false
		}
	}
	alone := exprs == 1 && blank
	check := tmplCheck
	if alone {
		check = single
	}
	good := true
	for _, pc := range pieces {
		if !pc.expr {
			t.parts = append(t.parts, tmplPart{text: pc.text})
			continue
		}
		loc := p.templateLoc(n, s, pc.start)
		if strings.TrimSpace(pc.text) == "" {
			line, col := loc(0, 0)
			p.Problems = append(p.Problems, Problem{Line: line, Column: col, Path: path,
				Message: "template: {{ }} has no expression", Hint: "write an expression, e.g. {{ twin.key }}"})
			good = false
			continue
		}
		if env == nil {
			good = false
			continue
		}
		pr := p.compileProgram(env, loc, path, pc.text, v, check)
		if pr == nil {
			good = false
		}
		t.parts = append(t.parts, tmplPart{expr: pr})
		if alone {
			t.expr = pr
		}
	}
	if !good {
		return nil
	}
	t.kind = tmplText
	if alone {
		t.kind, t.parts = tmplExpr, nil
	}
	return t
}

// templateLoc locates an expression that starts at byte start of s, the
// value of scalar n.
func (p *parser) templateLoc(n *yaml.Node, s string, start int) exprLoc {
	before := []rune(s[:start])
	return func(line, col int) (int, int) {
		off := len(before)
		if line > 0 {
			off += exprOffset(s[start:], line, col)
		}
		// The position of code point off in s, as a line and column of s.
		l, c := 1, 0
		for _, r := range []rune(s)[:min(off, len([]rune(s)))] {
			if r == '\n' {
				l, c = l+1, 0
			} else {
				c++
			}
		}
		return p.exprPos(n, s, l, c)
	}
}

// eval evaluates the template for twin tv and cause c at now, as JSON
// values: maps, lists, strings, float64, int64, bools and nil.
func (t *tmpl) eval(tv TwinVars, c *Cause, now int64) (any, error) {
	switch t.kind {
	case tmplExpr:
		var out any
		err := t.expr.eval(tv, c, now, func(v ref.Val) error {
			var err error
			out, err = jsonValue(v)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.path, err)
		}
		return out, nil
	case tmplText:
		var b strings.Builder
		for _, part := range t.parts {
			if part.expr == nil {
				b.WriteString(part.text)
				continue
			}
			err := part.expr.eval(tv, c, now, func(v ref.Val) error {
				j, err := jsonValue(v)
				if err != nil {
					return err
				}
				return appendText(&b, j)
			})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.path, err)
			}
		}
		return b.String(), nil
	case tmplMap:
		m := make(map[string]any, len(t.keys))
		for i, k := range t.keys {
			v, err := t.vals[i].eval(tv, c, now)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case tmplList:
		l := make([]any, len(t.items))
		for i, it := range t.items {
			v, err := it.eval(tv, c, now)
			if err != nil {
				return nil, err
			}
			l[i] = v
		}
		return l, nil
	}
	return t.lit, nil
}

// appendText writes JSON value v into text: strings as they are, anything
// else as JSON.
func appendText(b *strings.Builder, v any) error {
	if s, ok := v.(string); ok {
		b.WriteString(s)
		return nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b.Write(j)
	return nil
}

// maxJSONDepth bounds the nesting of a value converted to JSON.
const maxJSONDepth = 64

// jsonValue converts a CEL value to what encoding/json writes as the same
// value: times as RFC 3339 strings, durations like schema durations (30d).
func jsonValue(v ref.Val) (any, error) { return jsonDepth(v, 0) }

func jsonDepth(v ref.Val, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("value is nested too deeply")
	}
	switch v := v.(type) {
	case types.Bool:
		return bool(v), nil
	case types.Int:
		return int64(v), nil
	case types.Uint:
		return uint64(v), nil
	case types.Double:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%v is not a number JSON can hold", f)
		}
		return f, nil
	case types.String:
		return string(v), nil
	case types.Bytes:
		return base64.StdEncoding.EncodeToString(v), nil
	case types.Timestamp:
		return v.Time.UTC().Format(time.RFC3339Nano), nil
	case types.Duration:
		return FormatDuration(v.Duration), nil
	case types.Null:
		return nil, nil
	case *types.Err:
		return nil, v
	case traits.Lister:
		n, ok := v.Size().(types.Int)
		if !ok {
			return nil, errors.New("a list without a size")
		}
		out := make([]any, 0, int(n))
		for i := types.Int(0); i < n; i++ {
			e, err := jsonDepth(v.Get(i), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	case traits.Mapper:
		out := map[string]any{}
		for it := v.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			val, err := jsonDepth(v.Get(k), depth+1)
			if err != nil {
				return nil, err
			}
			key, err := jsonDepth(k, depth+1)
			if err != nil {
				return nil, err
			}
			ks, ok := key.(string)
			if !ok {
				j, _ := json.Marshal(key)
				ks = string(j)
			}
			out[ks] = val
		}
		return out, nil
	}
	return nil, fmt.Errorf("a %s cannot be a payload value", v.Type().TypeName())
}
