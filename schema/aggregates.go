package schema

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/agg"
	"github.com/twinhub/twinhub/internal/yamlread"
)

// accepts reports whether aggregate kind k can read a field of type t.
func accepts(k agg.Kind, t twinhub.FieldType) bool {
	numeric := t == twinhub.TypeNumber || t == twinhub.TypeInteger
	switch k {
	case agg.Sum, agg.Avg, agg.EWMA:
		return numeric
	case agg.Min, agg.Max, agg.First, agg.Last:
		return numeric || t == twinhub.TypeTime
	case agg.TopK:
		return t == twinhub.TypeString || t == twinhub.TypeEnum
	case agg.Distinct:
		return t == twinhub.TypeString || t == twinhub.TypeEnum || t == twinhub.TypeInteger
	}
	return false
}

func acceptedTypes(k agg.Kind) string {
	switch k {
	case agg.Sum, agg.Avg, agg.EWMA:
		return "a number or integer field"
	case agg.Min, agg.Max, agg.First, agg.Last:
		return "a number, integer or time field"
	case agg.TopK:
		return "a string or enum field"
	case agg.Distinct:
		return "a string, enum or integer field"
	}
	return "no field"
}

// fieldHint proposes a field for an aggregate of kind k that has none: one
// that every target declares with a type k accepts.
func fieldHint(k agg.Kind, targets []*EventType, onOK bool) string {
	if onOK && len(targets) > 0 {
	candidates:
		for _, f := range targets[0].Fields {
			for _, t := range targets {
				g, ok := t.Field(f.Name)
				if !ok || !accepts(k, g.Type) {
					continue candidates
				}
			}
			return "add e.g. field: " + f.Name
		}
	}
	if accepts(k, twinhub.TypeTime) {
		return "add field: naming " + acceptedTypes(k) + ", or field: time for the event time"
	}
	return "add field: naming " + acceptedTypes(k)
}

func windowableKinds() []string {
	var out []string
	for _, n := range agg.Kinds() {
		if k, _ := agg.ParseKind(n); k.Windowable() {
			out = append(out, n)
		}
	}
	return out
}

// aggregateNodes are an aggregate's settings, kept for cross-checks.
type aggregateNodes struct {
	kind, on, field, where, window, bucket, k, halfLife, unit *yaml.Node
}

func (p *parser) aggregates(s *Schema, top entry, envs *celEnvs) {
	for _, e := range p.Mapping(top.V, top.Path, nil, "a mapping of aggregate names to their declarations") {
		if !p.name(e.K, e.Key, e.Path, "aggregate") || !p.twinName(e, "aggregate") {
			continue
		}
		if _, ok := s.attributes[e.Key]; ok {
			p.Add(e.K, e.Path, "rename one of them: attributes and aggregates share the twin's namespace",
				"%q is both an attribute and an aggregate", e.Key)
			continue
		}
		a := &Aggregate{Index: len(s.Aggregates)}
		a.Name = e.Key
		s.Aggregates = append(s.Aggregates, a)
		s.aggregates[a.Name] = a
		p.aggregate(s, a, e, envs)
	}
}

