package schema

import (
	"fmt"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

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
	// reads a windowed or time_since aggregate, or now (days_since does), or
	// twin.segments while another segment is time dependent.
	TimeDependent bool
	// OnEnter and OnExit are the rules triggered by entering and leaving,
	// indexes into Schema.Rules in firing order.
	OnEnter, OnExit []int

	cond *program
	deps deps
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

	cond    *program
	deps    deps
	reads   []string     // receipt names of deps.twin then deps.event: twin.X, event.Y
	onTypes []*EventType // the event types in On
	onEnter []*Segment   // the segments of enter: triggers
	onExit  []*Segment   // the segments of exit: triggers
}

// Holds reports whether the rule's condition holds for twin tv at now (unix
// ns) for cause c. An evaluation error is false, and so is a cause the
// condition was not compiled for (an event type not in on); a rule without
// when always holds.
func (r *Rule) Holds(tv TwinVars, c *Cause, now int64) bool {
	if r.When == "" {
		return true
	}
	return r.cond != nil && r.cond.holds(tv, c, now)
}

// Reads returns the values the condition refers to (twin.X and event.Y, by
// those names), for an action's receipt; unset values are nil. Values are
// JSON-friendly: numbers, strings, bools, RFC 3339 times and []string. It
// allocates, so the engine calls it only when a rule fires.
func (r *Rule) Reads(tv TwinVars, c *Cause, now int64) map[string]any {
	if r.cond == nil {
		return nil
	}
	out := make(map[string]any, len(r.reads))
	twin := &twinVal{obj: r.cond.rt.twin, tv: tv, now: now}
	for i, name := range r.deps.twin {
		out[r.reads[i]] = readField(twin.obj, twin, name)
	}
	if len(r.deps.event) == 0 {
		return out
	}
	var (
		obj    *celObject
		target any
	)
	switch _, _, kind := r.cond.pick(c); {
	case kind == eventChange:
		obj, target = r.cond.rt.change, &changeVal{obj: r.cond.rt.change, c: c, now: now}
	case kind == eventTyped && c.Type != nil && c.Type.obj != nil && c.Event != nil:
		obj, target = c.Type.obj, &eventVal{t: c.Type, ev: c.Event}
	}
	for i, name := range r.deps.event {
		var v any
		if obj != nil {
			v = readField(obj, target, name)
		}
		out[r.reads[len(r.deps.twin)+i]] = v
	}
	return out
}

// readField reads field name of target, an object of type obj, as a JSON
// value; nil when it is not set or cannot be read.
func readField(obj *celObject, target any, name string) any {
	ft, ok := obj.fields[name]
	if !ok || !ft.IsSet(target) {
		return nil
	}
	v, err := ft.GetFrom(target)
	if err != nil {
		return nil
	}
	if l, ok := v.(traits.Lister); ok && ft.Type.IsExactType(types.NewListType(types.StringType)) {
		return stringList(l)
	}
	j, err := jsonValue(v.(ref.Val))
	if err != nil {
		return nil
	}
	return j
}

// stringList is a CEL list of strings as a []string.
func stringList(l traits.Lister) []string {
	n, _ := l.Size().(types.Int)
	out := make([]string, 0, int(n))
	for i := types.Int(0); i < n; i++ {
		if s, ok := l.Get(i).(types.String); ok {
			out = append(out, string(s))
		}
	}
	return out
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

// DefaultExpires is how long a pending action waits for approval when its
// rule does not say.
const DefaultExpires = 72 * time.Hour

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

	path    string        // where it is in the document, for errors
	payload *tmpl         // nil when there is none
	value   *tmpl         // set: a template, or nil for a literal
	lit     twinhub.Value // set: the literal value
	attr    *Attribute    // set: the attribute
	enum    []string      // set: the values an enum attribute may take
}

// Payload evaluates the action's templated payload for twin tv, cause c and
// now (unix ns): a new map the caller owns, nil when the action has none.
// An expression that fails (one that reads an unset attribute) is an error
// naming its place in the schema.
func (a *ActionSpec) Payload(tv TwinVars, c *Cause, now int64) (map[string]any, error) {
	if a.payload == nil {
		return nil, nil
	}
	v, err := a.payload.eval(tv, c, now)
	if err != nil {
		return nil, err // it names the template's place, rules.NAME.do[i].payload...
	}
	m, _ := v.(map[string]any)
	return m, nil
}

// Value evaluates a set action's value, converted to the attribute's type
// (times as unix microseconds in Num).
func (a *ActionSpec) Value(tv TwinVars, c *Cause, now int64) (twinhub.Value, error) {
	if a.Kind != ActionSet || a.attr == nil {
		return twinhub.Value{}, fmt.Errorf("%s: a %s action has no value", a.path, a.Kind)
	}
	if a.value == nil {
		return a.lit, nil
	}
	var out twinhub.Value
	var err error
	if a.value.kind == tmplExpr {
		err = a.value.expr.eval(tv, c, now, func(v ref.Val) error {
			out, err = attrValue(a.attr, a.enum, v)
			return err
		})
	} else {
		var s any
		if s, err = a.value.eval(tv, c, now); err == nil {
			out, err = attrValue(a.attr, a.enum, types.String(s.(string)))
		}
	}
	if err != nil {
		return twinhub.Value{}, fmt.Errorf("%s: %w", a.value.path, err)
	}
	return out, nil
}

// Webhook is an HTTP endpoint that receives actions: those of the listed
// kinds and rules (empty lists match all).
type Webhook struct {
	Name        string
	Description string
	URL         string
	Kinds       []string
	Rules       []string
	Secret      string // the HMAC-SHA256 key; from secret_env when the schema names one
}
