package schema

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"go.yaml.in/yaml/v3"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/internal/yamlread"
)

var (
	ruleKeys    = []string{"description", "on", "when", "mode", "cooldown", "priority", "enabled", "do"}
	actionKeys  = []string{"kind", "name", "approval", "expires", "payload", "tag", "attribute", "value", "url"}
	actionKinds = []string{ActionOffer, ActionAlert, ActionTask, ActionTag, ActionUntag, ActionSet, ActionWebhook}
	ruleModes   = []string{"every", "edge"}
)

// actionSettings lists the kinds each action setting applies to.
var actionSettings = map[string][]string{
	"name":      {ActionOffer, ActionAlert, ActionTask},
	"approval":  {ActionOffer, ActionAlert, ActionTask, ActionWebhook},
	"payload":   {ActionOffer, ActionAlert, ActionTask, ActionWebhook},
	"tag":       {ActionTag, ActionUntag},
	"attribute": {ActionSet},
	"value":     {ActionSet},
	"url":       {ActionWebhook},
}

// Prefixes of segment triggers in a rule's on.
const (
	enterPrefix = "enter:"
	exitPrefix  = "exit:"
)

func (p *parser) rules(s *Schema, top entry, env *twinEnvs) {
	for _, e := range p.Mapping(top.V, top.Path, nil, "a mapping of rule names to their declarations") {
		if !p.name(e.K, e.Key, e.Path, "rule") {
			continue
		}
		r := &Rule{Name: e.Key, Index: len(s.Rules), Enabled: true}
		s.Rules = append(s.Rules, r)
		s.rules[r.Name] = r
		p.rule(s, r, e, env)
	}
}

func (p *parser) rule(s *Schema, r *Rule, e entry, env *twinEnvs) {
	if e.V == nil || e.V.Kind != yaml.MappingNode {
		if yamlread.IsNull(e.V) {
			p.Add(e.K, e.Path, "add e.g. do: [{kind: tag, tag: vip}]", "rule %q does nothing: it has no do", r.Name)
		} else {
			p.Add(e.V, e.Path, "write e.g. {on: [purchase], do: [{kind: tag, tag: buyer}]}", "expected a mapping with do:, found %s", yamlread.Describe(e.V))
		}
		return
	}
	var on, when, do *yaml.Node
	for _, re := range p.Mapping(e.V, e.Path, ruleKeys, "a mapping with do:") {
		switch re.Key {
		case "description":
			r.Description, _ = p.Str(re.V, re.Path)
		case "on":
			on = re.V
		case "when":
			when = re.V
		case "do":
			do = re.V
		case "mode":
			if v, ok := p.Str(re.V, re.Path); ok {
				switch v {
				case "every":
					r.Mode = ModeEvery
				case "edge":
					r.Mode = ModeEdge
				default:
					p.Add(re.V, re.Path, yamlread.SuggestOr(v, ruleModes), "unknown mode %q", v)
				}
			}
		case "cooldown":
			if d, ok := p.duration(re.V, re.Path); ok {
				if d <= 0 {
					p.Add(re.V, re.Path, "use e.g. cooldown: 7d, or remove it", "cooldown must be positive")
				} else {
					r.Cooldown = d
				}
			}
		case "priority":
			r.Priority, _ = p.integer(re.V, re.Path)
		case "enabled":
			if b, ok := p.Bool(re.V, re.Path); ok {
				r.Enabled = b
			}
		}
	}
	path := func(key string) string { return e.Path + "." + key }

	v := variants{owner: "rule"}
	onOK := true
	if on != nil {
		v, onOK = p.triggers(s, r, on, path("on"))
	}
	if when != nil {
		if expr, ok := p.Str(when, path("when")); ok {
			r.When = expr
			if onOK && env != nil {
				r.cond = p.whenProgram(env, when, path("when"), expr, v)
			}
		}
	}
	if r.cond != nil {
		r.deps = analyze(s, r.cond.ast.NativeRep())
		for _, name := range r.deps.twin {
			r.reads = append(r.reads, "twin."+name)
		}
		for _, name := range r.deps.event {
			r.reads = append(r.reads, "event."+name)
		}
		p.segmentNames(s, r.cond, p.scalarLoc(when, r.When), path("when"), "when")
	}
	switch {
	case on == nil && when == nil:
		p.Add(e.K, e.Path, "add on: [EVENT_TYPE] to run it on those events, or when: to run it whenever what the condition reads changes",
			"rule %q has neither on nor when", r.Name)
	case on == nil && r.cond != nil && !slices.ContainsFunc(s.Events, r.deps.changedBy):
		p.Add(when, path("when"), "add on: [...] to say which events run it",
			"no event changes what this when reads, so a rule without on would never run")
	}

	if do == nil || yamlread.IsNull(do) {
		p.Add(e.K, e.Path, "add e.g. do: [{kind: tag, tag: vip}]", "rule %q does nothing: it has no do", r.Name)
		return
	}
	items := []*yaml.Node{do} // one action may be written without the list
	if do.Kind == yaml.SequenceNode {
		items = do.Content
		if len(items) == 0 {
			p.Add(do, path("do"), "list at least one action, e.g. [{kind: tag, tag: vip}]", "do is empty")
		}
	}
	for i, n := range items {
		ap := fmt.Sprintf("%s[%d]", path("do"), i)
		if do.Kind != yaml.SequenceNode {
			ap = path("do")
		}
		if a := p.action(s, r, yamlread.Resolve(n), ap, env, v, onOK); a != nil {
			r.Actions = append(r.Actions, a)
		}
	}
}

