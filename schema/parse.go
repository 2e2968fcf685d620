package schema

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/twinhub/twinhub/agg"
	"github.com/twinhub/twinhub/internal/yamlread"
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
	identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Parse parses, validates and compiles a schema document. When the document
// has problems it returns a *ValidationError that lists all of them.
func Parse(src []byte) (*Schema, error) {
	p := &parser{src: src, lines: strings.Split(strings.ReplaceAll(string(src), "\r\n", "\n"), "\n")}
	s := p.document()
	if len(p.Problems) > 0 {
		return nil, &ValidationError{Problems: p.Sorted()}
	}
	return s, nil
}

// parser walks the YAML node tree, collecting every problem it meets.
type parser struct {
	yamlread.Reader
	src   []byte
	lines []string
}

// entry is one key: value pair of a mapping.
type entry = yamlread.Entry

func (p *parser) number(n *yaml.Node, path string) (float64, bool) {
	if n != nil && n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
		var f float64
		if n.Decode(&f) == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, true
		}
	}
	p.Add(n, path, "", "expected a finite number, found %s", yamlread.Describe(n))
	return 0, false
}

func (p *parser) integer(n *yaml.Node, path string) (int, bool) {
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		var i int
		if n.Decode(&i) == nil {
			return i, true
		}
	}
	p.Add(n, path, "", "expected a whole number, found %s", yamlread.Describe(n))
	return 0, false
}

func (p *parser) duration(n *yaml.Node, path string) (time.Duration, bool) {
	if n != nil && n.Kind == yaml.ScalarNode && !yamlread.IsNull(n) {
		d, err := ParseDuration(n.Value)
		if err == nil {
			return d, true
		}
		if _, numErr := strconv.ParseFloat(n.Value, 64); numErr == nil {
			p.Add(n, path, fmt.Sprintf("add a unit, e.g. %sd, %sh or %sm", n.Value, n.Value, n.Value), "duration %s has no unit", n.Value)
			return 0, false
		}
		if n.ShortTag() == "!!str" {
			p.Add(n, path, "use e.g. 30d, 12h, 90m", "invalid duration %q", n.Value)
			return 0, false
		}
	}
	p.Add(n, path, "use e.g. 30d, 12h, 90m", "expected a duration, found %s", yamlread.Describe(n))
	return 0, false
}

// strList reads a string or a list of strings.
func (p *parser) strList(n *yaml.Node, path string) ([]string, []*yaml.Node, bool) {
	if n != nil && n.Kind == yaml.SequenceNode {
		ok := true
		var out []string
		var nodes []*yaml.Node
		for i, c := range n.Content {
			c = yamlread.Resolve(c)
			s, good := p.Str(c, fmt.Sprintf("%s[%d]", path, i))
			if !good {
				ok = false
				continue
			}
			out = append(out, s)
			nodes = append(nodes, c)
		}
		return out, nodes, ok
	}
	s, ok := p.Str(n, path)
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
		p.Add(n, path, "", "%s is longer than %d characters", what, maxNameLen)
	case !identRE.MatchString(name):
		p.Add(n, path, "use letters, digits and underscores, starting with a letter or underscore, e.g. "+identHint(name),
			"%s %q is not a valid name", what, name)
	case slices.Contains(celReserved, name) && !slices.Contains(stringNames, what):
		p.Add(n, path, "pick another name, e.g. "+name+"_", "%s %q is a reserved word in expressions", what, name)
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

// document parses the whole schema.
func (p *parser) document() *Schema {
	root := p.Root(p.src, "schema", "start with entity:, key: and events:")
	if root == nil {
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
	for _, e := range p.Mapping(root, "", topKeys, "a mapping") {
		top[e.Key] = e
	}
	if e, ok := top["description"]; ok {
		s.Description, _ = p.Str(e.V, e.Path)
	}
	if e, ok := top["entity"]; ok {
		if v, ok := p.Str(e.V, e.Path); ok && p.name(e.V, v, e.Path, "entity") {
			s.Entity = v
		}
	} else {
		p.Add(root, "entity", "add e.g. entity: customer", "missing entity")
	}
	if e, ok := top["key"]; ok {
		if v, ok := p.Str(e.V, e.Path); ok && p.name(e.V, v, e.Path, "key field") {
			if slices.Contains([]string{IDField, TypeField, TimeField, SourceField, PositionField}, v) {
				p.Add(e.V, e.Path, "use the name of the field that carries the entity's id, e.g. customer_id",
					"the key field cannot be %q, which is already a common field", v)
			} else {
				s.Key = v
			}
		}
	} else {
		p.Add(root, "key", "name the event field that carries the twin key, e.g. key: customer_id", "missing key")
	}
	if e, ok := top["unknown_fields"]; ok {
		if v, ok := p.Str(e.V, e.Path); ok {
			switch v {
			case "reject":
				s.UnknownFields = PolicyReject
			case "keep":
				s.UnknownFields = PolicyKeep
			default:
				p.Add(e.V, e.Path, "one of reject, keep", "unknown policy %q", v)
			}
		}
	}
	if e, ok := top["max_future"]; ok {
		if d, ok := p.duration(e.V, e.Path); ok {
			s.MaxFuture = d
		}
	}
	if e, ok := top["min_time"]; ok {
		if t, ok := p.timestamp(e.V, e.Path); ok {
			s.MinTime = t
		}
	}

	e, ok := top["events"]
	if !ok {
		p.Add(root, "events", "declare at least one event type, e.g. events: {purchase: {fields: {amount: number}}}", "missing events")
	} else {
		p.events(s, e)
	}
	envs, err := newCELEnvs(s.Events, s.Key)
	if err != nil {
		p.Add(root, "events", "", "cannot build the expression environment: %v", err)
	}
	if e, ok := top["attributes"]; ok {
		p.attributes(s, e)
	}
	aggNode := root
	if e, ok := top["aggregates"]; ok {
		aggNode = e.K
		p.aggregates(s, e, envs)
	}
	p.behaviour(s, root, top)
	if len(p.Problems) > 0 {
		return nil
	}
	layout, err := agg.NewLayout(s.Specs())
	if err != nil {
		p.Add(aggNode, "aggregates", "", "%v", err)
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
			p.Add(root, "", "", "cannot build the expression environment: %v", err)
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
	if n != nil && n.Kind == yaml.ScalarNode && !yamlread.IsNull(n) {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
			if t, err := time.Parse(layout, n.Value); err == nil {
				return t.UTC(), true
			}
		}
	}
	p.Add(n, path, "use RFC 3339, e.g. 2020-01-01T00:00:00Z, or a date, e.g. 2020-01-01", "invalid time %s", yamlread.Describe(n))
	return time.Time{}, false
}
