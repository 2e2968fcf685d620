package twinhub

import "time"

// DeadLetter is a record that was rejected, kept with where it came from
// and why, so that it can be inspected and replayed once the mapping or the
// schema is fixed. Nothing rejected is ever silently dropped.
type DeadLetter struct {
	ID     uint64    `json:"id"`     // assigned by the store, increasing
	Time   time.Time `json:"time"`   // when the record was (last) rejected
	Source string    `json:"source"` // the source's name; "events" for POST /v1/events
	File   string    `json:"file"`   // the input's file name; empty for an unnamed upload
	Line   int       `json:"line"`   // where the record starts in its input, 1-based; 0 when unknown
	Record int       `json:"record"` // the record's ordinal in its input, 1-based
	Field  string    `json:"field,omitempty"`
	Reason string    `json:"reason"`
	// Raw is the record exactly as received.
	Raw []byte `json:"-"`
	// Header holds a CSV record's column names, which replay needs to map
	// Raw again.
	Header []string `json:"header,omitempty"`
	// Truncated says that Raw holds only the first bytes of a record longer
	// than the reader's limit; such a dead letter is never replayed, as the
	// cut-off bytes could read as a valid, wrong record.
	Truncated bool `json:"truncated,omitempty"`
	// Attempts counts the replays that failed again.
	Attempts int `json:"attempts,omitempty"`
}
