package agg

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const (
	ns   = int64(1)
	hour = int64(time.Hour)
	day  = 24 * hour
)

// t0 is 2025-03-01T00:00:00Z, on a bucket boundary for 1d and 3d buckets.
var t0 = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()

func mustLayout(tb testing.TB, specs ...Spec) *Layout {
	tb.Helper()
	l, err := NewLayout(specs)
	if err != nil {
		tb.Fatalf("NewLayout: %v", err)
	}
	return l
}

// ev is one event fed to an aggregate.
type ev struct {
	t   int64
	num float64
	str string
	h   uint64
}

func (e ev) in() Input { return Input{Num: e.num, Str: e.str, Hash: e.h} }

func at(t int64, v float64) ev { return ev{t: t, num: v} }

var approx = cmpopts.EquateApprox(1e-12, 0)

func TestValue(t *testing.T) {
	tm := func(t int64) time.Time { return time.Unix(0, t).UTC() }
	us := func(t int64) float64 { return float64(t / 1000) } // time values are µs
	tests := []struct {
		name   string
		spec   Spec
		events []ev // in arrival order
		now    int64
		want   any
	}{
		{"count/empty", Spec{Kind: Count}, nil, t0, int64(0)},
		{"count", Spec{Kind: Count}, []ev{at(t0, 1), at(t0-day, math.NaN()), at(t0, 0)}, t0, int64(3)},
		{"sum/empty", Spec{Kind: Sum}, nil, t0, 0.0},
		{"sum/ignores NaN", Spec{Kind: Sum}, []ev{at(t0, 1.5), at(t0, math.NaN()), at(t0-day, 2.5)}, t0, 4.0},
		{"avg/empty", Spec{Kind: Avg}, nil, t0, nil},
		{"avg", Spec{Kind: Avg}, []ev{at(t0, 1), at(t0-day, 2), at(t0, 6)}, t0, 3.0},
		{"min/empty", Spec{Kind: Min}, nil, t0, nil},
		{"min/only NaN", Spec{Kind: Min}, []ev{at(t0, math.NaN())}, t0, nil},
		{"min", Spec{Kind: Min}, []ev{at(t0, 3), at(t0, math.NaN()), at(t0-day, -1), at(t0, 2)}, t0, -1.0},
		{"min/inf", Spec{Kind: Min}, []ev{at(t0, math.Inf(1))}, t0, math.Inf(1)},
		{"min/time", Spec{Kind: Min, IsTime: true}, []ev{at(t0, us(t0)), at(t0, us(t0-day))}, t0, tm(t0 - day)},
		{"max/empty", Spec{Kind: Max}, nil, t0, nil},
		{"max", Spec{Kind: Max}, []ev{at(t0, -3), at(t0-day, -1), at(t0, -2)}, t0, -1.0},
		{"first/empty", Spec{Kind: First}, nil, t0, nil},
		{"first/late event wins", Spec{Kind: First}, []ev{at(t0+10, 1), at(t0+5, 2), at(t0+7, 3)}, t0, 2.0},
		{"first/tie keeps earlier arrival", Spec{Kind: First}, []ev{at(t0+5, 2), at(t0+5, 9)}, t0, 2.0},
		{"first/time", Spec{Kind: First, IsTime: true}, []ev{at(t0, us(t0+hour)), at(t0-1, us(t0))}, t0, tm(t0)},
		{"last/empty", Spec{Kind: Last}, nil, t0, nil},
		{"last/late event loses", Spec{Kind: Last}, []ev{at(t0+10, 1), at(t0+20, 2), at(t0+15, 3)}, t0, 2.0},
		{"last/tie takes later arrival", Spec{Kind: Last}, []ev{at(t0+20, 2), at(t0+20, 7)}, t0, 7.0},
		{"last/zero", Spec{Kind: Last}, []ev{at(t0, 0)}, t0, 0.0},
		{"distinct/empty", Spec{Kind: Distinct}, nil, t0, int64(0)},
		{"distinct", Spec{Kind: Distinct}, []ev{{h: 1}, {h: 2}, {h: 2}, {h: math.MaxUint64}, {h: 0}, {h: 1}}, t0, int64(4)},
		{"topk/empty", Spec{Kind: TopK}, nil, t0, []TopEntry{}},
		{"topk", Spec{Kind: TopK, K: 2},
			[]ev{{str: "a"}, {str: "b"}, {str: "a"}, {str: "c"}, {str: "a"}, {str: "b"}}, t0,
			[]TopEntry{{Value: "a", Count: 3}, {Value: "b", Count: 2}}},
		{"topk/ties by value", Spec{Kind: TopK},
			[]ev{{str: "b"}, {str: "c"}, {str: "a"}, {str: "d"}}, t0,
			[]TopEntry{{Value: "a", Count: 1}, {Value: "b", Count: 1}, {Value: "c", Count: 1}}},
		{"ewma/empty", Spec{Kind: EWMA}, nil, t0, nil},
		{"ewma/one", Spec{Kind: EWMA}, []ev{at(t0, 5)}, t0 + 30*day, 5.0},
		// The older event weighs half: (0*0.5 + 10*1) / 1.5.
		{"ewma/in order", Spec{Kind: EWMA, HalfLife: time.Hour}, []ev{at(t0, 0), at(t0+hour, 10)}, t0, 10 / 1.5},
		{"ewma/late", Spec{Kind: EWMA, HalfLife: time.Hour}, []ev{at(t0+hour, 10), at(t0, 0)}, t0, 10 / 1.5},
		{"ewma/ignores NaN", Spec{Kind: EWMA}, []ev{at(t0, math.NaN()), at(t0, 4)}, t0, 4.0},
		{"time_since/empty", Spec{Kind: TimeSince}, nil, t0, nil},
		{"time_since", Spec{Kind: TimeSince}, []ev{at(t0-36*hour, 0), at(t0-48*hour, 0)}, t0, 1.5},
		{"time_since/hours", Spec{Kind: TimeSince, Unit: time.Hour}, []ev{at(t0-90*int64(time.Minute), 0)}, t0, 1.5},
		{"time_since/future event", Spec{Kind: TimeSince}, []ev{at(t0+hour, 0)}, t0, 0.0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustLayout(t, Spec{Kind: Count}, tt.spec) // aggregate 1, after another
			s := l.New()
			for _, e := range tt.events {
				l.Add(&s, 1, e.t, tt.now, e.in())
			}
			got := l.Value(&s, 1, tt.now)
			if diff := cmp.Diff(tt.want, got, approx); diff != "" {
				t.Errorf("%s Value = %v, want %v (-want +got):\n%s", tt.spec.Kind, got, tt.want, diff)
			}
			if n := l.Value(&s, 0, tt.now); n != int64(0) {
				t.Errorf("untouched count = %v, want 0", n)
			}
		})
	}
}

