package twinhub

import "time"

// FieldType is the declared type of an event field or twin attribute.
type FieldType uint8

// Field types, as written in a schema.
const (
	TypeString FieldType = iota + 1
	TypeNumber
	TypeInteger
	TypeBool
	TypeTime
	TypeEnum
)

var typeNames = [...]string{TypeString: "string", TypeNumber: "number", TypeInteger: "integer", TypeBool: "bool", TypeTime: "time", TypeEnum: "enum"}

func (t FieldType) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "unknown"
}

// ParseFieldType returns the FieldType named s.
func ParseFieldType(s string) (FieldType, bool) {
	for i, n := range typeNames {
		if n != "" && n == s {
			return FieldType(i), true
		}
	}
	return 0, false
}

// Value is one typed field value. Numbers, integers, bools (0/1) and times
// live in Num; strings and enums in Str. Times are unix microseconds, which a
// float64 holds exactly (nanoseconds would not fit its 53-bit mantissa), so
// time-valued fields and aggregates keep microsecond precision. A zero Value
// with Set false means the field was absent. Null is set, with Set false,
// when the field was sent as an explicit null: it clears the attribute it
// feeds instead of leaving it alone.
type Value struct {
	Str  string
	Num  float64
	Type FieldType
	Set  bool
	Null bool
}

// Time returns a TypeTime value as a time.Time in UTC.
func (v Value) Time() time.Time { return time.UnixMicro(int64(v.Num)).UTC() }

// MicrosOf returns unix nanoseconds ns as the unix microseconds a time
// Value holds, rounding down.
func MicrosOf(ns int64) float64 { return float64(time.Unix(0, ns).UnixMicro()) }

// Any returns the value as a JSON-friendly Go value, nil when unset.
func (v Value) Any() any {
	if !v.Set {
		return nil
	}
	switch v.Type {
	case TypeString, TypeEnum:
		return v.Str
	case TypeInteger:
		return int64(v.Num)
	case TypeBool:
		return v.Num != 0
	case TypeTime:
		return v.Time().Format(time.RFC3339Nano)
	default:
		return v.Num
	}
}

// Event is one decoded, validated fact about one entity. Vals holds the event
// type's declared fields in the schema's slot order; Raw is the record exactly
// as received, which the archive keeps. An Event filled by a decoder may alias
// the decoder's buffers: it is valid until the decoder's next call unless the
// decoder says otherwise.
type Event struct {
	ID     string
	Type   int // index of the event type in the active schema
	Key    string
	Time   int64 // event time, unix nanoseconds
	Source string
	// Position orders changes of the same thing beyond their event time, such
	// as a database log position from change data capture; 0 when unknown.
	// Attributes keep the value with the greatest position (see engine).
	Position int64
	Vals     []Value
	Raw      []byte
}

// Status is the outcome of one ingested record.
type Status uint8

// Record outcomes.
const (
	Accepted Status = iota + 1
	Duplicate
	Rejected
)

func (s Status) String() string {
	switch s {
	case Accepted:
		return "accepted"
	case Duplicate:
		return "duplicate"
	case Rejected:
		return "rejected"
	}
	return "pending"
}

// Result is the outcome of one record of a batch: Index is its position in
// the batch (0-based), Field and Reason say why it was rejected.
type Result struct {
	Index  int    `json:"index"`
	ID     string `json:"id,omitempty"`
	Status Status `json:"-"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason,omitempty"`
}
