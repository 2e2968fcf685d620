package twinhub

import "time"

// DeliveryStatus is where a webhook delivery is in its life.
type DeliveryStatus string

// Delivery statuses. A delivery is Pending until its target answers an
// attempt with a 2xx status (Delivered) or it has used up its attempts
// (Dead). A dead delivery goes back to Pending when retried by hand.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryDead      DeliveryStatus = "dead"
)

// DeliveryStatuses lists every status, for validation of filters.
var DeliveryStatuses = []DeliveryStatus{DeliveryPending, DeliveryDelivered, DeliveryDead}

// Delivery is the record of sending one action to one webhook target: what,
// where, and every attempt made. Its ID is what receivers see in the
// Twinhub-Delivery header; the action's Key is the Idempotency-Key, the same
// on every attempt.
type Delivery struct {
	ID        uint64 `json:"id"`
	ActionID  uint64 `json:"action_id"`
	ActionKey string `json:"action_key"`
	// Webhook names the target: a webhook of the schema, or "action" for
	// the URL of a webhook action itself.
	Webhook  string         `json:"webhook"`
	URL      string         `json:"url"`
	Status   DeliveryStatus `json:"status"`
	Attempts int            `json:"attempts"` // since it was created or last retried by hand
	// NextAttempt is when a pending delivery is tried next.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastStatus  int       `json:"last_status,omitempty"` // HTTP status of the last answer, 0 when there was none
	Created     time.Time `json:"created"`
	Delivered   time.Time `json:"delivered,omitzero"`
	// Log lists every attempt, oldest first, also those before a retry by
	// hand.
	Log []Attempt `json:"log"`
}

// Attempt is one try to deliver: when, the HTTP status answered (0 when
// none was: a network error or a timeout), why it failed and how long it
// took.
type Attempt struct {
	At       time.Time     `json:"at"`
	Status   int           `json:"status,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}