func TestWindowValue(t *testing.T) {
	w := func(k Kind) Spec { return Spec{Kind: k, Window: 7 * 24 * time.Hour, Bucket: 24 * time.Hour} }
	now := t0 + 10*day // on a bucket boundary
	tm := func(t int64) time.Time { return time.Unix(0, t).UTC() }
	us := func(t int64) float64 { return float64(t / 1000) } // time values are µs
	// In the window at now: t0+4d (age 6d = Window-Bucket) and younger.
	mixed := []ev{at(now-day, 5), at(now-8*day, 100), at(now-6*day, 1), at(now-6*day-1, 50), at(now-2*hour, 3), at(now-day-1, 7)}
	tests := []struct {
		name   string
		spec   Spec
		events []ev
		want   any
	}{
		{"count/empty", w(Count), nil, int64(0)},
		{"count", w(Count), mixed, int64(4)},
		{"sum/empty", w(Sum), nil, 0.0},
		{"sum", w(Sum), mixed, 16.0},
		{"avg/empty", w(Avg), nil, nil},
		{"avg/all out", w(Avg), []ev{at(now-7*day, 1)}, nil},
		{"avg", w(Avg), mixed, 4.0},
		{"min", w(Min), mixed, 1.0},
		{"min/empty", w(Min), nil, nil},
		{"max", w(Max), mixed, 7.0},
		{"max/time", Spec{Kind: Max, Window: 7 * 24 * time.Hour, IsTime: true}, []ev{at(now-day, us(now)), at(now-9*day, us(now+day))}, tm(now)},
		{"last/empty", w(Last), nil, nil},
		{"last", w(Last), mixed, 3.0},
		{"last/ignores out of window", w(Last), []ev{at(now-day, 2), at(now-7*day, 9)}, 2.0},
		{"last/tie takes later arrival", w(Last), []ev{at(now-day, 2), at(now-day, 4)}, 4.0},
		{"last/late event in same bucket", w(Last), []ev{at(now-day+2, 2), at(now-day+1, 4)}, 2.0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustLayout(t, Spec{Kind: Count, Window: time.Hour}, tt.spec)
			s := l.New()
			for _, e := range tt.events {
				l.Add(&s, 1, e.t, now, e.in())
				l.Add(&s, 0, e.t, now, e.in())
			}
			got := l.Value(&s, 1, now)
			if diff := cmp.Diff(tt.want, got, approx); diff != "" {
				t.Errorf("window 7d %s Value = %v, want %v (-want +got):\n%s", tt.spec.Kind, got, tt.want, diff)
			}
		})
	}
}

