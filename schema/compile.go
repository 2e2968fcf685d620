package schema

import (
	"fmt"
	"regexp"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"go.yaml.in/yaml/v3"
)

var (
	undefinedFieldRE = regexp.MustCompile(`undefined field '([^']*)'`)
	undeclaredRefRE  = regexp.MustCompile(`undeclared reference to '([^']*)'`)
	expectingRE      = regexp.MustCompile(` expecting (\{[^}]*\}|'[^']*')$`)
	mixedNumbersRE   = regexp.MustCompile(`no matching overload for '[^']*' applied to '\((double, int|int, double)\)'`)
)

// maxWhereCost bounds the estimated cost of a where expression (in CEL cost
// units, about one per operation), which runs on every event it applies to.
const maxWhereCost = 100_000

// whereCost sizes event fields for CEL's cost estimate: strings up to
// maxFieldSize, since an event's size is bounded by ingestion.
type whereCost struct{}

const maxFieldSize = 4096

func (whereCost) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

func (whereCost) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	if len(n.Path()) > 0 {
		return &cost.SizeEstimate{Min: 0, Max: maxFieldSize}
	}
	return nil
}

// whereIssue is one compile problem of a where expression, with the event
// types it occurs for.
type whereIssue struct {
	line, col int // in the expression: 1-based line, 0-based column; 0 when unknown
	msg, hint string
	types     []string
}

// where compiles expr for every target event type, reporting problems at
// their position inside the YAML scalar n. A problem that occurs for only
// some of the targets names them.
func (p *parser) where(n *yaml.Node, path, expr string, targets []*EventType, envs *celEnvs) *Where {
	parsed, iss := envs.base.Parse(expr)
	if iss.Err() != nil {
		for _, err := range iss.Errors() {
			msg := err.Message
			if strings.HasPrefix(msg, "Syntax error: mismatched input '<EOF>'") {
				msg = "Syntax error: unexpected end of expression"
			} else {
				msg = expectingRE.ReplaceAllString(msg, "")
			}
			p.whereProblem(n, path, expr, whereIssue{line: err.Location.Line(), col: err.Location.Column(), msg: msg}, "")
		}
		return nil
	}
	w := &Where{Expr: expr, progs: make([]cel.Program, len(envs.envs))}
	var issues []*whereIssue
	byKey := map[string]*whereIssue{}
	note := func(t *EventType, is whereIssue) {
		key := fmt.Sprintf("%d:%d:%s", is.line, is.col, is.msg)
		if prev, ok := byKey[key]; ok {
			prev.types = append(prev.types, t.Name)
			return
		}
		is.types = []string{t.Name}
		byKey[key] = &is
		issues = append(issues, &is)
	}
	for _, t := range targets {
		env := envs.envs[t.Index]
		checked, iss := env.Check(parsed)
		if iss.Err() != nil {
			for _, err := range iss.Errors() {
				note(t, whereIssue{line: err.Location.Line(), col: err.Location.Column(), msg: err.Message, hint: checkHint(t, err.Message)})
			}
			continue
		}
		if out := checked.OutputType(); !out.IsExactType(types.BoolType) && out.Kind() != types.DynKind {
			note(t, whereIssue{msg: fmt.Sprintf("where must be a bool expression, not %s", out),
				hint: "a where is a condition, e.g. event.amount > 100"})
			continue
		}
		if est, err := env.EstimateCost(checked, whereCost{}); err == nil && est.Max > maxWhereCost {
			note(t, whereIssue{msg: fmt.Sprintf("where is too expensive to run on every event (estimated cost up to %d, limit %d)", est.Max, maxWhereCost),
				hint: "simplify it: avoid nested loops over lists"})
			continue
		}
		prg, err := env.Program(checked, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			note(t, whereIssue{msg: err.Error()})
			continue
		}
		w.progs[t.Index] = prg
	}
	for _, is := range issues {
		prefix := ""
		if len(is.types) < len(targets) {
			prefix = "on " + strings.Join(is.types, ", ") + ": "
		}
		p.whereProblem(n, path, expr, *is, prefix)
	}
	if len(issues) > 0 {
		return nil
	}
	return w
}

// checkHint suggests a fix for a type-check error on event type t.
func checkHint(t *EventType, msg string) string {
	if m := undefinedFieldRE.FindStringSubmatch(msg); m != nil {
		if h := Suggest(m[1], t.obj.names); h != "" {
			return h
		}
		return "fields of " + t.Name + ": " + strings.Join(t.obj.names, ", ")
	}
	if m := undeclaredRefRE.FindStringSubmatch(msg); m != nil {
		if _, ok := t.obj.fields[m[1]]; ok {
			return "write event." + m[1]
		}
		return "the event is called event, e.g. event.id"
	}
	if mixedNumbersRE.MatchString(msg) {
		return "arithmetic needs one number type: write 2.0 rather than 2, or convert with double() or int()"
	}
	return ""
}

func (p *parser) whereProblem(n *yaml.Node, path, expr string, is whereIssue, prefix string) {
	line, col := n.Line, n.Column
	if is.line > 0 {
		line, col = p.exprPos(n, expr, is.line, is.col)
	}
	msg := is.msg
	if !strings.HasPrefix(msg, "where") {
		msg = "where: " + prefix + msg
	} else if prefix != "" {
		msg = prefix + msg
	}
	p.problems = append(p.problems, Problem{Line: line, Column: col, Path: path, Message: msg, Hint: is.hint})
}

// exprPos maps a position inside scalar n's value (1-based line, 0-based
// column in code points, as CEL reports them) to a YAML line and column.
// Escapes in quoted scalars can shift it by a few columns.
func (p *parser) exprPos(n *yaml.Node, expr string, line, col int) (int, int) {
	off := 0
	for i, l := range strings.Split(expr, "\n") {
		if i == line-1 {
			off += col
			break
		}
		off += len([]rune(l)) + 1
	}
	srcLine, start := n.Line-1, n.Column-1
	indent := -1 // strip all leading blanks (folded plain and quoted lines)
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// Content starts on the line after the indicator, indented by the
		// indentation of its first non-blank line.
		srcLine, start = n.Line, -1
		for i := srcLine; i < len(p.lines); i++ {
			if t := strings.TrimLeft(p.lines[i], " "); t != "" {
				indent = len(p.lines[i]) - len(t)
				break
			}
		}
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		start++
	}
	for ; srcLine >= 0 && srcLine < len(p.lines); srcLine++ {
		rs := []rune(p.lines[srcLine])
		first := start
		if first < 0 {
			first = 0
			for first < len(rs) && (indent < 0 || first < indent) && (rs[first] == ' ' || rs[first] == '\t') {
				first++
			}
		}
		first = min(first, len(rs))
		if off <= len(rs)-first {
			return srcLine + 1, first + off + 1
		}
		off -= len(rs) - first + 1
		start = -1
	}
	return n.Line, n.Column
}
