package agg

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x7477696e)) }

// allKinds has every kind, windowed and not.
var allKinds = []Spec{
	{Name: "count", Kind: Count},
	{Name: "sum", Kind: Sum},
	{Name: "avg", Kind: Avg},
	{Name: "min", Kind: Min},
	{Name: "max", Kind: Max},
	{Name: "first", Kind: First},
	{Name: "last", Kind: Last},
	{Name: "distinct", Kind: Distinct},
	{Name: "topk", Kind: TopK, K: 3},
	{Name: "ewma", Kind: EWMA, HalfLife: 48 * time.Hour},
	{Name: "time_since", Kind: TimeSince},
	{Name: "count_7d", Kind: Count, Window: 7 * 24 * time.Hour},
	{Name: "sum_30d", Kind: Sum, Window: 30 * 24 * time.Hour},
	{Name: "avg_90d", Kind: Avg, Window: 90 * 24 * time.Hour},
	{Name: "min_1h", Kind: Min, Window: time.Hour, Bucket: time.Minute},
	{Name: "max_7d_1bucket", Kind: Max, Window: 7 * 24 * time.Hour, Bucket: 7 * 24 * time.Hour},
	{Name: "last_30d", Kind: Last, Window: 30 * 24 * time.Hour},
	{Name: "first_time", Kind: First, IsTime: true},
	{Name: "max_time_30d", Kind: Max, Window: 30 * 24 * time.Hour, IsTime: true},
	{Name: "distinct_2", Kind: Distinct},
	{Name: "topk_1", Kind: TopK, K: 1},
}

// reference computes aggregate sp over events (in arrival order) at now the
// obvious way, applying doc.go's window rule to every event.
func reference(sp Spec, events []ev, now int64) any {
	var in []ev
	for _, e := range events {
		if sp.Window > 0 {
			b := int64(sp.Bucket)
			if floorDiv(e.t, b) <= floorDiv(now, b)-int64(sp.Window/sp.Bucket) {
				continue
			}
		}
		in = append(in, e)
	}
	val := func(v float64) any {
		if sp.IsTime {
			return time.UnixMicro(int64(v)).UTC()
		}
		return v
	}
	switch sp.Kind {
	case Count:
		return int64(len(in))
	case Sum:
		s := 0.0
		for _, e := range in {
			s += e.num
		}
		return s
	case Avg:
		if len(in) == 0 {
			return nil
		}
		s := 0.0
		for _, e := range in {
			s += e.num
		}
		return s / float64(len(in))
	case Min, Max:
		if len(in) == 0 {
			return nil
		}
		m := in[0].num
		for _, e := range in {
			if sp.Kind == Min {
				m = min(m, e.num)
			} else {
				m = max(m, e.num)
			}
		}
		return val(m)
	case First, Last:
		if len(in) == 0 {
			return nil
		}
		best := in[0]
		for _, e := range in[1:] {
			if sp.Kind == First && e.t < best.t || sp.Kind == Last && e.t >= best.t {
				best = e
			}
		}
		return val(best.num)
	case Distinct:
		seen := map[uint64]bool{}
		for _, e := range in {
			seen[e.h] = true
		}
		return int64(len(seen))
	case TopK:
		counts := map[string]uint32{}
		for _, e := range in {
			counts[e.str]++
		}
		out := []TopEntry{}
		for v, c := range counts {
			out = append(out, TopEntry{Value: v, Count: c})
		}
		slices.SortFunc(out, func(a, b TopEntry) int {
			if c := cmp.Compare(b.Count, a.Count); c != 0 {
				return c
			}
			return cmp.Compare(a.Value, b.Value)
		})
		return out[:min(sp.K, len(out))]
	case EWMA:
		if len(in) == 0 {
			return nil
		}
		T := in[0].t
		for _, e := range in {
			T = max(T, e.t)
		}
		s, w := 0.0, 0.0
		for _, e := range in {
			x := math.Pow(2, -float64(T-e.t)/float64(sp.HalfLife))
			s += e.num * x
			w += x
		}
		return s / w
	case TimeSince:
		if len(in) == 0 {
			return nil
		}
		T := in[0].t
		for _, e := range in {
			T = max(T, e.t)
		}
		return max(0, float64(now-T)/float64(sp.Unit))
	}
	panic("unknown kind")
}

