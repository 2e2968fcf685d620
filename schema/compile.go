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

// exprIssue is one compile problem of an expression, with the targets
// (event types) it occurs for.
type exprIssue struct {
	line, col int // in the expression: 1-based line, 0-based column; 0 when unknown
	msg, hint string
	targets   []string
}

// exprTarget is one environment an expression is checked in: where and rule
// conditions are checked once per event type they run on.
type exprTarget struct {
	name string // the event type, named in problems that only some targets have
	env  *cel.Env
	// hint rewrites a type-check message and suggests a fix for it; may be
	// nil.
	hint func(msg string) (string, string)
}

// exprCheck is what a kind of expression must satisfy after type-checking.
type exprCheck struct {
	label string // where, when, template: prefixes every message
	// result reports a problem with the checked expression's output type
	// (msg, hint), or "" when it is acceptable; nil accepts any type.
	result func(out *types.Type) (msg, hint string)
	// native asks for Go closures (native.go) besides CEL programs, for
	// conditions that run on every event.
	native bool
}

// exprLoc maps a position inside an expression (1-based line, 0-based
// column in code points, as CEL reports them) to a YAML line and column;
// line 0 asks for the position of the expression as a whole.
type exprLoc func(line, col int) (int, int)

// scalarLoc locates an expression that is the whole value of scalar n.
func (p *parser) scalarLoc(n *yaml.Node, expr string) exprLoc {
	return func(line, col int) (int, int) {
		if line <= 0 {
			return n.Line, n.Column
		}
		return p.exprPos(n, expr, line, col)
	}
}

// where compiles expr for every target event type, reporting problems at
// their position inside the YAML scalar n. A problem that occurs for only
// some of the targets names them.
func (p *parser) where(n *yaml.Node, path, expr string, targets []*EventType, envs *celEnvs) *Where {
	ts := make([]exprTarget, len(targets))
	for i, t := range targets {
		ts[i] = exprTarget{name: t.Name, env: envs.envs[t.Index], hint: func(msg string) (string, string) { return msg, checkHint(t, msg) }}
	}
	check := exprCheck{label: "where", result: boolResult("where", "a where is a condition, e.g. event.amount > 100")}
	progs, _, ok := p.compile(p.scalarLoc(n, expr), path, expr, envs.base, ts, check)
	if !ok {
		return nil
	}
	w := &Where{Expr: expr, progs: make([]cel.Program, len(envs.envs))}
	for i, t := range targets {
		w.progs[t.Index] = progs[i]
	}
	return w
}

// boolResult accepts bool expressions (and dyn ones, checked when they run).
func boolResult(label, hint string) func(*types.Type) (string, string) {
	return func(out *types.Type) (string, string) {
		if out.IsExactType(types.BoolType) || out.Kind() == types.DynKind {
			return "", ""
		}
		return fmt.Sprintf("%s must be a bool expression, not %s", label, out), hint
	}
}

