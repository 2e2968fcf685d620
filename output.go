package twinhub

import "time"

// OutputKind names what an Output reports. The stream's kind filter uses
// these names.
type OutputKind string

// Output kinds.
const (
	// TwinChanged reports that an event was applied to a twin. It is live
	// only: sent to connected subscribers that ask for it, never logged.
	TwinChanged OutputKind = "twin.changed"
	// SegmentEntered and SegmentLeft report a twin's membership change.
	SegmentEntered OutputKind = "segment.entered"
	SegmentLeft    OutputKind = "segment.left"
	// ActionFired reports a new action (Output.Action holds it).
	ActionFired OutputKind = "action"
	// ActionUpdated reports an action's status change: approved, rejected
	// or expired (Output.Action holds it as it now is).
	ActionUpdated OutputKind = "action.updated"
)

// OutputKinds lists every kind, for validation of filters.
var OutputKinds = []OutputKind{TwinChanged, SegmentEntered, SegmentLeft, ActionFired, ActionUpdated}

// Output is one entry of the engine's output stream: something that happened
// to a twin because of an event or the passing of time. Every kind but
// TwinChanged is logged durably before it is published; ID orders the log
// and is what a stream client resumes from (Last-Event-ID).
type Output struct {
	ID       uint64     `json:"id,omitempty"` // stream position, increasing; 0 for TwinChanged
	Kind     OutputKind `json:"kind"`
	Time     time.Time  `json:"time"` // the engine's clock when it happened
	Twin     string     `json:"twin"`
	Revision uint64     `json:"revision"` // the twin's revision after the change
	// Event and EventType name the event that caused it; both are empty for
	// a change that time alone caused (a window emptied).
	Event     string  `json:"event,omitempty"`
	EventType string  `json:"event_type,omitempty"`
	Segment   string  `json:"segment,omitempty"` // for segment entries and exits
	Rule      string  `json:"rule,omitempty"`    // for actions
	Action    *Action `json:"action,omitempty"`
}

// ActionStatus is where an action is in its life.
type ActionStatus string

// Action statuses. An action without approval is Fired at once; one that
// needs approval is Pending until someone approves or rejects it, or it
// expires.
const (
	ActionFiredStatus ActionStatus = "fired"
	ActionPending     ActionStatus = "pending"
	ActionApproved    ActionStatus = "approved"
	ActionRejected    ActionStatus = "rejected"
	ActionExpired     ActionStatus = "expired"
)

// Deliverable reports whether an action in status s goes out to webhooks.
func (s ActionStatus) Deliverable() bool { return s == ActionFiredStatus || s == ActionApproved }

// Action is what a rule decided to do for one twin, with the receipt of
// that decision. Kind is one of offer, alert, task, tag, untag, set,
// webhook.
type Action struct {
	ID uint64 `json:"id"` // the stream position of its ActionFired output
	// Key is the idempotency key: the same decision always has the same key,
	// also when a restart re-derives it; webhook receivers deduplicate on it.
	Key      string         `json:"key"`
	Kind     string         `json:"kind"`
	Name     string         `json:"name,omitempty"` // the offer, alert or task name
	Rule     string         `json:"rule"`
	Twin     string         `json:"twin"`
	Revision uint64         `json:"revision"`
	Time     time.Time      `json:"time"`
	Payload  map[string]any `json:"payload,omitempty"`
	Status   ActionStatus   `json:"status"`
	// Expires is when a pending action expires; zero otherwise.
	Expires  time.Time `json:"expires,omitzero"`
	Decision *Decision `json:"decision,omitempty"`
	// URL is the target of a webhook action.
	URL     string  `json:"url,omitempty"`
	Receipt Receipt `json:"receipt"`
}

// Receipt records why an action was decided: what was evaluated, under which
// schema, and the values the rule's condition read.
type Receipt struct {
	SchemaVersion int       `json:"schema_version"`
	Rule          string    `json:"rule"`
	When          string    `json:"when,omitempty"`
	Trigger       string    `json:"trigger"` // event type, or "enter:SEGMENT" / "exit:SEGMENT"
	Event         string    `json:"event,omitempty"`
	Twin          string    `json:"twin"`
	Revision      uint64    `json:"revision"`
	Time          time.Time `json:"time"`
	// Reads are the twin and event values the condition refers to, as they
	// were when it held; a value that was not set is null.
	Reads map[string]any `json:"reads,omitempty"`
}

// Decision is who approved or rejected a pending action, and when.
type Decision struct {
	By   string    `json:"by"`
	At   time.Time `json:"at"`
	Note string    `json:"note,omitempty"`
}
