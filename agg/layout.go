package agg

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/twinhub/twinhub"
)

// Limits checked by NewLayout.
const (
	// MinBucket is the narrowest bucket a windowed aggregate may use; it
	// keeps bucket numbers (Cell.Bucket, an int32) in range for any event
	// time within a few thousand years of 1970.
	MinBucket = time.Minute
	// MaxK bounds a top-k aggregate's K, so one twin holds at most
	// TopCapacity(MaxK) counters per top-k aggregate.
	MaxK = 1000
	// MaxAggregates is how many aggregates a Layout can hold (Cell.Agg is a
	// uint16).
	MaxAggregates = math.MaxUint16 + 1
)

// Defaults NewLayout fills into a Spec whose field is zero.
const (
	DefaultK        = 3
	DefaultHalfLife = 7 * 24 * time.Hour
	DefaultUnit     = 24 * time.Hour
)

// Sentinels held in time slots (an int64 stored in a float64 slot's bits)
// while an aggregate has no data. Event times must lie strictly between them.
const (
	noTimeMin = math.MinInt64 // last, time_since: no event yet
	noTimeMax = math.MaxInt64 // first: no event yet
)

// info is an aggregate compiled for the hot path.
type info struct {
	kind     Kind
	isTime   bool
	off      int32   // first State.Num slot, or index in State.Sets or State.Tops
	capacity int32   // top-k counters per twin
	k        int32   // top-k entries returned
	bucket   int64   // bucket width in ns; 0 for an all-time aggregate
	nb       int64   // buckets per window
	halfLife float64 // EWMA half-life in ns
	unit     float64 // time_since unit in ns
}

// Slot encodings in State.Num.
const (
	slotFloat = iota // a float64
	slotTime         // an int64 (unix ns) in the float64's bits
)

// A Layout places a schema's aggregates in a twin's State and evaluates them.
// It is immutable after NewLayout and safe for concurrent use; the States it
// works on are not.
type Layout struct {
	specs []Spec
	aggs  []info
	init  []float64 // State.Num of a new State
	enc   []uint8   // slotFloat or slotTime, per State.Num slot
	nSets int
	nTops int
	// topAggs[j] is the aggregate whose counters are State.Tops[j].
	topAggs []int
}

// NewLayout validates specs, fills in their defaults and assigns every
// aggregate its slots. Aggregate i of the Layout is specs[i]. Errors are
// twinhub.EINVALID and name the aggregate (by Name, or #index) at fault.
func NewLayout(specs []Spec) (*Layout, error) {
	if len(specs) > MaxAggregates {
		return nil, twinhub.Errorf(twinhub.EINVALID, "%d aggregates, at most %d allowed", len(specs), MaxAggregates)
	}
	l := &Layout{specs: make([]Spec, len(specs)), aggs: make([]info, len(specs))}
	for i, sp := range specs {
		bad := func(format string, args ...any) error {
			name := strconv.Quote(sp.Name)
			if sp.Name == "" {
				name = "#" + strconv.Itoa(i)
			}
			return twinhub.Errorf(twinhub.EINVALID, "aggregate %s: %s", name, fmt.Sprintf(format, args...))
		}
		if sp.Kind < Count || sp.Kind > TimeSince {
			return nil, bad("unknown kind %d, want one of %v", sp.Kind, Kinds())
		}
		switch {
		case sp.Window < 0:
			return nil, bad("window %v is negative", sp.Window)
		case sp.Window > 0 && !sp.Kind.Windowable():
			return nil, bad("kind %s takes no window (only count, sum, min, max, avg and last do)", sp.Kind)
		case sp.Window == 0 && sp.Bucket != 0:
			return nil, bad("bucket %v set without a window", sp.Bucket)
		case sp.K < 0:
			return nil, bad("k %d is negative", sp.K)
		case sp.K > MaxK:
			return nil, bad("k %d is above the maximum %d", sp.K, MaxK)
		case sp.HalfLife < 0:
			return nil, bad("half-life %v is negative", sp.HalfLife)
		case sp.Unit < 0:
			return nil, bad("unit %v is negative", sp.Unit)
		}
		if sp.Window > 0 {
			if sp.Bucket == 0 {
				sp.Bucket = DefaultBucket(sp.Window)
			}
			switch {
			case sp.Bucket < 0:
				return nil, bad("bucket %v is negative", sp.Bucket)
			case sp.Bucket < MinBucket:
				return nil, bad("bucket %v is shorter than the minimum %v", sp.Bucket, MinBucket)
			case sp.Bucket > sp.Window:
				return nil, bad("bucket %v is longer than the window %v", sp.Bucket, sp.Window)
			case sp.Window%sp.Bucket != 0:
				return nil, bad("window %v is not a whole number of buckets of %v", sp.Window, sp.Bucket)
			}
		}
		if sp.K == 0 {
			sp.K = DefaultK
		}
		if sp.HalfLife == 0 {
			sp.HalfLife = DefaultHalfLife
		}
		if sp.Unit == 0 {
			sp.Unit = DefaultUnit
		}
		l.specs[i] = sp

		a := info{kind: sp.Kind, isTime: sp.IsTime, halfLife: float64(sp.HalfLife), unit: float64(sp.Unit)}
		if sp.Window > 0 {
			a.bucket = int64(sp.Bucket)
			a.nb = int64(sp.Window / sp.Bucket)
			l.aggs[i] = a
			continue // windowed aggregates live in State.Win only
		}
		a.off = int32(len(l.init))
		switch sp.Kind {
		case Count, Sum:
			l.slots(slotFloat, 0)
		case Avg:
			l.slots(slotFloat, 0) // sum
			l.slots(slotFloat, 0) // n
		case Min, Max:
			l.slots(slotFloat, math.NaN()) // NaN: no data
		case First:
			l.slots(slotFloat, 0)
			l.slots(slotTime, timeBits(noTimeMax))
		case Last:
			l.slots(slotFloat, 0)
			l.slots(slotTime, timeBits(noTimeMin))
		case EWMA:
			l.slots(slotFloat, 0) // S: weighted sum
			l.slots(slotFloat, 0) // W: total weight; 0: no data
			l.slots(slotTime, 0)  // T: reference time
		case TimeSince:
			l.slots(slotTime, timeBits(noTimeMin))
		case Distinct:
			a.off = int32(l.nSets)
			l.nSets++
		case TopK:
			a.off = int32(l.nTops)
			a.k = int32(sp.K)
			a.capacity = int32(TopCapacity(sp.K))
			l.nTops++
			l.topAggs = append(l.topAggs, i)
		}
		l.aggs[i] = a
	}
	return l, nil
}

