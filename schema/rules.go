package schema

import (
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/agg"
)

// TwinVars is a twin as segment predicates, rule conditions and action
// templates see it. The engine implements it over its twin state; the
// values are read while the twin's shard holds it, so implementations need
// not be safe for concurrent use.
type TwinVars interface {
	Key() string
	Revision() uint64
	// Attr returns attribute i (Schema.Attributes index); Set is false when
	// it was never set or was cleared.
	Attr(i int) twinhub.Value
	// AggNum evaluates scalar aggregate i (every kind but top-k) at now
	// (unix ns): counts and distinct counts as whole numbers, times as unix
	// microseconds, time_since in its unit. ok is false when the aggregate
	// has no value (an avg, last, first, min, max, ewma or time_since with
	// no data).
	AggNum(i int, now int64) (v float64, ok bool)
	// AggTop evaluates top-k aggregate i at now, most frequent first.
	AggTop(i int, now int64) []agg.TopEntry
	// InSegment reports whether the twin is a member of segment i.
	InSegment(i int) bool
	// Tags returns the twin's tags, sorted.
	Tags() []string
}

// Cause is what made the engine evaluate a rule: an event of type Type, or
// a twin entering (Enter) or leaving a segment. For a segment change Event
// is the event that caused it, nil when time alone did.
type Cause struct {
	Type    *EventType
	Event   *twinhub.Event
	Segment *Segment
	Enter   bool
}

// RuleMode says when a rule whose condition holds fires.
type RuleMode uint8

// Rule modes.
const (
	ModeEvery RuleMode = iota // every time the rule is evaluated and its condition holds
	ModeEdge                  // only when its condition turns from false to true
)

func (m RuleMode) String() string {
	if m == ModeEdge {
		return "edge"
	}
	return "every"
}

// Segment is a named predicate over the twin. Membership is maintained by
// the engine: after every event that may change what the predicate reads,
// and by periodic sweeps for predicates that time alone can change.
type Segment struct {
	Name        string
	Description string
	Expr        string
	Index       int // position in Schema.Segments
	// TimeDependent says time alone can change the answer: the predicate
	// reads a windowed or time_since aggregate, or now.
	TimeDependent bool
	// OnEnter and OnExit are the rules triggered by entering and leaving,
	// indexes into Schema.Rules in firing order.
	OnEnter, OnExit []int
}

// Match reports whether twin tv is in the segment at now (unix ns). An
// evaluation error (reading an aggregate that has no value) is false.
func (s *Segment) Match(tv TwinVars, now int64) bool {
	panic("schema: segments are not implemented yet")
}

// Rule is a compiled rule: on a trigger, when its condition holds, it does
// its actions.
type Rule struct {
	Name        string
	Description string
	Index       int      // position in Schema.Rules (declaration order)
	On          []string // triggers as written: event types, enter:SEGMENT, exit:SEGMENT
	When        string   // the condition; "" always holds
	Mode        RuleMode
	Cooldown    time.Duration // 0: none
	Priority    int           // higher fires first; ties in declaration order
	Enabled     bool
	Actions     []*ActionSpec
}

// Holds reports whether the rule's condition holds for twin tv at now (unix
// ns) for cause c. An evaluation error is false.
func (r *Rule) Holds(tv TwinVars, c *Cause, now int64) bool {
	panic("schema: rules are not implemented yet")
}

// Reads returns the values the condition refers to (twin.X and event.Y, by
// those names), for an action's receipt; unset values are nil.
func (r *Rule) Reads(tv TwinVars, c *Cause, now int64) map[string]any {
	panic("schema: rules are not implemented yet")
}

// Action kinds.
const (
	ActionOffer   = "offer"
	ActionAlert   = "alert"
	ActionTask    = "task"
	ActionTag     = "tag"
	ActionUntag   = "untag"
	ActionSet     = "set"
	ActionWebhook = "webhook"
)

// ActionSpec is one action of a rule's do list.
type ActionSpec struct {
	Kind string
	Name string // offer, alert or task name
	// Approval makes the action wait as pending until approved, rejected or
	// Expires has passed. Only actions that leave Twinhub (offer, alert,
	// task, webhook) can require it.
	Approval bool
	Expires  time.Duration
	Tag      string // tag and untag
	Attr     int    // set: Schema.Attributes index
	URL      string // webhook
}

// Payload evaluates the action's templated payload.
func (a *ActionSpec) Payload(tv TwinVars, c *Cause, now int64) (map[string]any, error) {
	panic("schema: actions are not implemented yet")
}

// Value evaluates a set action's value, converted to the attribute's type.
func (a *ActionSpec) Value(tv TwinVars, c *Cause, now int64) (twinhub.Value, error) {
	panic("schema: actions are not implemented yet")
}

// Webhook is an HTTP endpoint that receives actions: those of the listed
// kinds and rules (empty lists match all).
type Webhook struct {
	Name   string
	URL    string
	Kinds  []string
	Rules  []string
	Secret string // the HMAC-SHA256 key; from secret_env when the schema names one
}