// compile parses expr with parseEnv and checks it in every target's
// environment, reporting every problem at its place in the document. It
// returns one program and checked AST per target, and whether all compiled.
func (p *parser) compile(loc exprLoc, path, expr string, parseEnv *cel.Env, targets []exprTarget, check exprCheck) ([]cel.Program, []*cel.Ast, bool) {
	parsed, iss := parseEnv.Parse(expr)
	if iss.Err() != nil {
		for _, err := range iss.Errors() {
			msg := err.Message
			if strings.HasPrefix(msg, "Syntax error: mismatched input '<EOF>'") {
				msg = "Syntax error: unexpected end of expression"
			} else {
				msg = expectingRE.ReplaceAllString(msg, "")
			}
			p.exprProblem(loc, path, check.label, exprIssue{line: err.Location.Line(), col: err.Location.Column(), msg: msg}, "")
		}
		return nil, nil, false
	}
	progs := make([]cel.Program, len(targets))
	asts := make([]*cel.Ast, len(targets))
	var issues []*exprIssue
	byKey := map[string]*exprIssue{}
	note := func(t exprTarget, is exprIssue) {
		key := fmt.Sprintf("%d:%d:%s", is.line, is.col, is.msg)
		if prev, ok := byKey[key]; ok {
			prev.targets = append(prev.targets, t.name)
			return
		}
		is.targets = []string{t.name}
		byKey[key] = &is
		issues = append(issues, &is)
	}
	for i, t := range targets {
		checked, iss := t.env.Check(parsed)
		if iss.Err() != nil {
			for _, err := range iss.Errors() {
				msg, hint := err.Message, ""
				if t.hint != nil {
					msg, hint = t.hint(msg)
				}
				note(t, exprIssue{line: err.Location.Line(), col: err.Location.Column(), msg: msg, hint: hint})
			}
			continue
		}
		if check.result != nil {
			if msg, hint := check.result(checked.OutputType()); msg != "" {
				note(t, exprIssue{msg: msg, hint: hint})
				continue
			}
		}
		if est, err := t.env.EstimateCost(checked, whereCost{}); err == nil && est.Max > maxWhereCost {
			note(t, exprIssue{msg: fmt.Sprintf("%s is too expensive to run on every event (estimated cost up to %d, limit %d)", check.label, est.Max, maxWhereCost),
				hint: "simplify it: avoid nested loops over lists"})
			continue
		}
		prg, err := t.env.Program(checked, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			note(t, exprIssue{msg: err.Error()})
			continue
		}
		progs[i], asts[i] = prg, checked
	}
	for _, is := range issues {
		prefix := ""
		if len(is.targets) < len(targets) {
			prefix = "on " + strings.Join(is.targets, ", ") + ": "
		}
		p.exprProblem(loc, path, check.label, *is, prefix)
	}
	return progs, asts, len(issues) == 0
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
	return numbersHint(msg)
}

// numbersHint explains CEL's refusal to mix int and double in arithmetic.
func numbersHint(msg string) string {
	if mixedNumbersRE.MatchString(msg) {
		return "arithmetic needs one number type: write 2.0 rather than 2, or convert with double() or int()"
	}
	return ""
}

// exprProblem reports issue is of an expression labelled label (where,
// when, template), at its place in the document.
func (p *parser) exprProblem(loc exprLoc, path, label string, is exprIssue, prefix string) {
	line, col := loc(is.line, is.col)
	msg := is.msg
	if !strings.HasPrefix(msg, label) {
		msg = label + ": " + prefix + msg
	} else if prefix != "" {
		msg = prefix + msg
	}
	p.Problems = append(p.Problems, Problem{Line: line, Column: col, Path: path, Message: msg, Hint: is.hint})
}

// exprPos maps a position inside scalar n's value to a line and column of
// the document (ExprPosition).
func (p *parser) exprPos(n *yaml.Node, expr string, line, col int) (int, int) {
	return ExprPosition(p.lines, n, expr, line, col)
}

// ExprPosition maps a position inside the value expr of scalar node n
// (1-based line, 0-based column in code points, as CEL reports them) to a
// 1-based line and column of the YAML document whose lines are lines.
// Escapes in quoted scalars can shift it by a few columns. The mapping
// parser reports its expressions' errors with it too.
func ExprPosition(lines []string, n *yaml.Node, expr string, line, col int) (int, int) {
	off := exprOffset(expr, line, col)
	srcLine, start := n.Line-1, n.Column-1
	indent := -1 // strip all leading blanks (folded plain and quoted lines)
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// Content starts on the line after the indicator, indented by the
		// indentation of its first non-blank line.
		srcLine, start = n.Line, -1
		for i := srcLine; i < len(lines); i++ {
			if t := strings.TrimLeft(lines[i], " "); t != "" {
				indent = len(lines[i]) - len(t)
				break
			}
		}
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		start++
	}
	for ; srcLine >= 0 && srcLine < len(lines); srcLine++ {
		rs := []rune(lines[srcLine])
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

// exprOffset is the code point offset in expr of a CEL position (1-based
// line, 0-based column in code points).
func exprOffset(expr string, line, col int) int {
	off := 0
	for i, l := range strings.Split(expr, "\n") {
		if i == line-1 {
			return off + col
		}
		off += len([]rune(l)) + 1
	}
	return off
}