func (l *Layout) slots(enc uint8, init float64) {
	l.init = append(l.init, init)
	l.enc = append(l.enc, enc)
}

// Len returns the number of aggregates.
func (l *Layout) Len() int { return len(l.specs) }

// Spec returns aggregate i's Spec with its defaults filled in.
func (l *Layout) Spec(i int) Spec { return l.specs[i] }

// Kind returns aggregate i's kind without copying its Spec (hot path).
func (l *Layout) Kind(i int) Kind { return l.specs[i].Kind }

// New returns the State of a twin that has seen no events.
func (l *Layout) New() State {
	var s State
	if len(l.init) > 0 {
		s.Num = slices.Clone(l.init)
	}
	if l.nSets > 0 {
		s.Sets = make([][]uint64, l.nSets)
	}
	if l.nTops > 0 {
		s.Tops = make([][]TopEntry, l.nTops)
	}
	return s
}

// Add feeds one event at event time t (unix ns) to aggregate i; now (unix
// ns) is the engine's clock. Events may arrive in any order and end in the
// same state (up to floating-point rounding of sums and EWMA), except for
// first and last on equal times (first keeps the earlier arrival, last takes
// the later one) and top-k beyond TopCapacity(K) values.
//
// A windowed aggregate ignores an event whose bucket is already out of the
// window at now, and Add drops aggregate i's cells that are: with a clock
// that never goes back this loses nothing a later Value could count. Kinds
// that read in.Num ignore a NaN. Add keeps in.Str for top-k; the caller must
// not modify it. It allocates only to grow a slice: a new window bucket, a
// new distinct or top-k value, or the switch to a HyperLogLog.
func (l *Layout) Add(s *State, i int, t, now int64, in Input) {
	a := &l.aggs[i]
	if a.bucket != 0 {
		l.addWindow(s, i, a, t, now, in)
		return
	}
	v := in.Num
	o := int(a.off)
	switch a.kind {
	case Count:
		s.Num[o]++
	case Sum:
		if v == v {
			s.Num[o] += v
		}
	case Avg:
		if v == v {
			s.Num[o] += v
			s.Num[o+1]++
		}
	case Min:
		if v == v && !(v >= s.Num[o]) { // true too while the slot is NaN
			s.Num[o] = v
		}
	case Max:
		if v == v && !(v <= s.Num[o]) {
			s.Num[o] = v
		}
	case First:
		if v == v && t < timeOf(s.Num[o+1]) {
			s.Num[o], s.Num[o+1] = v, timeBits(t)
		}
	case Last:
		if v == v && t >= timeOf(s.Num[o+1]) {
			s.Num[o], s.Num[o+1] = v, timeBits(t)
		}
	case EWMA:
		if v != v {
			return
		}
		S, W, T := s.Num[o], s.Num[o+1], timeOf(s.Num[o+2])
		switch {
		case W == 0: // W >= 1 once an event arrived: the newest has weight 1
			S, W, T = v, 1, t
		case t > T:
			f := math.Exp2(-float64(t-T) / a.halfLife)
			S, W, T = S*f+v, W*f+1, t
		default:
			w := math.Exp2(-float64(T-t) / a.halfLife)
			S, W = S+v*w, W+w
		}
		s.Num[o], s.Num[o+1], s.Num[o+2] = S, W, timeBits(T)
	case TimeSince:
		if t > timeOf(s.Num[o]) {
			s.Num[o] = timeBits(t)
		}
	case Distinct:
		addDistinct(&s.Sets[o], in.Hash)
	case TopK:
		addTop(&s.Tops[o], in.Str, int(a.capacity))
	}
}