// triggers parses a rule's on: event types, enter:SEGMENT and exit:SEGMENT.
func (p *parser) triggers(s *Schema, r *Rule, on *yaml.Node, path string) (variants, bool) {
	v := variants{owner: "rule"}
	names, nodes, ok := p.strList(on, path)
	if on.Kind == yaml.SequenceNode && len(on.Content) == 0 {
		p.Add(on, path, "list event types or enter:/exit: segments, or omit on to run the rule when what its when reads changes", "on is empty")
		ok = false
	}
	seen := map[string]bool{}
	for i, name := range names {
		n := nodes[i]
		if seen[name] {
			p.Add(n, path, "remove the duplicate", "trigger %q is listed twice", name)
			continue
		}
		seen[name] = true
		segName, enter, isSegment := cutTrigger(name)
		if !isSegment {
			t, found := s.events[name]
			if !found {
				p.Add(n, path, yamlread.SuggestOr(name, s.triggerNames()), "unknown event type %q", name)
				ok = false
				continue
			}
			r.onTypes = append(r.onTypes, t)
			v.types = append(v.types, t)
			r.On = append(r.On, name)
			continue
		}
		seg, found := s.segments[segName]
		if !found {
			hint := yamlread.SuggestOr(segName, s.segmentNames())
			if len(s.Segments) == 0 {
				hint = "declare it under segments"
			}
			p.Add(n, path, hint, "unknown segment %q", segName)
			ok = false
			continue
		}
		if enter {
			r.onEnter = append(r.onEnter, seg)
		} else {
			r.onExit = append(r.onExit, seg)
		}
		v.change = true
		r.On = append(r.On, name)
	}
	return v, ok
}

// cutTrigger splits enter:SEGMENT and exit:SEGMENT; isSegment is false for
// an event type.
func cutTrigger(name string) (segment string, enter, isSegment bool) {
	if seg, ok := strings.CutPrefix(name, enterPrefix); ok {
		return seg, true, true
	}
	if seg, ok := strings.CutPrefix(name, exitPrefix); ok {
		return seg, false, true
	}
	return "", false, false
}

// triggerNames lists what a rule's on may name, for suggestions.
func (s *Schema) triggerNames() []string {
	names := s.eventNames()
	for _, seg := range s.Segments {
		names = append(names, enterPrefix+seg.Name, exitPrefix+seg.Name)
	}
	return names
}

// actionNodes are an action's settings.
type actionNodes struct {
	kind, approval, expires, payload, value, attribute *yaml.Node
	set                                                map[string]*yaml.Node // every setting given, by key
}

