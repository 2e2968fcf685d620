package schema

import (
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/agg"
)

// Policy says what ingestion does with event fields the schema does not declare.
type Policy uint8

// Unknown-field policies. The zero value rejects, the safe default.
const (
	PolicyReject Policy = iota // reject the event, naming the field
	PolicyKeep                 // accept the event; the field stays in Raw only
)

func (p Policy) String() string {
	if p == PolicyKeep {
		return "keep"
	}
	return "reject"
}

// DefaultMaxFuture is max_future when a schema does not set it.
const DefaultMaxFuture = 24 * time.Hour

// Common field names every event has. The key field is common too; its name
// is Schema.Key. Position is the optional change-log position that orders
// attribute changes (twinhub.Event.Position).
const (
	IDField       = "id"
	TypeField     = "type"
	TimeField     = "time"
	SourceField   = "source"
	PositionField = "position"
)

// Slots that are not declared fields, for Feed.Slot and AttrFeed.Slot.
const (
	SlotNone = -1 // the aggregate reads no value (count, time_since)
	SlotTime = -2 // the event time
)

// Schema is a parsed, validated and compiled twin model. It is immutable once
// Parse returns it, except for Version, which the store sets; it is safe for
// concurrent use by readers.
type Schema struct {
	Version       int    // 0 until stored; set by the store
	Source        []byte // the YAML text it was parsed from
	Description   string
	Entity        string // entity type name, e.g. "customer"
	Key           string // name of the event field that carries the twin key
	UnknownFields Policy
	MaxFuture     time.Duration // events later than now+MaxFuture are rejected
	MinTime       time.Time     // events before MinTime are rejected

	Events     []*EventType // in declaration order; Event.Type indexes it
	Attributes []*Attribute // in declaration order
	Aggregates []*Aggregate // in declaration order; Aggregates[i].Index == i
	Layout     *agg.Layout  // built from the aggregates' Specs

	Segments []*Segment // in declaration order; Segments[i].Index == i
	Rules    []*Rule    // in declaration order; Rules[i].Index == i
	Webhooks []*Webhook
	// TimedSegments are the indexes of the segments that time alone can
	// change (Segment.TimeDependent), which the engine's sweeps re-evaluate.
	TimedSegments []int

	events     map[string]*EventType
	attributes map[string]*Attribute
	aggregates map[string]*Aggregate
	segments   map[string]*Segment
	rules      map[string]*Rule
}

// EventType returns the event type called name.
func (s *Schema) EventType(name string) (*EventType, bool) {
	t, ok := s.events[name]
	return t, ok
}

// Attribute returns the attribute called name.
func (s *Schema) Attribute(name string) (*Attribute, bool) {
	a, ok := s.attributes[name]
	return a, ok
}

// Aggregate returns the aggregate called name.
func (s *Schema) Aggregate(name string) (*Aggregate, bool) {
	a, ok := s.aggregates[name]
	return a, ok
}

// Segment returns the segment called name.
func (s *Schema) Segment(name string) (*Segment, bool) {
	seg, ok := s.segments[name]
	return seg, ok
}

// Rule returns the rule called name.
func (s *Schema) Rule(name string) (*Rule, bool) {
	r, ok := s.rules[name]
	return r, ok
}

// Specs returns the aggregates' specs in Layout order.
func (s *Schema) Specs() []agg.Spec {
	specs := make([]agg.Spec, len(s.Aggregates))
	for i, a := range s.Aggregates {
		specs[i] = a.Spec
	}
	return specs
}

// EventType is one declared event type.
type EventType struct {
	Name        string
	Description string
	Index       int        // position in Schema.Events, and the value of Event.Type
	Fields      []*Field   // declared fields in slot order (declaration order)
	Feeds       []Feed     // aggregates this event type feeds, in aggregate order
	Sets        []AttrFeed // attributes this event type sets, in attribute order
	// Segments are the segments whose predicate an event of this type may
	// change, in segment order; Rules the rules it triggers, in firing
	// order (priority, then declaration). Both are indexes.
	Segments []int
	Rules    []int

	fields map[string]*Field
	obj    *celObject // the CEL type of `event` in where expressions
}

// Field returns the declared field called name; common fields (id, type,
// key, time, source, position) are not declared fields.
func (t *EventType) Field(name string) (*Field, bool) {
	f, ok := t.fields[name]
	return f, ok
}

// Field is one declared field of an event type.
type Field struct {
	Name        string
	Description string
	Type        twinhub.FieldType
	Required    bool
	Enum        []string // allowed values of an enum field
	Min, Max    *float64 // inclusive bounds of a number or integer field, nil when unbounded
	Slot        int      // index of the field's value in Event.Vals
}

// Feed says that an event type feeds one aggregate.
type Feed struct {
	Agg   int    // index of the aggregate in Schema.Aggregates and Layout
	Slot  int    // slot of the field it reads, SlotTime or SlotNone
	Where *Where // the aggregate's filter; nil when it has none
}

// AttrFeed says that an event type sets one attribute.
type AttrFeed struct {
	Attr int // index of the attribute in Schema.Attributes
	Slot int // slot of the field it is set from, or SlotTime
}

// Attribute is a twin attribute: the latest value of one of its source
// fields. From lists the sources as "event.field".
type Attribute struct {
	Name        string
	Description string
	Index       int
	Type        twinhub.FieldType
	From        []string
}

// Aggregate is one declared aggregate. Spec carries everything agg needs,
// with defaults filled in (bucket, k, half-life, unit).
type Aggregate struct {
	agg.Spec
	Description string
	Index       int      // index in Schema.Aggregates and Schema.Layout
	On          []string // event types it is on; empty means every type
	Field       string   // field it reads; "" for count and time_since
	Where       string   // CEL filter; "" when none
}
