package schema

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/twinhub/twinhub/agg"
)

// Keys allowed at each level of the document, in the order the docs list them.
var (
	topKeys       = []string{"description", "entity", "key", "unknown_fields", "max_future", "min_time", "events", "attributes", "aggregates", "segments", "rules", "webhooks"}
	eventKeys     = []string{"description", "fields"}
	fieldKeys     = []string{"type", "required", "min", "max", "values", "description"}
	attributeKeys = []string{"from", "description"}
	aggregateKeys = []string{"kind", "on", "field", "where", "window", "bucket", "k", "half_life", "unit", "description"}
	fieldTypes    = []string{"string", "number", "integer", "bool", "time", "enum"}
)

// typeAliases maps type names users bring from other systems to ours.
var typeAliases = map[string]string{
	"str": "string", "text": "string", "int": "integer", "long": "integer", "float": "number",
	"double": "number", "decimal": "number", "boolean": "bool", "timestamp": "time", "datetime": "time",
	"date": "time",
}

// celReserved are CEL keywords and reserved words: a name spelled like one
// could not be read as event.<name> or twin.<name> in an expression.
var celReserved = []string{"as", "break", "const", "continue", "else", "false", "for", "function", "if",
	"import", "in", "let", "loop", "package", "namespace", "null", "return", "true", "var", "void", "while"}

const maxNameLen = 128

var (
	identRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// Parse parses, validates and compiles a schema document. When the document
// has problems it returns a *ValidationError that lists all of them.
func Parse(src []byte) (*Schema, error) {
	p := &parser{src: src, lines: strings.Split(strings.ReplaceAll(string(src), "\r\n", "\n"), "\n")}
	s := p.document()
	if len(p.problems) > 0 {
		sort.SliceStable(p.problems, func(i, j int) bool {
			a, b := p.problems[i], p.problems[j]
			if a.Line != b.Line {
				return a.Line < b.Line
			}
			return a.Column < b.Column
		})
		return nil, &ValidationError{Problems: p.problems}
	}
	return s, nil
}

// parser walks the YAML node tree, collecting every problem it meets.
type parser struct {
	src      []byte
	lines    []string
	problems []Problem
}

func (p *parser) add(n *yaml.Node, path, hint, format string, args ...any) {
	var line, col int
	if n != nil {
		line, col = n.Line, n.Column
	}
	p.problems = append(p.problems, Problem{Line: line, Column: col, Path: path, Message: fmt.Sprintf(format, args...), Hint: hint})
}

// entry is one key: value pair of a mapping.
type entry struct {
	key  string
	k, v *yaml.Node // v has its aliases resolved
	path string
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node is, for "expected X, found Y" messages.
func describe(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!str":
		return strconv.Quote(n.Value)
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the bool " + n.Value
	case "!!timestamp":
		return "the timestamp " + n.Value
	}
	return strconv.Quote(n.Value)
}

// mapping returns the entries of mapping node n. It reports a node that is
// not a mapping, keys that are not strings, duplicate keys, and, when
// allowed is not nil, keys not in allowed. Only good entries are returned.
func (p *parser) mapping(n *yaml.Node, path string, allowed []string, what string) []entry {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.add(n, path, "", "expected %s, found %s", what, describe(n))
		return nil
	}
	var out []entry
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k == nil || k.Kind != yaml.ScalarNode || isNull(k) {
			p.add(n.Content[i], path, "keys are plain names", "expected a name as key, found %s", describe(k))
			continue
		}
		key := k.Value
		kp := join(path, key)
		if prev, dup := seen[key]; dup {
			p.add(k, kp, "remove one of them", "%q is declared twice (first at line %d)", key, prev.Line)
			continue
		}
		seen[key] = k
		if allowed != nil && !slices.Contains(allowed, key) {
			p.add(k, kp, suggestOr(key, allowed), "unknown key %q", key)
			continue
		}
		out = append(out, entry{key: key, k: k, v: v, path: kp})
	}
	return out
}

func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		return n.Value, true
	}
	hint := ""
	if n != nil && n.Kind == yaml.ScalarNode && !isNull(n) {
		hint = "quote it to make it a string"
	}
	p.add(n, path, hint, "expected a string, found %s", describe(n))
	return "", false
}

func (p *parser) boolean(n *yaml.Node, path string) (bool, bool) {
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		var b bool
		if n.Decode(&b) == nil {
			return b, true
		}
	}
	p.add(n, path, "use true or false", "expected a bool, found %s", describe(n))
	return false, false
}