func (p *parser) action(s *Schema, r *Rule, n *yaml.Node, path string, env *twinEnvs, v variants, onOK bool) *ActionSpec {
	if n == nil || n.Kind != yaml.MappingNode {
		p.Add(n, path, "write e.g. {kind: tag, tag: vip}", "expected an action, a mapping with kind:, found %s", yamlread.Describe(n))
		return nil
	}
	a := &ActionSpec{path: path}
	nodes := actionNodes{set: map[string]*yaml.Node{}}
	for _, ae := range p.Mapping(n, path, actionKeys, "a mapping with kind:") {
		nodes.set[ae.Key] = ae.V
		switch ae.Key {
		case "kind":
			nodes.kind = ae.V
		case "approval":
			nodes.approval = ae.V
		case "expires":
			nodes.expires = ae.V
		case "payload":
			nodes.payload = ae.V
		case "value":
			nodes.value = ae.V
		case "name", "tag", "url", "attribute":
			str, ok := p.Str(ae.V, ae.Path)
			if !ok {
				continue
			}
			switch ae.Key {
			case "name":
				if p.name(ae.V, str, ae.Path, "action name") {
					a.Name = str
				}
			case "tag":
				if p.name(ae.V, str, ae.Path, "tag") {
					a.Tag = str
				}
			case "url":
				if p.url(ae.V, ae.Path, str) {
					a.URL = str
				}
			case "attribute":
				nodes.attribute = ae.V
			}
		}
	}
	sub := func(key string) string { return path + "." + key }
	if nodes.kind == nil {
		p.Add(n, path, "add kind: one of "+strings.Join(actionKinds, ", "), "action has no kind")
		return nil
	}
	kind, ok := p.Str(nodes.kind, sub("kind"))
	if !ok {
		return nil
	}
	if !slices.Contains(actionKinds, kind) {
		p.Add(nodes.kind, sub("kind"), yamlread.SuggestOr(kind, actionKinds), "unknown action kind %q", kind)
		return nil
	}
	a.Kind = kind

	// Settings of other kinds, in the order actionKeys lists them.
	for _, key := range actionKeys {
		kinds, limited := actionSettings[key]
		if sn := nodes.set[key]; sn != nil && limited && !slices.Contains(kinds, kind) {
			p.Add(sn, sub(key), "remove it", "%s applies only to %s actions, not %s", key, listAnd(kinds), kind)
			delete(nodes.set, key)
		}
	}
	required := map[string]string{
		"name": "add e.g. name: winback_20", "tag": "add e.g. tag: " + r.Name, "attribute": "add e.g. attribute: tier",
		"value": "add e.g. value: gold", "url": "add e.g. url: https://example.com/hook",
	}
	for _, key := range actionKeys {
		if hint, ok := required[key]; ok && slices.Contains(actionSettings[key], kind) {
			if _, given := nodes.set[key]; !given {
				p.Add(n, path, hint, "%s action has no %s", kind, key)
			}
		}
	}

	if nodes.approval != nil && nodes.set["approval"] != nil {
		a.Approval, _ = p.Bool(nodes.approval, sub("approval"))
	}
	if nodes.expires != nil {
		switch d, ok := p.duration(nodes.expires, sub("expires")); {
		case !ok:
		case !a.Approval:
			p.Add(nodes.expires, sub("expires"), "add approval: true, or remove expires", "expires applies only to actions with approval: true")
		case d <= 0:
			p.Add(nodes.expires, sub("expires"), "use e.g. expires: 48h", "expires must be positive")
		default:
			a.Expires = d
		}
	}
	if a.Approval && a.Expires == 0 {
		a.Expires = DefaultExpires
	}
	if nodes.payload != nil && nodes.set["payload"] != nil && onOK {
		a.payload = p.payload(env, yamlread.Resolve(nodes.payload), sub("payload"), v)
	}
	if kind == ActionSet {
		p.setAction(s, a, nodes, sub, env, v, onOK)
	}
	return a
}

// setAction resolves a set action's attribute and compiles its value.
func (p *parser) setAction(s *Schema, a *ActionSpec, nodes actionNodes, sub func(string) string, env *twinEnvs, v variants, onOK bool) {
	an := nodes.attribute
	if an == nil {
		return
	}
	name := an.Value
	attr, ok := s.attributes[name]
	if !ok {
		hint := Suggest(name, s.attributeNames())
		switch {
		case s.aggregates[name] != nil:
			hint = "set changes attributes; " + name + " is an aggregate, which only events change"
		case hint == "" && len(s.Attributes) == 0:
			hint = "declare it under attributes"
		case hint == "":
			hint = yamlread.OneOf(s.attributeNames())
		}
		p.Add(an, sub("attribute"), hint, "unknown attribute %q", name)
		return
	}
	a.Attr, a.attr, a.enum = attr.Index, attr, s.attrEnum(attr)
	vn := yamlread.Resolve(nodes.value)
	if vn == nil || attr.Type == 0 {
		return
	}
	vp := sub("value")
	if vn.Kind == yaml.ScalarNode && vn.ShortTag() == "!!str" && strings.Contains(vn.Value, tmplOpen) {
		if !onOK {
			return
		}
		check := exprCheck{label: "template", result: setResult(attr)}
		t := p.textTemplate(env, vn, vp, v, check)
		if t == nil {
			return
		}
		if t.kind == tmplText && attr.Type != twinhub.TypeString && attr.Type != twinhub.TypeEnum {
			p.Add(vn, vp, "use a single {{ expression }} as the value", "text is not %s, the type of attribute %s", typeArticle(attr.Type), attr.Name)
			return
		}
		a.value = t
		return
	}
	a.lit, _ = p.attrLiteral(attr, a.enum, vn, vp)
}

