package schema

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/internal/yamlread"
)

// commonField reports whether name is one of the fields every event has.
func (s *Schema) commonField(name string) bool {
	return name == IDField || name == TypeField || name == TimeField || name == SourceField || name == PositionField ||
		name != "" && name == s.Key
}

func (s *Schema) commonHint() string {
	key := s.Key
	if key == "" {
		key = "the key field"
	}
	return fmt.Sprintf("remove it: every event has id, type, %s, time (optional), source (optional) and position (optional)", key)
}

func (p *parser) events(s *Schema, top entry) {
	entries := p.Mapping(top.V, top.Path, nil, "a mapping of event type names to their fields")
	if len(entries) == 0 && top.V != nil && (yamlread.IsNull(top.V) || top.V.Kind == yaml.MappingNode) {
		p.Add(top.K, top.Path, "declare at least one event type, e.g. purchase: {fields: {amount: number}}", "no event types")
	}
	for _, e := range entries {
		p.name(e.K, e.Key, e.Path, "event type")
		t := &EventType{Name: e.Key, Index: len(s.Events), fields: map[string]*Field{}}
		s.Events = append(s.Events, t)
		s.events[t.Name] = t
		for _, te := range p.Mapping(e.V, e.Path, eventKeys, "a mapping with fields: and description:") {
			switch te.Key {
			case "description":
				t.Description, _ = p.Str(te.V, te.Path)
			case "fields":
				for _, fe := range p.Mapping(te.V, te.Path, nil, "a mapping of field names to their types") {
					if !p.name(fe.K, fe.Key, fe.Path, "field") {
						continue
					}
					if s.commonField(fe.Key) {
						p.Add(fe.K, fe.Path, s.commonHint(), "%q is a common field and cannot be redeclared", fe.Key)
						continue
					}
					f := p.field(fe)
					f.Slot = len(t.Fields)
					t.Fields = append(t.Fields, f)
					t.fields[f.Name] = f
				}
			}
		}
	}
}

func (p *parser) field(e entry) *Field {
	f := &Field{Name: e.Key}
	typeHint := "add e.g. type: string (" + yamlread.OneOf(fieldTypes) + ")"
	if e.V != nil && e.V.Kind == yaml.ScalarNode && !yamlread.IsNull(e.V) {
		f.Type = p.fieldType(e.V, e.Path)
		return f
	}
	if yamlread.IsNull(e.V) {
		p.Add(e.K, e.Path, typeHint, "field %q has no type", e.Key)
		return f
	}
	var minN, maxN, valuesN *yaml.Node
	sawType := false
	for _, fe := range p.Mapping(e.V, e.Path, fieldKeys, "a type name or a mapping with type:") {
		switch fe.Key {
		case "type":
			sawType = true
			f.Type = p.fieldType(fe.V, fe.Path)
		case "required":
			f.Required, _ = p.Bool(fe.V, fe.Path)
		case "description":
			f.Description, _ = p.Str(fe.V, fe.Path)
		case "min":
			if v, ok := p.number(fe.V, fe.Path); ok {
				f.Min, minN = &v, fe.V
			}
		case "max":
			if v, ok := p.number(fe.V, fe.Path); ok {
				f.Max, maxN = &v, fe.V
			}
		case "values":
			valuesN = fe.V
			values, nodes, _ := p.strList(fe.V, fe.Path)
			if fe.V != nil && fe.V.Kind == yaml.SequenceNode && len(fe.V.Content) == 0 {
				p.Add(fe.V, fe.Path, "list the allowed values, e.g. values: [web, store]", "values is empty")
			}
			seen := map[string]bool{}
			for i, v := range values {
				if seen[v] {
					p.Add(nodes[i], fe.Path, "remove the duplicate", "value %q is listed twice", v)
				}
				seen[v] = true
			}
			f.Enum = values
		}
	}
	if !sawType && e.V.Kind == yaml.MappingNode {
		p.Add(e.K, e.Path, typeHint, "field %q has no type", e.Key)
	}
	numeric := f.Type == twinhub.TypeNumber || f.Type == twinhub.TypeInteger
	if f.Type != 0 && !numeric {
		if minN != nil {
			p.Add(minN, e.Path+".min", "remove it, or make the field a number or integer", "min applies only to number and integer fields, not %s", f.Type)
		}
		if maxN != nil {
			p.Add(maxN, e.Path+".max", "remove it, or make the field a number or integer", "max applies only to number and integer fields, not %s", f.Type)
		}
	}
	if f.Min != nil && f.Max != nil && *f.Min > *f.Max {
		p.Add(maxN, e.Path+".max", "swap them", "min %v is greater than max %v", *f.Min, *f.Max)
	}
	switch {
	case f.Type == twinhub.TypeEnum && valuesN == nil:
		p.Add(e.K, e.Path, "list the allowed values, e.g. values: [web, store]", "enum field %q has no values", e.Key)
	case f.Type != 0 && f.Type != twinhub.TypeEnum && valuesN != nil:
		p.Add(valuesN, e.Path+".values", "use type: enum, or remove values", "values applies only to enum fields, not %s", f.Type)
	}
	return f
}

func (p *parser) fieldType(n *yaml.Node, path string) twinhub.FieldType {
	s, ok := p.Str(n, path)
	if !ok {
		return 0
	}
	t, ok := twinhub.ParseFieldType(s)
	if !ok {
		hint := yamlread.SuggestOr(s, fieldTypes)
		if alias, ok := typeAliases[strings.ToLower(s)]; ok {
			hint = fmt.Sprintf("use %s", alias)
		}
		p.Add(n, path, hint, "unknown type %q", s)
	}
	return t
}

