package agg

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

var benchSpecs = []Spec{
	{Name: "count", Kind: Count},
	{Name: "sum", Kind: Sum},
	{Name: "avg", Kind: Avg},
	{Name: "min", Kind: Min},
	{Name: "max", Kind: Max},
	{Name: "first", Kind: First},
	{Name: "last", Kind: Last},
	{Name: "distinct", Kind: Distinct},
	{Name: "topk", Kind: TopK},
	{Name: "ewma", Kind: EWMA},
	{Name: "time_since", Kind: TimeSince},
	{Name: "window_count_7d", Kind: Count, Window: 7 * 24 * time.Hour},
	{Name: "window_sum_30d", Kind: Sum, Window: 30 * 24 * time.Hour},
	{Name: "window_avg_90d", Kind: Avg, Window: 90 * 24 * time.Hour},
	{Name: "window_last_30d", Kind: Last, Window: 30 * 24 * time.Hour},
}

// benchEvents returns 1024 inputs: 300 distinct hashes, 10 strings (so
// top-k only increments once warm).
func benchEvents() []Input {
	r := newRand(1)
	strs := make([]string, 10)
	for i := range strs {
		strs[i] = fmt.Sprintf("category-%d", i)
	}
	in := make([]Input, 1024)
	for i := range in {
		in[i] = Input{Num: float64(r.IntN(10000)) / 100, Str: strs[r.IntN(len(strs))], Hash: uint64(r.IntN(300)) * 0x9e3779b97f4a7c15}
	}
	return in
}

// BenchmarkAdd feeds one aggregate an event every 10 minutes of event time,
// with the clock at the event (one in 16 arrives a day late).
func BenchmarkAdd(b *testing.B) {
	in := benchEvents()
	for _, sp := range benchSpecs {
		b.Run("kind="+sp.Name, func(b *testing.B) {
			l := mustLayout(b, sp)
			s := l.New()
			for i := range 4096 { // warm up: fill windows and sets
				t := t0 + int64(i)*int64(10*time.Minute)
				l.Add(&s, 0, t, t, in[i&1023])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				now := t0 + int64(4096+i)*int64(10*time.Minute)
				t := now
				if i&15 == 0 {
					t -= day
				}
				l.Add(&s, 0, t, now, in[i&1023])
			}
		})
	}
}

func BenchmarkValue(b *testing.B) {
	in := benchEvents()
	for _, sp := range benchSpecs {
		b.Run("kind="+sp.Name, func(b *testing.B) {
			l := mustLayout(b, sp)
			s := l.New()
			var now int64
			for i := range 2000 {
				now = t0 + int64(i)*int64(time.Hour)
				l.Add(&s, 0, now, now, in[i&1023])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				l.Value(&s, 0, now)
			}
		})
	}
}

// twinSpecs is a realistic retail schema: 15 aggregates, 4 windowed.
var twinSpecs = []Spec{
	{Name: "views", Kind: Count},                                      // 0 view
	{Name: "purchases", Kind: Count},                                  // 1 purchase
	{Name: "spend", Kind: Sum},                                        // 2
	{Name: "avg_order", Kind: Avg},                                    // 3
	{Name: "max_order", Kind: Max},                                    // 4
	{Name: "first_purchase", Kind: First, IsTime: true},               // 5
	{Name: "spend_30d", Kind: Sum, Window: 30 * 24 * time.Hour},       // 6
	{Name: "purchases_90d", Kind: Count, Window: 90 * 24 * time.Hour}, // 7
	{Name: "products", Kind: Distinct},                                // 8
	{Name: "top_categories", Kind: TopK, K: 3},                        // 9
	{Name: "days_since_purchase", Kind: TimeSince},                    // 10
	{Name: "spend_ewma", Kind: EWMA},                                  // 11
	{Name: "last_score", Kind: Last},                                  // 12 survey
	{Name: "score_90d", Kind: Avg, Window: 90 * 24 * time.Hour},       // 13
	{Name: "complaints_7d", Kind: Count, Window: 7 * 24 * time.Hour},  // 14 complaint
}