func (p *parser) number(n *yaml.Node, path string) (float64, bool) {
	if n != nil && n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
		var f float64
		if n.Decode(&f) == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, true
		}
	}
	p.add(n, path, "", "expected a finite number, found %s", describe(n))
	return 0, false
}

func (p *parser) integer(n *yaml.Node, path string) (int, bool) {
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		var i int
		if n.Decode(&i) == nil {
			return i, true
		}
	}
	p.add(n, path, "", "expected a whole number, found %s", describe(n))
	return 0, false
}

func (p *parser) duration(n *yaml.Node, path string) (time.Duration, bool) {
	if n != nil && n.Kind == yaml.ScalarNode && !isNull(n) {
		d, err := ParseDuration(n.Value)
		if err == nil {
			return d, true
		}
		if _, numErr := strconv.ParseFloat(n.Value, 64); numErr == nil {
			p.add(n, path, fmt.Sprintf("add a unit, e.g. %sd, %sh or %sm", n.Value, n.Value, n.Value), "duration %s has no unit", n.Value)
			return 0, false
		}
		if n.ShortTag() == "!!str" {
			p.add(n, path, "use e.g. 30d, 12h, 90m", "invalid duration %q", n.Value)
			return 0, false
		}
	}
	p.add(n, path, "use e.g. 30d, 12h, 90m", "expected a duration, found %s", describe(n))
	return 0, false
}

// strList reads a string or a list of strings.
func (p *parser) strList(n *yaml.Node, path string) ([]string, []*yaml.Node, bool) {
	if n != nil && n.Kind == yaml.SequenceNode {
		ok := true
		var out []string
		var nodes []*yaml.Node
		for i, c := range n.Content {
			c = resolve(c)
			s, good := p.str(c, fmt.Sprintf("%s[%d]", path, i))
			if !good {
				ok = false
				continue
			}
			out = append(out, s)
			nodes = append(nodes, c)
		}
		return out, nodes, ok
	}
	s, ok := p.str(n, path)
	if !ok {
		return nil, nil, false
	}
	return []string{s}, []*yaml.Node{n}, true
}

// name checks that a declared name can be used in expressions. Names that
// are only ever strings there (stringNames) may be reserved words.
func (p *parser) name(n *yaml.Node, name, path, what string) bool {
	switch {
	case len(name) > maxNameLen:
		p.add(n, path, "", "%s is longer than %d characters", what, maxNameLen)
	case !identRE.MatchString(name):
		p.add(n, path, "use letters, digits and underscores, starting with a letter or underscore, e.g. "+identHint(name),
			"%s %q is not a valid name", what, name)
	case slices.Contains(celReserved, name) && !slices.Contains(stringNames, what):
		p.add(n, path, "pick another name, e.g. "+name+"_", "%s %q is a reserved word in expressions", what, name)
	default:
		return true
	}
	return false
}

// stringNames are the kinds of names that expressions only ever see as
// strings (an event type called return is fine).
var stringNames = []string{"event type", "entity", "tag", "action name", "webhook"}

// identHint turns an invalid name into a valid one, for hints.
func identHint(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] >= '0' && b[0] <= '9' {
		b = append([]byte{'_'}, b...)
	}
	return string(b)
}

// yamlParserErrors are the messages of yaml's parser (not its scanner).
// For them yaml reports the line before the one where the construct being
// parsed starts (a zero-based line number), so yamlError adds one.
var yamlParserErrors = []string{
	"did not find expected <document start>", "did not find expected node content",
	"did not find expected '-' indicator", "did not find expected key",
	"did not find expected ',' or ']'", "did not find expected ',' or '}'",
}

func (p *parser) yamlError(err error) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if slices.Contains(yamlParserErrors, m[2]) {
			line++
		}
		p.problems = append(p.problems, Problem{Line: line, Column: 1, Message: "YAML syntax: " + m[2],
			Hint: "check indentation, colons, brackets and quotes from this line on"})
		return
	}
	p.problems = append(p.problems, Problem{Message: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: "),
		Hint: "check indentation, colons, brackets and quotes"})
}