func (s *Schema) eventNames() []string {
	names := make([]string, len(s.Events))
	for i, t := range s.Events {
		names[i] = t.Name
	}
	return names
}

func (t *EventType) fieldNames() []string {
	names := make([]string, len(t.Fields))
	for i, f := range t.Fields {
		names[i] = f.Name
	}
	return names
}

func (p *parser) attributes(s *Schema, top entry) {
	for _, e := range p.Mapping(top.V, top.Path, nil, "a mapping of attribute names to their sources") {
		if !p.name(e.K, e.Key, e.Path, "attribute") || !p.twinName(e, "attribute") {
			continue
		}
		a := &Attribute{Name: e.Key, Index: len(s.Attributes)}
		s.Attributes = append(s.Attributes, a)
		s.attributes[a.Name] = a
		fromHint := "add e.g. from: profile.name"
		var from *yaml.Node
		fromPath := e.Path + ".from"
		switch {
		case e.V != nil && (e.V.Kind == yaml.ScalarNode && !yamlread.IsNull(e.V) || e.V.Kind == yaml.SequenceNode):
			from = e.V // shorthand: name: profile.name
		case e.V != nil && e.V.Kind == yaml.MappingNode:
			for _, ae := range p.Mapping(e.V, e.Path, attributeKeys, "a mapping with from:") {
				switch ae.Key {
				case "from":
					from = ae.V
				case "description":
					a.Description, _ = p.Str(ae.V, ae.Path)
				}
			}
		}
		if from == nil {
			if e.V == nil || yamlread.IsNull(e.V) || e.V.Kind == yaml.MappingNode {
				p.Add(e.K, e.Path, fromHint, "attribute %q has no from", e.Key)
			} else {
				p.Add(e.V, e.Path, fromHint, "expected a mapping with from:, found %s", yamlread.Describe(e.V))
			}
			continue
		}
		sources, nodes, _ := p.strList(from, fromPath)
		if from.Kind == yaml.SequenceNode && len(from.Content) == 0 {
			p.Add(from, fromPath, fromHint, "from is empty")
		}
		var (
			typeOf  = map[twinhub.FieldType]string{} // a source of each type, for the conflict message
			seen    = map[string]bool{}
			feeds   []*EventType
			slots   []int
			typeSet []twinhub.FieldType
		)
		for i, src := range sources {
			n := nodes[i]
			evName, fname, ok := strings.Cut(src, ".")
			if !ok || evName == "" || fname == "" {
				p.Add(n, fromPath, "write event.field, e.g. profile.name", "source %q does not name an event field", src)
				continue
			}
			t, ok := s.events[evName]
			if !ok {
				p.Add(n, fromPath, yamlread.SuggestOr(evName, s.eventNames()), "source %q: unknown event type %q", src, evName)
				continue
			}
			if seen[evName] {
				p.Add(n, fromPath, "keep one source per event type", "event type %q is listed twice", evName)
				continue
			}
			seen[evName] = true
			var typ twinhub.FieldType
			slot := SlotTime
			if fname == TimeField {
				typ = twinhub.TypeTime
			} else if f, ok := t.Field(fname); ok {
				typ, slot = f.Type, f.Slot
			} else {
				hint := Suggest(fname, t.fieldNames())
				if hint == "" {
					hint = fmt.Sprintf("declare it under events.%s.fields", evName)
				}
				msg := fmt.Sprintf("source %q: event type %q has no field %q", src, evName, fname)
				if s.commonField(fname) {
					hint = "attributes are set from declared fields or time"
					msg = fmt.Sprintf("source %q: %q is a common field", src, fname)
				}
				p.Add(n, fromPath, hint, "%s", msg)
				continue
			}
			feeds, slots = append(feeds, t), append(slots, slot)
			if typ != 0 {
				if _, ok := typeOf[typ]; !ok {
					typeOf[typ] = src
					typeSet = append(typeSet, typ)
				}
			}
		}
		a.From = sources
		switch {
		case len(typeSet) == 1:
			a.Type = typeSet[0]
		case len(typeSet) == 2 && slices.Contains(typeSet, twinhub.TypeString) && slices.Contains(typeSet, twinhub.TypeEnum):
			a.Type = twinhub.TypeString
		case len(typeSet) > 1:
			p.Add(from, fromPath, "set an attribute from fields of one type",
				"sources disagree on the type: %s is %s but %s is %s",
				typeOf[typeSet[0]], typeArticle(typeSet[0]), typeOf[typeSet[1]], typeArticle(typeSet[1]))
		}
		for i, t := range feeds {
			t.Sets = append(t.Sets, AttrFeed{Attr: a.Index, Slot: slots[i]})
		}
	}
}

func typeArticle(t twinhub.FieldType) string {
	switch t {
	case twinhub.TypeInteger, twinhub.TypeEnum:
		return "an " + t.String()
	}
	return "a " + t.String()
}

// twinName reports an attribute or aggregate named like a field every twin
// has (twin.key, twin.revision, twin.segments, twin.tags).
func (p *parser) twinName(e entry, what string) bool {
	if slices.Contains(twinBuiltins, e.Key) {
		p.Add(e.K, e.Path, "rename it, e.g. "+e.Key+"_: every twin has key, revision, segments and tags",
			"%s %q clashes with twin.%s, which every twin has", what, e.Key, e.Key)
		return false
	}
	return true
}