// buildTwin feeds one twin ~10 events over the 90 days before end, in time
// order with the clock at each event, then expires it at end: 6 views, on
// average 1 purchase (0-4), 0.5 surveys and 0.4 complaints.
func buildTwin(l *Layout, r interface {
	Int64N(int64) int64
	IntN(int) int
	Float64() float64
}, end int64, cats []string) State {
	type e struct {
		t    int64
		kind int
	}
	var evs []e
	add := func(kind, n int) {
		for range n {
			evs = append(evs, e{end - 1 - r.Int64N(90*day), kind})
		}
	}
	add(0, 6)
	purchases := 0
	for range 4 {
		if r.IntN(4) == 0 {
			purchases++
		}
	}
	add(1, purchases)
	if r.IntN(2) == 0 {
		add(2, 1)
	}
	if r.IntN(5) < 2 {
		add(3, 1)
	}
	for i := 1; i < len(evs); i++ { // insertion sort: few events
		for j := i; j > 0 && evs[j].t < evs[j-1].t; j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
	s := l.New()
	for _, x := range evs {
		switch x.kind {
		case 0:
			l.Add(&s, 0, x.t, x.t, Input{})
		case 1:
			amount := float64(r.IntN(20000)) / 100
			in := Input{Num: amount, Str: cats[r.IntN(len(cats))], Hash: uint64(r.IntN(5000))}
			for _, i := range []int{1, 2, 3, 4, 6, 7, 8, 9, 10, 11} {
				l.Add(&s, i, x.t, x.t, in)
			}
			l.Add(&s, 5, x.t, x.t, Input{Num: float64(x.t)})
		case 2:
			in := Input{Num: float64(1 + r.IntN(5))}
			l.Add(&s, 12, x.t, x.t, in)
			l.Add(&s, 13, x.t, x.t, in)
		case 3:
			l.Add(&s, 14, x.t, x.t, Input{})
		}
	}
	l.Expire(&s, end)
	return s
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkTwinBytes builds 100k twins of twinSpecs and reports the memory
// they hold: B/twin is Layout.Bytes (slice arrays and top-k strings),
// heap-B/twin the runtime's count including the 96-byte State header (the
// category strings are shared, as an interning engine would hold them),
// decoded-heap-B/twin the same for states read back with DecodeState (which
// copies every string), and enc-B/twin the encoded size. The timed loop
// measures Bytes.
func BenchmarkTwinBytes(b *testing.B) {
	const twins = 100_000
	l := mustLayout(b, twinSpecs...)
	cats := make([]string, 20)
	for i := range cats {
		cats[i] = fmt.Sprintf("category-%02d", i)
	}
	r := newRand(42)
	end := t0 + 200*day

	before := heapAlloc()
	states := make([]State, twins)
	for i := range states {
		states[i] = buildTwin(l, r, end, cats)
	}
	built := heapAlloc() - before

	var enc []byte
	for i := range states {
		enc = l.AppendState(enc, &states[i])
	}
	before = heapAlloc()
	decoded := make([]State, twins)
	src := enc
	for i := range decoded {
		var err error
		decoded[i], src, err = l.DecodeState(src)
		if err != nil {
			b.Fatal(err)
		}
	}
	dec := heapAlloc() - before

	total := 0
	for i := range states {
		total += l.Bytes(&states[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := range b.N {
		n += l.Bytes(&states[i%twins])
	}
	b.StopTimer()
	// After the loop: ResetTimer discards reported metrics.
	b.ReportMetric(float64(total)/twins, "B/twin")
	b.ReportMetric(float64(built)/twins, "heap-B/twin")
	b.ReportMetric(float64(dec)/twins, "decoded-heap-B/twin")
	b.ReportMetric(float64(len(enc))/twins, "enc-B/twin")
	runtime.KeepAlive(states)
	runtime.KeepAlive(decoded)
	runtime.KeepAlive(enc)
}
