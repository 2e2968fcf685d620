package schema

import (
	"fmt"
	"slices"
	"sort"

	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"

	"github.com/twinhub/twinhub/agg"
	"github.com/twinhub/twinhub/internal/yamlread"
)

// deps is what an expression over the twin reads. The engine evaluates a
// segment or a rule without on only after events that may change it, and
// sweeps the segments that time alone can change; deps decides both.
type deps struct {
	attrs, aggs []int // indexes of the attributes and aggregates read
	// every says any event may change the answer: the expression reads
	// revision, tags, segments or the twin as a whole.
	every    bool
	segments bool // reads twin.segments: depends on other segments
	now      bool // reads now, directly or through days_since
	// twin and event are the fields read, as twin.<name> and event.<name>,
	// in the order the expression mentions them, for receipts.
	twin, event []string
}

// analyze collects what checked expression a reads. Select expressions on
// the identifiers twin and event are field reads; twin used any other way
// (dyn(twin)) reads everything.
func analyze(s *Schema, a *ast.AST) deps {
	var d deps
	operands := map[int64]bool{}
	ast.PreOrderVisit(a.Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		switch e.Kind() {
		case ast.SelectKind:
			sel := e.AsSelect()
			op := sel.Operand()
			if op.Kind() != ast.IdentKind {
				return
			}
			operands[op.ID()] = true
			switch op.AsIdent() {
			case "twin":
				d.readTwin(s, sel.FieldName())
			case "event":
				if !slices.Contains(d.event, sel.FieldName()) {
					d.event = append(d.event, sel.FieldName())
				}
			}
		case ast.IdentKind:
			switch e.AsIdent() {
			case "now", nowVar:
				d.now = true
			case "twin":
				if !operands[e.ID()] {
					d.readWholeTwin(s)
				}
			}
		}
	}))
	return d
}

func (d *deps) readTwin(s *Schema, name string) {
	if !slices.Contains(d.twin, name) {
		d.twin = append(d.twin, name)
	}
	switch name {
	case twinRevision, twinTags:
		d.every = true
		return
	case twinSegments:
		d.every, d.segments = true, true
		return
	}
	if a, ok := s.attributes[name]; ok && !slices.Contains(d.attrs, a.Index) {
		d.attrs = append(d.attrs, a.Index)
	}
	if a, ok := s.aggregates[name]; ok && !slices.Contains(d.aggs, a.Index) {
		d.aggs = append(d.aggs, a.Index)
	}
}

func (d *deps) readWholeTwin(s *Schema) {
	d.every, d.segments = true, true
	d.attrs, d.aggs = d.attrs[:0], d.aggs[:0]
	for i := range s.Attributes {
		d.attrs = append(d.attrs, i)
	}
	for i := range s.Aggregates {
		d.aggs = append(d.aggs, i)
	}
}

// changedBy reports whether an event of type t may change what d reads.
func (d *deps) changedBy(t *EventType) bool {
	if d.every {
		return true
	}
	for _, f := range t.Feeds {
		if slices.Contains(d.aggs, f.Agg) {
			return true
		}
	}
	for _, a := range t.Sets {
		if slices.Contains(d.attrs, a.Attr) {
			return true
		}
	}
	return false
}

// timeDependent reports whether time alone may change what d reads: now,
// or an aggregate whose value moves with now (windowed, time_since).
func (d *deps) timeDependent(s *Schema) bool {
	if d.now {
		return true
	}
	for _, i := range d.aggs {
		if timeMoves(s.Aggregates[i].Spec) {
			return true
		}
	}
	return false
}

func timeMoves(sp agg.Spec) bool { return sp.Window > 0 || sp.Kind == agg.TimeSince }

// link fills in what the engine looks up per event: the segments and rules
// each event type may change or triggers, the rules segment changes trigger,
// and the segments time alone can change.
func (s *Schema) link() {
	for _, seg := range s.Segments {
		seg.TimeDependent = seg.deps.timeDependent(s)
	}
	// A segment that reads twin.segments changes when a time-dependent
	// segment does, so sweeps must re-evaluate it as well.
	for changed := true; changed; {
		changed = false
		for _, seg := range s.Segments {
			if seg.TimeDependent || !seg.deps.segments {
				continue
			}
			if slices.ContainsFunc(s.Segments, func(o *Segment) bool { return o != seg && o.TimeDependent }) {
				seg.TimeDependent, changed = true, true
			}
		}
	}
	for _, seg := range s.Segments {
		if seg.TimeDependent {
			s.TimedSegments = append(s.TimedSegments, seg.Index)
		}
		for _, t := range s.Events {
			if seg.deps.changedBy(t) {
				t.Segments = append(t.Segments, seg.Index)
			}
		}
	}

	order := make([]*Rule, 0, len(s.Rules))
	for _, r := range s.Rules {
		if r.Enabled {
			order = append(order, r)
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].Priority > order[j].Priority })
	for _, r := range order {
		if len(r.On) == 0 {
			for _, t := range s.Events {
				if r.deps.changedBy(t) {
					t.Rules = append(t.Rules, r.Index)
				}
			}
			continue
		}
		for _, t := range r.onTypes {
			t.Rules = append(t.Rules, r.Index)
		}
		for _, seg := range r.onEnter {
			seg.OnEnter = append(seg.OnEnter, r.Index)
		}
		for _, seg := range r.onExit {
			seg.OnExit = append(seg.OnExit, r.Index)
		}
	}
}

// segmentNames reports string constants tested against twin.segments
// ('vip' in twin.segments) that name no segment: a typo there would make
// the condition silently false forever.
func (p *parser) segmentNames(s *Schema, pr *program, loc exprLoc, path, label string) {
	if pr == nil || pr.ast == nil {
		return
	}
	a := pr.ast.NativeRep()
	ast.PreOrderVisit(a.Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		if e.Kind() != ast.CallKind {
			return
		}
		call := e.AsCall()
		args := call.Args()
		if call.FunctionName() != operators.In || len(args) != 2 || args[0].Kind() != ast.LiteralKind {
			return
		}
		lit, list := args[0], args[1]
		name, ok := lit.AsLiteral().(types.String)
		if !ok || !isTwinField(list, twinSegments) {
			return
		}
		if _, ok := s.segments[string(name)]; ok {
			return
		}
		l := a.SourceInfo().GetStartLocation(lit.ID())
		line, col := loc(l.Line(), l.Column())
		p.Problems = append(p.Problems, Problem{Line: line, Column: col, Path: path,
			Message: fmt.Sprintf("%s: unknown segment %q", label, string(name)), Hint: yamlread.SuggestOr(string(name), s.segmentNames())})
	}))
}

// isTwinField reports whether e is twin.<name>.
func isTwinField(e ast.Expr, name string) bool {
	if e.Kind() != ast.SelectKind {
		return false
	}
	sel := e.AsSelect()
	return sel.FieldName() == name && sel.Operand().Kind() == ast.IdentKind && sel.Operand().AsIdent() == "twin"
}

func (s *Schema) segmentNames() []string {
	names := make([]string, len(s.Segments))
	for i, seg := range s.Segments {
		names[i] = seg.Name
	}
	return names
}