func (p *parser) aggregate(s *Schema, a *Aggregate, e entry, envs *celEnvs) {
	if e.V == nil || e.V.Kind != yaml.MappingNode {
		if yamlread.IsNull(e.V) {
			p.Add(e.K, e.Path, "add e.g. kind: count", "aggregate %q has no kind", a.Name)
		} else {
			p.Add(e.V, e.Path, "write e.g. {kind: count, on: purchase}", "expected a mapping with kind:, found %s", yamlread.Describe(e.V))
		}
		return
	}
	var n aggregateNodes
	for _, ae := range p.Mapping(e.V, e.Path, aggregateKeys, "a mapping with kind:") {
		switch ae.Key {
		case "kind":
			n.kind = ae.V
		case "on":
			n.on = ae.V
		case "field":
			n.field = ae.V
		case "where":
			n.where = ae.V
		case "window":
			n.window = ae.V
		case "bucket":
			n.bucket = ae.V
		case "k":
			n.k = ae.V
		case "half_life":
			n.halfLife = ae.V
		case "unit":
			n.unit = ae.V
		case "description":
			a.Description, _ = p.Str(ae.V, ae.Path)
		}
	}
	path := func(key string) string { return e.Path + "." + key }

	// kind
	kindOK := false
	if n.kind == nil {
		p.Add(e.K, e.Path, "add kind: one of "+strings.Join(agg.Kinds(), ", "), "aggregate %q has no kind", a.Name)
	} else if v, ok := p.Str(n.kind, path("kind")); ok {
		if a.Kind, kindOK = agg.ParseKind(v); !kindOK {
			p.Add(n.kind, path("kind"), yamlread.SuggestOr(v, agg.Kinds()), "unknown kind %q", v)
		}
	}

	// on: the event types it is fed by
	onOK := true
	var targets []*EventType
	if n.on != nil {
		names, nodes, ok := p.strList(n.on, path("on"))
		onOK = ok
		if n.on.Kind == yaml.SequenceNode && len(n.on.Content) == 0 {
			p.Add(n.on, path("on"), "omit on to feed on every event type", "on is empty")
			onOK = false
		}
		for i, name := range names {
			t, ok := s.events[name]
			switch {
			case !ok:
				p.Add(nodes[i], path("on"), yamlread.SuggestOr(name, s.eventNames()), "unknown event type %q", name)
				onOK = false
			case slices.Contains(targets, t):
				p.Add(nodes[i], path("on"), "remove the duplicate", "event type %q is listed twice", name)
			default:
				targets = append(targets, t)
				a.On = append(a.On, name)
			}
		}
	} else {
		targets = s.Events
	}

	// field
	slots := map[int]int{} // event type index -> slot
	if n.field != nil {
		fname, ok := p.Str(n.field, path("field"))
		switch {
		case !ok:
		case kindOK && !a.Kind.NeedsValue():
			p.Add(n.field, path("field"), "remove field; use where to choose which events count",
				"%s reads no field", a.Kind)
		default:
			a.Field = fname
			if onOK {
				p.aggregateField(s, a, n.field, path("field"), targets, slots, kindOK)
			}
		}
	} else if kindOK && a.Kind.NeedsValue() {
		p.Add(e.K, e.Path, fieldHint(a.Kind, targets, onOK), "%s needs a field", a.Kind)
	}

	// window and bucket
	if n.window != nil {
		if d, ok := p.duration(n.window, path("window")); ok {
			switch {
			case kindOK && !a.Kind.Windowable():
				p.Add(n.window, path("window"), "windowable kinds: "+strings.Join(windowableKinds(), ", "),
					"%s does not take a window", a.Kind)
			case d < agg.MinBucket:
				p.Add(n.window, path("window"), "use a window of "+FormatDuration(agg.MinBucket)+" or more", "window %s is too short", FormatDuration(d))
			case d%agg.MinBucket != 0:
				p.Add(n.window, path("window"), "use e.g. "+FormatDuration(d.Truncate(agg.MinBucket)),
					"window %s is not a whole number of %s buckets", FormatDuration(d), FormatDuration(agg.MinBucket))
			default:
				a.Window = d
			}
		}
	}
	if n.bucket != nil {
		if d, ok := p.duration(n.bucket, path("bucket")); ok {
			switch {
			case n.window == nil:
				p.Add(n.bucket, path("bucket"), "add a window, or remove bucket", "bucket needs a window")
			case d < agg.MinBucket:
				p.Add(n.bucket, path("bucket"), "use a bucket of "+FormatDuration(agg.MinBucket)+" or more", "bucket %s is too short", FormatDuration(d))
			case a.Window > 0 && a.Window%d != 0:
				p.Add(n.bucket, path("bucket"), "use a bucket that divides the window evenly, e.g. "+FormatDuration(divisorBucket(a.Window, d)),
					"bucket %s does not divide the window %s", FormatDuration(d), FormatDuration(a.Window))
			default:
				a.Bucket = d
			}
		}
	}
	if a.Window > 0 && a.Bucket == 0 {
		a.Bucket = divisorBucket(a.Window, agg.DefaultBucket(a.Window))
	}

	// kind-specific settings
	p.only(n.k, path("k"), kindOK, a.Kind, agg.TopK)
	p.only(n.halfLife, path("half_life"), kindOK, a.Kind, agg.EWMA)
	p.only(n.unit, path("unit"), kindOK, a.Kind, agg.TimeSince)
	switch a.Kind {
	case agg.TopK:
		a.K = agg.DefaultK
		if n.k != nil {
			if k, ok := p.integer(n.k, path("k")); ok {
				switch {
				case k < 1:
					p.Add(n.k, path("k"), "use k: 1 or more", "k must be at least 1, found %d", k)
				case k > agg.MaxK:
					p.Add(n.k, path("k"), fmt.Sprintf("use k: %d or less", agg.MaxK), "k %d is too large", k)
				default:
					a.K = k
				}
			}
		}
	case agg.EWMA:
		a.HalfLife = agg.DefaultHalfLife
		if n.halfLife != nil {
			if d, ok := p.duration(n.halfLife, path("half_life")); ok {
				if d <= 0 {
					p.Add(n.halfLife, path("half_life"), "use e.g. half_life: 14d", "half_life must be positive")
				} else {
					a.HalfLife = d
				}
			}
		}
	case agg.TimeSince:
		a.Unit = agg.DefaultUnit
		if n.unit != nil {
			if d, ok := p.duration(n.unit, path("unit")); ok {
				if d <= 0 {
					p.Add(n.unit, path("unit"), "use e.g. unit: 1d or unit: 1h", "unit must be positive")
				} else {
					a.Unit = d
				}
			}
		}
	}

	// where, compiled for every event type the aggregate is on
	var where *Where
	if n.where != nil {
		if expr, ok := p.Str(n.where, path("where")); ok {
			a.Where = expr
			if onOK && envs != nil {
				where = p.where(n.where, path("where"), expr, targets, envs)
			}
		}
	}

	for _, t := range targets {
		slot, ok := slots[t.Index]
		if !ok {
			slot = SlotNone
		}
		t.Feeds = append(t.Feeds, Feed{Agg: a.Index, Slot: slot, Where: where})
	}
}

