package schema

import (
	"go.yaml.in/yaml/v3"

	"github.com/twinhub/twinhub/internal/yamlread"
)

var segmentKeys = []string{"description", "when"}

// whenCheck is what segment predicates and rule conditions must be.
var whenCheck = exprCheck{label: "when", result: boolResult("when", "a when is a condition, e.g. twin.spend_total > 1000.0"), native: true}

// segments parses the segments section. A segment is a mapping with when:
// (and description:), or its when as a plain string.
func (p *parser) segments(s *Schema, top entry, env *twinEnvs) {
	type compiled struct {
		seg  *Segment
		when *yaml.Node
		path string
	}
	var done []compiled
	for _, e := range p.Mapping(top.V, top.Path, nil, "a mapping of segment names to their declarations") {
		if !p.name(e.K, e.Key, e.Path, "segment") {
			continue
		}
		seg := &Segment{Name: e.Key, Index: len(s.Segments)}
		s.Segments = append(s.Segments, seg)
		s.segments[seg.Name] = seg
		when, whenPath := e.V, e.Path+".when"
		if e.V != nil && e.V.Kind == yaml.MappingNode {
			when = nil
			for _, se := range p.Mapping(e.V, e.Path, segmentKeys, "a mapping with when:") {
				switch se.Key {
				case "description":
					seg.Description, _ = p.Str(se.V, se.Path)
				case "when":
					when = se.V
				}
			}
		}
		if when == nil || yamlread.IsNull(when) {
			p.Add(e.K, e.Path, "add e.g. when: twin.spend_total >= 1000.0", "segment %q has no when", seg.Name)
			continue
		}
		expr, ok := p.Str(when, whenPath)
		if !ok {
			continue
		}
		seg.Expr = expr
		if env != nil {
			if seg.cond = p.whenProgram(env, when, whenPath, expr, variants{owner: "segment"}); seg.cond != nil {
				done = append(done, compiled{seg, when, whenPath})
			}
		}
	}
	// Only now are all names known: a segment may test one declared after
	// it ('vip' in twin.segments).
	for _, c := range done {
		c.seg.deps = analyze(s, c.seg.cond.ast.NativeRep())
		p.segmentNames(s, c.seg.cond, p.scalarLoc(c.when, c.seg.Expr), c.path, "when")
	}
}

// whenProgram compiles the condition of a segment or rule held in scalar n.
func (p *parser) whenProgram(env *twinEnvs, n *yaml.Node, path, expr string, v variants) *program {
	if expr == "" {
		p.Add(n, path, "write a condition, e.g. twin.spend_total >= 1000.0, or remove when", "when is empty")
		return nil
	}
	return p.compileProgram(env, p.scalarLoc(n, expr), path, expr, v, whenCheck)
}

// Match reports whether twin tv is in the segment at now (unix ns). An
// evaluation error (reading an aggregate that has no value) is false.
func (s *Segment) Match(tv TwinVars, now int64) bool {
	if s.cond == nil {
		return false
	}
	return s.cond.holds(tv, nil, now)
}