// Value evaluates aggregate i at time now. It returns int64 for count and
// distinct; float64 for sum, avg, min, max, first, last, ewma and
// time_since (in Units since the last event, never negative); time.Time (UTC)
// for min, max, first and last of a Spec with IsTime; and a new []TopEntry
// for top-k, most frequent first, ties by value, at most K entries. With no
// data count, sum and distinct return 0, top-k an empty slice, and every
// other kind nil. A windowed aggregate counts only the buckets in its window
// at now.
func (l *Layout) Value(s *State, i int, now int64) any {
	a := &l.aggs[i]
	if a.kind == TopK {
		return topValue(s.Tops[a.off], int(a.k))
	}
	v, ok := l.Num(s, i, now)
	switch {
	case !ok:
		return nil
	case a.kind == Count || a.kind == Distinct:
		return int64(v)
	case a.isTime && (a.kind == Min || a.kind == Max || a.kind == First || a.kind == Last):
		return time.UnixMicro(int64(v)).UTC() // time values are unix µs (see twinhub.Value)
	}
	return v
}

// Num evaluates scalar aggregate i (any kind but top-k) at now without
// allocating: Value's number, with times as unix microseconds. ok is false
// where Value returns nil, and for top-k.
func (l *Layout) Num(s *State, i int, now int64) (v float64, ok bool) {
	a := &l.aggs[i]
	if a.bucket != 0 {
		return l.windowNum(s, i, a, now)
	}
	o := int(a.off)
	switch a.kind {
	case Count, Sum:
		return s.Num[o], true
	case Avg, EWMA:
		if s.Num[o+1] == 0 {
			return 0, false
		}
		return s.Num[o] / s.Num[o+1], true
	case Min, Max:
		v := s.Num[o]
		return v, v == v
	case First:
		return s.Num[o], timeOf(s.Num[o+1]) != noTimeMax
	case Last:
		return s.Num[o], timeOf(s.Num[o+1]) != noTimeMin
	case TimeSince:
		t := timeOf(s.Num[o])
		if t == noTimeMin {
			return 0, false
		}
		if t >= now {
			return 0, true
		}
		return float64(now-t) / a.unit, true
	case Distinct:
		return float64(distinctCount(s.Sets[o])), true
	}
	return 0, false
}

// Bytes estimates the heap bytes held by s: the backing arrays of its slices,
// rounded up to the allocator's size classes. Top-k value strings and the
// State struct itself are not included.
func (l *Layout) Bytes(s *State) int {
	n := allocSize(cap(s.Num)*8) + allocSize(cap(s.Win)*cellSize)
	n += allocSize(cap(s.Sets) * sliceSize)
	for _, set := range s.Sets {
		n += allocSize(cap(set) * 8)
	}
	n += allocSize(cap(s.Tops) * sliceSize)
	for _, top := range s.Tops {
		n += allocSize(cap(top) * topEntrySize)
	}
	// Top-k value strings are not counted: callers intern them (the engine
	// shares one copy per shard), so they are not per-twin memory.
	return n
}

const (
	cellSize     = 32 // unsafe.Sizeof(Cell{})
	sliceSize    = 24 // a slice header
	topEntrySize = 24 // unsafe.Sizeof(TopEntry{})
)

// sizeClasses are the Go allocator's small size classes
// (internal/runtime/gc.SizeClassToSize).
var sizeClasses = [...]uint16{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240,
	256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536,
	1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728,
	10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768}

// allocSize returns the bytes the allocator reserves for an n-byte object.
func allocSize(n int) int {
	if n == 0 {
		return 0
	}
	if n > 32768 {
		const page = 8192
		return (n + page - 1) / page * page
	}
	j, _ := slices.BinarySearch(sizeClasses[:], uint16(n))
	return int(sizeClasses[j])
}

func timeBits(t int64) float64 { return math.Float64frombits(uint64(t)) }
func timeOf(f float64) int64   { return int64(math.Float64bits(f)) }