// only reports setting n (k, half_life, unit) on an aggregate of a kind it
// does not apply to.
func (p *parser) only(n *yaml.Node, path string, kindOK bool, kind, want agg.Kind) {
	if n != nil && kindOK && kind != want {
		key := path[strings.LastIndexByte(path, '.')+1:]
		p.Add(n, path, "remove it", "%s applies only to %s, not %s", key, want, kind)
	}
}

// divisorBucket returns the widest bucket no wider than want that divides
// window, in whole agg.MinBucket units (window is a multiple of MinBucket).
func divisorBucket(window, want time.Duration) time.Duration {
	w, limit := int64(window/agg.MinBucket), int64(want/agg.MinBucket)
	best := int64(1)
	for d := int64(1); d*d <= w; d++ {
		if w%d != 0 {
			continue
		}
		if d <= limit {
			best = max(best, d)
		}
		if e := w / d; e <= limit {
			best = max(best, e)
		}
	}
	return time.Duration(best) * agg.MinBucket
}

// aggregateField resolves the aggregate's field on every target event type,
// filling slots and IsTime.
func (p *parser) aggregateField(s *Schema, a *Aggregate, n *yaml.Node, path string, targets []*EventType, slots map[int]int, kindOK bool) {
	var missing []string
	var hint string
	var timeOn, nonTimeOn string
	badType := false
	for _, t := range targets {
		typ := twinhub.TypeTime
		slot := SlotTime
		if a.Field != TimeField {
			f, ok := t.Field(a.Field)
			if !ok {
				missing = append(missing, t.Name)
				if hint == "" {
					hint = Suggest(a.Field, t.fieldNames())
				}
				continue
			}
			typ, slot = f.Type, f.Slot
		}
		slots[t.Index] = slot
		if typ == 0 || !kindOK {
			continue
		}
		if !accepts(a.Kind, typ) && !badType {
			badType = true
			p.Add(n, path, fmt.Sprintf("%s needs %s", a.Kind, acceptedTypes(a.Kind)),
				"%s cannot read %s.%s, which is %s", a.Kind, t.Name, a.Field, typeArticle(typ))
		}
		if typ == twinhub.TypeTime {
			timeOn = t.Name
		} else {
			nonTimeOn = t.Name
		}
	}
	if len(missing) > 0 {
		switch {
		case s.commonField(a.Field):
			p.Add(n, path, "aggregates read declared fields, or time for the event time", "%q is a common field", a.Field)
		case len(missing) == len(targets) && len(targets) == 1:
			if hint == "" {
				hint = fmt.Sprintf("declare it under events.%s.fields", missing[0])
			}
			p.Add(n, path, hint, "event type %q has no field %q", missing[0], a.Field)
		default:
			if hint == "" {
				hint = "declare it on each of them, or narrow on to the event types that have it"
			}
			what := "event type"
			if len(missing) > 1 {
				what = "event types"
			}
			p.Add(n, path, hint, "field %q is not declared on %s %s", a.Field, what, strings.Join(missing, ", "))
		}
		return
	}
	switch {
	case badType:
	case timeOn != "" && nonTimeOn != "":
		p.Add(n, path, "use one field type across the event types", "field %q is a time on %s but not on %s", a.Field, timeOn, nonTimeOn)
	case timeOn != "":
		a.IsTime = true
	}
}