// document parses the whole schema.
func (p *parser) document() *Schema {
	dec := yaml.NewDecoder(bytes.NewReader(p.src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add(nil, "", "start with entity:, key: and events:", "the schema is empty")
		} else {
			p.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.add(&extra, "", "a schema is one YAML document: remove the --- separator", "more than one YAML document")
	} else if !errors.Is(err, io.EOF) {
		p.yamlError(err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			p.add(nil, "", "start with entity:, key: and events:", "the schema is empty")
			return nil
		}
		root = resolve(root.Content[0])
	}
	if isNull(root) {
		p.add(root, "", "start with entity:, key: and events:", "the schema is empty")
		return nil
	}
	if root.Kind != yaml.MappingNode {
		p.add(root, "", "start with entity:, key: and events:", "expected a mapping at the top level, found %s", describe(root))
		return nil
	}

	s := &Schema{
		Source:     bytes.Clone(p.src),
		MaxFuture:  DefaultMaxFuture,
		MinTime:    time.Unix(0, 0).UTC(),
		events:     map[string]*EventType{},
		attributes: map[string]*Attribute{},
		aggregates: map[string]*Aggregate{},
		segments:   map[string]*Segment{},
		rules:      map[string]*Rule{},
	}
	top := map[string]entry{}
	for _, e := range p.mapping(root, "", topKeys, "a mapping") {
		top[e.key] = e
	}
	if e, ok := top["description"]; ok {
		s.Description, _ = p.str(e.v, e.path)
	}
	if e, ok := top["entity"]; ok {
		if v, ok := p.str(e.v, e.path); ok && p.name(e.v, v, e.path, "entity") {
			s.Entity = v
		}
	} else {
		p.add(root, "entity", "add e.g. entity: customer", "missing entity")
	}
	if e, ok := top["key"]; ok {
		if v, ok := p.str(e.v, e.path); ok && p.name(e.v, v, e.path, "key field") {
			if slices.Contains([]string{IDField, TypeField, TimeField, SourceField, PositionField}, v) {
				p.add(e.v, e.path, "use the name of the field that carries the entity's id, e.g. customer_id",
					"the key field cannot be %q, which is already a common field", v)
			} else {
				s.Key = v
			}
		}
	} else {
		p.add(root, "key", "name the event field that carries the twin key, e.g. key: customer_id", "missing key")
	}
	if e, ok := top["unknown_fields"]; ok {
		if v, ok := p.str(e.v, e.path); ok {
			switch v {
			case "reject":
				s.UnknownFields = PolicyReject
			case "keep":
				s.UnknownFields = PolicyKeep
			default:
				p.add(e.v, e.path, "one of reject, keep", "unknown policy %q", v)
			}
		}
	}
	if e, ok := top["max_future"]; ok {
		if d, ok := p.duration(e.v, e.path); ok {
			s.MaxFuture = d
		}
	}
	if e, ok := top["min_time"]; ok {
		if t, ok := p.timestamp(e.v, e.path); ok {
			s.MinTime = t
		}
	}

	e, ok := top["events"]
	if !ok {
		p.add(root, "events", "declare at least one event type, e.g. events: {purchase: {fields: {amount: number}}}", "missing events")
	} else {
		p.events(s, e)
	}
	envs, err := newCELEnvs(s.Events, s.Key)
	if err != nil {
		p.add(root, "events", "", "cannot build the expression environment: %v", err)
	}
	if e, ok := top["attributes"]; ok {
		p.attributes(s, e)
	}
	aggNode := root
	if e, ok := top["aggregates"]; ok {
		aggNode = e.k
		p.aggregates(s, e, envs)
	}
	p.behaviour(s, root, top)
	if len(p.problems) > 0 {
		return nil
	}
	layout, err := agg.NewLayout(s.Specs())
	if err != nil {
		p.add(aggNode, "aggregates", "", "%v", err)
		return nil
	}
	s.Layout = layout
	s.link()
	return s
}

// behaviour parses what the twin model does besides keeping state:
// segments, rules and the webhooks that receive rules' actions. Their
// expressions read the twin, so they come after attributes and aggregates.
func (p *parser) behaviour(s *Schema, root *yaml.Node, top map[string]entry) {
	_, hasSegments := top["segments"]
	_, hasRules := top["rules"]
	var env *twinEnvs
	if hasSegments || hasRules {
		var err error
		if env, err = newTwinEnvs(s); err != nil {
			p.add(root, "", "", "cannot build the expression environment: %v", err)
		}
	}
	if e, ok := top["segments"]; ok {
		p.segments(s, e, env)
	}
	if e, ok := top["rules"]; ok {
		p.rules(s, e, env)
	}
	if e, ok := top["webhooks"]; ok {
		p.webhooks(s, e)
	}
}

func (p *parser) timestamp(n *yaml.Node, path string) (time.Time, bool) {
	if n != nil && n.Kind == yaml.ScalarNode && !isNull(n) {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
			if t, err := time.Parse(layout, n.Value); err == nil {
				return t.UTC(), true
			}
		}
	}
	p.add(n, path, "use RFC 3339, e.g. 2020-01-01T00:00:00Z, or a date, e.g. 2020-01-01", "invalid time %s", describe(n))
	return time.Time{}, false
}