// randomEvents returns n events over [t0, t0+span) with distinct times,
// values from a few integers and arbitrary floats, strings from 12 values
// (below TopCapacity(1)) and hashes from distinctPool values.
func randomEvents(r *rand.Rand, n int, span int64, distinctPool int) []ev {
	hashes := make([]uint64, distinctPool)
	for i := range hashes {
		hashes[i] = r.Uint64()
	}
	seen := map[int64]bool{}
	out := make([]ev, 0, n)
	for len(out) < n {
		t := t0 + r.Int64N(span)
		if seen[t] {
			continue
		}
		seen[t] = true
		v := float64(r.IntN(11) - 5)
		if r.IntN(2) == 0 {
			v = r.NormFloat64() * 100
		}
		if r.IntN(8) == 0 {
			v = float64((t0 + r.Int64N(span)) / 1000) // a time in µs, for the IsTime specs
		}
		out = append(out, ev{t: t, num: v, str: fmt.Sprintf("s%d", r.IntN(12)), h: hashes[r.IntN(len(hashes))]})
	}
	return out
}

// feed adds events to every aggregate of l in the order given, with the
// engine clock at clock[i] for event i (or at now if clock is nil).
func feed(l *Layout, s *State, events []ev, clock []int64, now int64) {
	for j, e := range events {
		c := now
		if clock != nil {
			c = clock[j]
		}
		for i := range l.Len() {
			l.Add(s, i, e.t, c, e.in())
		}
	}
}

var floatsApprox = cmpopts.EquateApprox(1e-9, 1e-9)

// TestOrderIndependence feeds random streams sorted by time and shuffled
// under a moving clock (with Expire calls in between) and checks both
// against the naive reference, at the final clock and later.
func TestOrderIndependence(t *testing.T) {
	l := mustLayout(t, allKinds...)
	for seed := range uint64(60) {
		r := newRand(seed)
		span := 120 * day
		events := randomEvents(r, 1+r.IntN(600), span, 1+r.IntN(3000))
		end := t0 + span + r.Int64N(2*day)

		sorted := slices.Clone(events)
		slices.SortFunc(sorted, func(a, b ev) int { return cmp.Compare(a.t, b.t) })
		a := l.New()
		feed(l, &a, sorted, nil, end)

		shuffled := slices.Clone(events)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		clock := make([]int64, len(shuffled))
		for i := range clock {
			clock[i] = t0 + (end-t0)*int64(i+1)/int64(len(clock)) // ticks up to end
		}
		b := l.New()
		for i, e := range shuffled {
			feed(l, &b, []ev{e}, clock[i:i+1], 0)
			if r.IntN(50) == 0 {
				l.Expire(&b, clock[i])
			}
		}

		for _, now := range []int64{end, end + 3*day, end + 40*day} {
			for i := range l.Len() {
				sp := l.Spec(i)
				want := reference(sp, events, now)
				if got := l.Value(&a, i, now); !gocmp.Equal(want, got, floatsApprox) {
					t.Errorf("seed %d: %s fed sorted, at end+%v = %v, want %v", seed, sp.Name, time.Duration(now-end), got, want)
				}
				if got := l.Value(&b, i, now); !gocmp.Equal(want, got, floatsApprox) {
					t.Errorf("seed %d: %s fed shuffled, at end+%v = %v, want %v", seed, sp.Name, time.Duration(now-end), got, want)
				}
			}
		}
		checkWin(t, l, &a)
		checkWin(t, l, &b)
	}
}

// checkWin checks State.Win's invariants: sorted by (Agg, Bucket), unique,
// no empty cells, only windowed aggregates.
func checkWin(tb testing.TB, l *Layout, s *State) {
	tb.Helper()
	for j, c := range s.Win {
		if c.N == 0 || l.Spec(int(c.Agg)).Window == 0 {
			tb.Fatalf("cell %d = %+v: empty or not windowed", j, c)
		}
		if j > 0 && cellKey(s.Win[j-1].Agg, s.Win[j-1].Bucket) >= cellKey(c.Agg, c.Bucket) {
			tb.Fatalf("cells %d and %d out of order: %+v %+v", j-1, j, s.Win[j-1], c)
		}
	}
}