// TestWindowBoundary pins doc.go's rule: at now the window holds the buckets
// b > floor(now/Bucket) - Window/Bucket.
func TestWindowBoundary(t *testing.T) {
	const W, B = 7 * day, day
	aligned := t0 + 10*day
	tests := []struct {
		name string
		now  int64
		age  int64
		in   bool
	}{
		{"aligned now, exactly Window old", aligned, W, false},
		{"aligned now, Window-1ns old", aligned, W - ns, false},
		{"aligned now, Window-Bucket+1ns old", aligned, W - B + ns, false},
		{"aligned now, exactly Window-Bucket old", aligned, W - B, true},
		{"aligned now, Window-Bucket-1ns old", aligned, W - B - ns, true},
		{"aligned now, just now", aligned, 0, true},
		{"aligned now, in the future", aligned, -day, true},
		{"end of bucket, exactly Window old", aligned + B - ns, W, false},
		{"end of bucket, Window-1ns old", aligned + B - ns, W - ns, true},
		{"mid bucket, Window-Bucket+1ns old", aligned + B/2, W - B + ns, true},
		{"mid bucket, exactly Window old", aligned + B/2, W, false},
		{"before 1970, Window-6ns old", -5*day - 7, W - 6, false},
		{"before 1970, Window-7ns old", -5*day - 7, W - 7, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustLayout(t, Spec{Kind: Count, Window: time.Duration(W), Bucket: time.Duration(B)})
			want := int64(0)
			if tt.in {
				want = 1
			}
			// Fed at an earlier clock, so Add keeps it; then read at now.
			s := l.New()
			l.Add(&s, 0, tt.now-tt.age, tt.now-tt.age, Input{})
			if got := l.Value(&s, 0, tt.now); got != want {
				t.Errorf("event %v old, read at %v: count = %v, want %v", time.Duration(tt.age), time.Unix(0, tt.now).UTC(), got, want)
			}
			// Fed at now: Add ignores what is already out.
			s = l.New()
			l.Add(&s, 0, tt.now-tt.age, tt.now, Input{})
			if got := l.Value(&s, 0, tt.now); got != want {
				t.Errorf("event %v old, fed at now: count = %v, want %v", time.Duration(tt.age), got, want)
			}
			if !tt.in && len(s.Win) != 0 {
				t.Errorf("event %v old, fed at now: kept %d cells, want 0", time.Duration(tt.age), len(s.Win))
			}
		})
	}
}

func TestWindowDropsOldCells(t *testing.T) {
	l := mustLayout(t,
		Spec{Name: "a", Kind: Sum, Window: 3 * 24 * time.Hour, Bucket: 24 * time.Hour},
		Spec{Name: "b", Kind: Count, Window: 30 * 24 * time.Hour},
	)
	s := l.New()
	for d := range int64(10) {
		l.Add(&s, 0, t0+d*day, t0+d*day, Input{Num: 1})
		l.Add(&s, 1, t0+d*day, t0+d*day, Input{})
	}
	// Add drops aggregate 0's old cells as it goes: 3 buckets of a, 10 of b.
	if got := len(s.Win); got != 13 {
		t.Errorf("after 10 days: %d cells, want 13: %+v", got, s.Win)
	}
	if got := l.Value(&s, 0, t0+9*day); got != 3.0 {
		t.Errorf("sum 3d = %v, want 3", got)
	}
	before := l.Bytes(&s)
	l.Expire(&s, t0+35*day)
	if got := len(s.Win); got != 4 { // b's buckets of days 6..9
		t.Errorf("after Expire at day 35: %d cells, want 4: %+v", got, s.Win)
	}
	if after := l.Bytes(&s); after >= before {
		t.Errorf("Bytes after Expire = %d, want < %d", after, before)
	}
	if got := l.Value(&s, 1, t0+35*day); got != int64(4) {
		t.Errorf("count 30d at day 35 = %v, want 4", got)
	}
	l.Expire(&s, t0+100*day)
	if s.Win != nil {
		t.Errorf("after Expire at day 100: Win = %+v, want nil", s.Win)
	}
}