// attrLiteral reads a literal value for attribute attr.
func (p *parser) attrLiteral(attr *Attribute, enum []string, n *yaml.Node, path string) (twinhub.Value, bool) {
	val := twinhub.Value{Type: attr.Type, Set: true}
	if yamlread.IsNull(n) || n.Kind != yaml.ScalarNode {
		p.Add(n, path, "write a value, or a {{ expression }}", "expected %s for attribute %s, found %s", typeArticle(attr.Type), attr.Name, yamlread.Describe(n))
		return twinhub.Value{}, false
	}
	var ok bool
	switch attr.Type {
	case twinhub.TypeString, twinhub.TypeEnum:
		if val.Str, ok = p.Str(n, path); ok && len(enum) > 0 && !slices.Contains(enum, val.Str) {
			p.Add(n, path, yamlread.SuggestOr(val.Str, enum), "%q is not a value of attribute %s", val.Str, attr.Name)
			ok = false
		}
	case twinhub.TypeNumber:
		val.Num, ok = p.number(n, path)
	case twinhub.TypeInteger:
		var i int
		i, ok = p.integer(n, path)
		val.Num = float64(i)
	case twinhub.TypeBool:
		var b bool
		if b, ok = p.Bool(n, path); b {
			val.Num = 1
		}
	case twinhub.TypeTime:
		t, good := p.timestamp(n, path)
		val.Num, ok = float64(t.UnixMicro()), good
	}
	return val, ok
}

// setResult accepts a set value expression of the attribute's type; an int
// for a number attribute; and dyn, checked when it runs.
func setResult(attr *Attribute) func(*types.Type) (string, string) {
	want := attrCELType(attr.Type)
	return func(out *types.Type) (string, string) {
		switch {
		case out.Kind() == types.DynKind, out.IsExactType(want):
			return "", ""
		case attr.Type == twinhub.TypeNumber && out.IsExactType(types.IntType):
			return "", ""
		}
		hint := ""
		switch {
		case attr.Type == twinhub.TypeInteger && out.IsExactType(types.DoubleType):
			hint = "convert with int(), e.g. {{ int(twin.spend_total) }}"
		case want.IsExactType(types.StringType):
			hint = "convert with string()"
		}
		return fmt.Sprintf("value must be %s for attribute %s, not %s", typeArticle(attr.Type), attr.Name, out), hint
	}
}

// attrValue converts the result of a set value expression to attribute
// attr's type.
func attrValue(attr *Attribute, enum []string, v ref.Val) (twinhub.Value, error) {
	out := twinhub.Value{Type: attr.Type, Set: true}
	bad := func() (twinhub.Value, error) {
		return twinhub.Value{}, fmt.Errorf("attribute %s is %s; the value is %s", attr.Name, typeArticle(attr.Type), v.Type().TypeName())
	}
	switch attr.Type {
	case twinhub.TypeString, twinhub.TypeEnum:
		s, ok := v.(types.String)
		if !ok {
			return bad()
		}
		if len(enum) > 0 && !slices.Contains(enum, string(s)) {
			return twinhub.Value{}, fmt.Errorf("%q is not a value of attribute %s (%s)", string(s), attr.Name, strings.Join(enum, ", "))
		}
		out.Str = string(s)
	case twinhub.TypeNumber:
		switch n := v.(type) {
		case types.Double:
			if math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) {
				return twinhub.Value{}, fmt.Errorf("%v is not a finite number", float64(n))
			}
			out.Num = float64(n)
		case types.Int:
			out.Num = float64(n)
		default:
			return bad()
		}
	case twinhub.TypeInteger:
		switch n := v.(type) {
		case types.Int:
			out.Num = float64(n)
		case types.Double:
			if float64(n) != math.Trunc(float64(n)) || math.IsInf(float64(n), 0) {
				return twinhub.Value{}, fmt.Errorf("%v is not a whole number", float64(n))
			}
			out.Num = float64(n)
		default:
			return bad()
		}
	case twinhub.TypeBool:
		b, ok := v.(types.Bool)
		if !ok {
			return bad()
		}
		if b {
			out.Num = 1
		}
	case twinhub.TypeTime:
		t, ok := v.(types.Timestamp)
		if !ok {
			return bad()
		}
		out.Num = float64(t.Time.UnixMicro())
	default:
		return bad()
	}
	return out, nil
}

// attrEnum returns the values an enum attribute may take: those of its
// source fields.
func (s *Schema) attrEnum(a *Attribute) []string {
	if a.Type != twinhub.TypeEnum {
		return nil
	}
	var values []string
	for _, src := range a.From {
		evName, fname, _ := strings.Cut(src, ".")
		if t, ok := s.events[evName]; ok {
			if f, ok := t.Field(fname); ok {
				for _, v := range f.Enum {
					if !slices.Contains(values, v) {
						values = append(values, v)
					}
				}
			}
		}
	}
	return values
}

func (s *Schema) attributeNames() []string {
	names := make([]string, len(s.Attributes))
	for i, a := range s.Attributes {
		names[i] = a.Name
	}
	return names
}

// listAnd joins names as "a, b and c".
func listAnd(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