func TestDistinct(t *testing.T) {
	l := mustLayout(t, Spec{Kind: Distinct})
	r := newRand(1)
	hashes := make([]uint64, 1_000_000)
	for i := range hashes {
		hashes[i] = r.Uint64()
	}
	tests := []struct {
		n      int
		within float64 // relative error allowed
	}{
		{0, 0}, {1, 0}, {100, 0}, {MaxExactDistinct, 0},
		// Sketches: within 3 standard errors (1.04/sqrt(4096) = 1.6%).
		{MaxExactDistinct + 1, 0.05}, {10_000, 0.05}, {100_000, 0.05}, {1_000_000, 0.05},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("n=%d", tt.n), func(t *testing.T) {
			hs := slices.Clone(hashes[:tt.n])
			a := l.New()
			for _, h := range hs {
				l.Add(&a, 0, t0, t0, Input{Hash: h})
				l.Add(&a, 0, t0, t0, Input{Hash: h}) // repeats change nothing
			}
			r.Shuffle(len(hs), func(i, j int) { hs[i], hs[j] = hs[j], hs[i] })
			b := l.New()
			for _, h := range hs {
				l.Add(&b, 0, t0, t0, Input{Hash: h})
			}
			got, gotB := l.Value(&a, 0, t0).(int64), l.Value(&b, 0, t0).(int64)
			if got != gotB {
				t.Errorf("distinct of %d = %d in one order, %d in another", tt.n, got, gotB)
			}
			if err := math.Abs(float64(got)-float64(tt.n)) / max(1, float64(tt.n)); err > tt.within {
				t.Errorf("distinct of %d = %d, error %.2f%%, want within %.0f%%", tt.n, got, 100*err, 100*tt.within)
			}
			if hll := isHLL(a.Sets[0]); hll != (tt.n > MaxExactDistinct) {
				t.Errorf("distinct of %d: sketch = %v", tt.n, hll)
			}
			if tt.n > MaxExactDistinct && l.Bytes(&a) > 3300 {
				t.Errorf("distinct of %d: Bytes = %d, want a 3 KiB sketch", tt.n, l.Bytes(&a))
			}
		})
	}
}

// TestDistinctAccuracy checks the sketch's error at 100k distinct values over
// 40 independent streams: 2% on average, unbiased.
func TestDistinctAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("4M hashes")
	}
	const n, trials = 100_000, 40
	l := mustLayout(t, Spec{Kind: Distinct})
	var sumErr, sumAbs, worst float64
	for seed := range uint64(trials) {
		r := newRand(1000 + seed)
		s := l.New()
		for range n {
			l.Add(&s, 0, t0, t0, Input{Hash: r.Uint64()})
		}
		e := float64(l.Value(&s, 0, t0).(int64))/n - 1
		sumErr += e
		sumAbs += math.Abs(e)
		worst = max(worst, math.Abs(e))
	}
	if mean := sumAbs / trials; mean > 0.02 {
		t.Errorf("distinct of %d: mean error %.2f%%, want within 2%%", n, 100*mean)
	}
	if bias := sumErr / trials; math.Abs(bias) > 0.01 {
		t.Errorf("distinct of %d: bias %.2f%%, want within 1%%", n, 100*bias)
	}
	t.Logf("distinct of %d: mean error %.2f%%, bias %.2f%%, worst %.2f%%", n, 100*sumAbs/trials, 100*sumErr/trials, 100*worst)
}

func TestHLLRegisters(t *testing.T) {
	sk := make([]uint64, hllLen)
	sk[0] = hllMagic
	var want [hllM]uint64
	r := newRand(3)
	for range 100_000 {
		i, v := r.Uint64N(hllM), r.Uint64N(hllMaxR+1)
		hllSet(sk, i, v)
		want[i] = v
	}
	for i := range uint64(hllM) {
		if got := hllGet(sk, i); got != want[i] {
			t.Fatalf("register %d = %d, want %d", i, got, want[i])
		}
	}
	if sk[0] != hllMagic {
		t.Fatalf("registers overwrote the magic word")
	}
}