func TestNewLayout(t *testing.T) {
	l := mustLayout(t,
		Spec{Name: "w", Kind: Sum, Window: 30 * 24 * time.Hour},
		Spec{Name: "t", Kind: TopK},
		Spec{Name: "e", Kind: EWMA},
		Spec{Name: "s", Kind: TimeSince},
		Spec{Name: "c", Kind: Count, Window: 7 * 24 * time.Hour, Bucket: time.Hour},
	)
	want := []Spec{
		{Name: "w", Kind: Sum, Window: 30 * 24 * time.Hour, Bucket: 24 * time.Hour, K: 3, HalfLife: 7 * 24 * time.Hour, Unit: 24 * time.Hour},
		{Name: "t", Kind: TopK, K: 3, HalfLife: 7 * 24 * time.Hour, Unit: 24 * time.Hour},
		{Name: "e", Kind: EWMA, K: 3, HalfLife: 7 * 24 * time.Hour, Unit: 24 * time.Hour},
		{Name: "s", Kind: TimeSince, K: 3, HalfLife: 7 * 24 * time.Hour, Unit: 24 * time.Hour},
		{Name: "c", Kind: Count, Window: 7 * 24 * time.Hour, Bucket: time.Hour, K: 3, HalfLife: 7 * 24 * time.Hour, Unit: 24 * time.Hour},
	}
	if l.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", l.Len(), len(want))
	}
	for i := range want {
		if diff := cmp.Diff(want[i], l.Spec(i)); diff != "" {
			t.Errorf("Spec(%d) (-want +got):\n%s", i, diff)
		}
	}
	s := l.New()
	if len(s.Tops) != 1 || s.Tops[0] != nil || s.Sets != nil || s.Win != nil {
		t.Errorf("New() = %+v, want one nil top-k slot, no sets, no cells", s)
	}

	errs := []struct {
		spec Spec
		want string
	}{
		{Spec{Name: "x", Kind: 0}, `aggregate "x": unknown kind 0`},
		{Spec{Name: "x", Kind: TimeSince + 1}, `unknown kind 12`},
		{Spec{Kind: Distinct, Window: time.Hour}, `aggregate #0: kind distinct takes no window`},
		{Spec{Kind: EWMA, Window: time.Hour}, `kind ewma takes no window`},
		{Spec{Kind: Sum, Window: -time.Hour}, `window -1h0m0s is negative`},
		{Spec{Kind: Sum, Bucket: time.Hour}, `bucket 1h0m0s set without a window`},
		{Spec{Kind: Sum, Window: time.Hour, Bucket: 2 * time.Hour}, `bucket 2h0m0s is longer than the window 1h0m0s`},
		{Spec{Kind: Sum, Window: time.Hour, Bucket: 7 * time.Minute}, `window 1h0m0s is not a whole number of buckets of 7m0s`},
		{Spec{Kind: Sum, Window: time.Hour, Bucket: time.Second}, `bucket 1s is shorter than the minimum 1m0s`},
		{Spec{Kind: Sum, Window: 30 * time.Second}, `bucket 1m0s is longer than the window 30s`},
		{Spec{Kind: TopK, K: -1}, `k -1 is negative`},
		{Spec{Kind: TopK, K: MaxK + 1}, `k 1001 is above the maximum 1000`},
		{Spec{Kind: EWMA, HalfLife: -1}, `half-life -1ns is negative`},
		{Spec{Kind: TimeSince, Unit: -1}, `unit -1ns is negative`},
	}
	for _, e := range errs {
		_, err := NewLayout([]Spec{e.spec})
		if err == nil || !strings.Contains(err.Error(), e.want) {
			t.Errorf("NewLayout(%+v) error = %v, want %q", e.spec, err, e.want)
		}
	}
}

func TestTopKBeyondCapacity(t *testing.T) {
	// Space-saving guarantees: every counter overestimates by at most Err,
	// and a value seen more than N/capacity times is always kept.
	l := mustLayout(t, Spec{Kind: TopK, K: 3})
	s := l.New()
	truth := map[string]int{}
	n := 0
	r := newRand(7)
	for range 5000 {
		v := "v" + string(rune('a'+r.IntN(26))) + string(rune('a'+r.IntN(26)))
		if r.IntN(5) == 0 {
			v = "hot"
		}
		truth[v]++
		n++
		l.Add(&s, 0, t0, t0, Input{Str: v})
	}
	if len(s.Tops[0]) != TopCapacity(3) {
		t.Fatalf("%d counters, want %d", len(s.Tops[0]), TopCapacity(3))
	}
	for _, e := range s.Tops[0] {
		c := truth[e.Value]
		if c > int(e.Count) || c < int(e.Count-e.Err) {
			t.Errorf("%q: counted %d (error %d), seen %d times", e.Value, e.Count, e.Err, c)
		}
	}
	top := l.Value(&s, 0, t0).([]TopEntry)
	if len(top) != 3 || top[0].Value != "hot" {
		t.Errorf("top = %+v, want 3 entries led by hot (%d of %d)", top, truth["hot"], n)
	}
}
