package agg

import (
	"time"
)

// Kind is an aggregate kind.
type Kind uint8

// Aggregate kinds, as named in a schema.
const (
	Count Kind = iota + 1
	Sum
	Min
	Max
	Avg
	First
	Last
	Distinct
	TopK
	EWMA
	TimeSince
)

var kindNames = [...]string{Count: "count", Sum: "sum", Min: "min", Max: "max", Avg: "avg", First: "first",
	Last: "last", Distinct: "distinct", TopK: "topk", EWMA: "ewma", TimeSince: "time_since"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "unknown"
}

// ParseKind returns the Kind named s ("count", "sum", ..., "time_since").
func ParseKind(s string) (Kind, bool) {
	for i, n := range kindNames {
		if n != "" && n == s {
			return Kind(i), true
		}
	}
	return 0, false
}

// Kinds lists every kind name, for error hints.
func Kinds() []string {
	out := make([]string, 0, len(kindNames))
	for _, n := range kindNames {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// Windowable reports whether kind k accepts a window.
func (k Kind) Windowable() bool {
	switch k {
	case Count, Sum, Min, Max, Avg, Last:
		return true
	}
	return false
}

// NeedsValue reports whether kind k reads a field value (count and
// time_since only need the event to happen).
func (k Kind) NeedsValue() bool { return k != Count && k != TimeSince }

// Spec declares one aggregate. The zero values of the optional fields mean:
// no window, DefaultBucket(Window), K=3, HalfLife=7 days, Unit=24 hours.
type Spec struct {
	Name     string
	Kind     Kind
	Window   time.Duration // 0: all time
	Bucket   time.Duration // bucket width of a windowed aggregate
	K        int           // top-k size
	HalfLife time.Duration // EWMA half-life
	Unit     time.Duration // time_since unit; Value returns (now - last) / Unit
	// IsTime says the input value is a time (unix µs), so min, max, first and
	// last return time.Time rather than a number.
	IsTime bool
}

// DefaultBucket returns the default bucket width for a window: a thirtieth
// of the window, at least one minute, rounded down to a whole minute.
func DefaultBucket(window time.Duration) time.Duration {
	b := (window / 30).Truncate(time.Minute)
	if b < time.Minute {
		b = time.Minute
	}
	return b
}

// MaxExactDistinct is how many distinct values a twin's distinct aggregate
// counts exactly before it switches to a HyperLogLog sketch (~1.6% error).
const MaxExactDistinct = 4096

// TopCapacity returns how many counters a top-k aggregate keeps per twin.
// Sixty-four counters keep category-like values (tens of distinct values)
// exact; beyond capacity the space-saving bounds apply.
func TopCapacity(k int) int { return max(16*k, 64) }

// Input is one value fed to an aggregate. Num carries numbers, bools (0/1)
// and times (unix ns); Str carries strings for top-k; Hash is the value's
// 64-bit hash for distinct (the caller computes it once).
type Input struct {
	Num  float64
	Str  string
	Hash uint64
}

// Cell is one bucket of one windowed aggregate.
type Cell struct {
	Val    float64 // sum, or min/max, or last value
	Aux    int64   // for last: the value's event time; unused otherwise
	N      uint32  // events in the bucket
	Bucket int32   // floor(time / bucket width)
	Agg    uint16  // index of the aggregate in the Layout
}

// TopEntry is one counted value of a top-k aggregate.
type TopEntry struct {
	Value string `json:"value"`
	Count uint32 `json:"count"`
	Err   uint32 `json:"-"` // space-saving overestimate bound
}

// State is the aggregate state of one twin. Its zero value is not usable:
// get one from Layout.New. A State is not safe for concurrent use.
type State struct {
	Num  []float64
	Win  []Cell
	Sets [][]uint64
	Tops [][]TopEntry
}
