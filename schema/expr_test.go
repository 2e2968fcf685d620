package schema

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/agg"
)

// exprBase is a model whose twin has a field of every kind, for expression
// tests; exprSchema adds segments and rules on purchase to it.
const exprBase = `
entity: customer
key: customer_id
events:
  purchase:
    fields:
      amount: number
      quantity: integer
      category: string
      channel: {type: enum, values: [web, store]}
      gift: bool
      shipped_at: time
  profile:
    fields:
      name: string
      tier: {type: enum, values: [bronze, silver, gold]}
      birthday: time
      level: integer
      opted_in: bool
      score: number
attributes:
  name: profile.name
  tier: profile.tier
  birthday: profile.birthday
  level: profile.level
  opted_in: profile.opted_in
  score: profile.score
aggregates:
  spend_total: {kind: sum, on: purchase, field: amount}
  purchases_90d: {kind: count, on: purchase, window: 90d}
  last_seen: {kind: last, field: time}
  avg_basket: {kind: avg, on: purchase, field: amount}
  days_since_purchase: {kind: time_since, on: purchase}
  top_categories: {kind: topk, on: purchase, field: category}
  first_purchase: {kind: first, on: purchase, field: time}
  max_quantity: {kind: max, on: purchase, field: quantity}
  channels: {kind: distinct, on: purchase, field: channel}
`

// exprSchema compiles each expression as segment sN and as rule rN on
// purchase (so that it may read event).
func exprSchema(tb testing.TB, exprs []string) *Schema {
	tb.Helper()
	var b strings.Builder
	b.WriteString(exprBase)
	b.WriteString("segments:\n  member: twin.spend_total > 0.0\n")
	for i, e := range exprs {
		if !strings.Contains(e, "event") {
			fmt.Fprintf(&b, "  s%d: %q\n", i, e)
		}
	}
	b.WriteString("rules:\n")
	for i, e := range exprs {
		fmt.Fprintf(&b, "  r%d: {on: [purchase], when: %q, do: [{kind: tag, tag: t}]}\n", i, e)
	}
	s, err := Parse([]byte(b.String()))
	if err != nil {
		tb.Fatalf("%v\nin:\n%s", err, b.String())
	}
	return s
}

func TestHelperFunctions(t *testing.T) {
	now := testNow
	birthday := twinhub.Value{Num: micros(now.AddDate(-1, 0, -10)), Type: twinhub.TypeTime, Set: true}
	cases := []struct {
		expr string
		want bool
	}{
		{"days(2) == duration('48h')", true},
		{"days(1.5) == hours(36)", true},
		{"hours(1.5) == duration('90m')", true},
		{"hours(-2) < duration('0s')", true},
		{"days(1e300) > days(1)", false}, // out of range: an error
		{"days_between(timestamp('2024-01-01T00:00:00Z'), timestamp('2024-01-03T12:00:00Z')) == 2.5", true},
		{"days_between(timestamp('2024-01-03T00:00:00Z'), timestamp('2024-01-01T00:00:00Z')) == -2.0", true},
		{"days_between(timestamp('0001-01-01T00:00:00Z'), timestamp('9999-12-31T00:00:00Z')) > 3.6e6", true},
		{"days_since(twin.last_seen) == 1.5", true},
		{"days_since(twin.birthday) > 365.0", true},
		{"days_since(twin.birthday) > 376.0", false},
		{"now == timestamp('2024-06-01T00:00:00Z')", true},
		{"now - twin.last_seen > hours(35) && now - twin.last_seen < days(2)", true},
		{"twin.last_seen + days(1.5) == now", true},
		{"twin.first_purchase < twin.last_seen", true},
		// days_since always uses the evaluation's now, even where a
		// comprehension names a variable now.
		{"[1].all(now, days_since(twin.last_seen) == 1.5)", true},
		{"now.getFullYear() == 2024", true},
	}
	exprs := make([]string, len(cases))
	for i, c := range cases {
		exprs[i] = c.expr
	}
	s := exprSchema(t, exprs)
	tw := newFakeTwin(s, "c-1").with(t, s, "birthday", birthday).
		with(t, s, "last_seen", micros(now.Add(-36*time.Hour))).
		with(t, s, "first_purchase", micros(now.AddDate(-2, 0, 0)))
	for i, c := range cases {
		seg, _ := s.Segment(fmt.Sprintf("s%d", i))
		if got := seg.Match(tw, now.UnixNano()); got != c.want {
			t.Errorf("%s = %v, want %v", c.expr, got, c.want)
		}
	}
}

// nativeCorpus are expressions of the shapes that compile to closures;
// TestNativeAgreesWithCEL checks that every one of them does, and that the
// closures answer as CEL does.
var nativeCorpus = []string{
	"twin.spend_total >= 1000.0 && twin.purchases_90d > 3",
	"twin.spend_total > 5",
	"5 < twin.spend_total",
	"twin.purchases_90d == 2 && twin.max_quantity == 2.0",
	"twin.purchases_90d >= twin.max_quantity",
	"twin.avg_basket != 10.0",
	"twin.avg_basket * 2.0 > twin.spend_total - 1.0",
	"twin.spend_total / twin.avg_basket >= 2.0",
	"!(twin.level > 3) || twin.opted_in",
	"twin.opted_in == false",
	"twin.opted_in != twin.opted_in",
	"twin.tier == 'gold' || twin.tier in ['silver', 'bronze']",
	"twin.name < 'M'",
	"twin.key == 'c-1'",
	"twin.revision > 3",
	"has(twin.name) && twin.name != ''",
	"has(twin.avg_basket) || has(twin.score)",
	"'member' in twin.segments && !('vip' in twin.tags)",
	"twin.score > 0.5 && twin.channels >= 2",
	"now - twin.last_seen > days(30)",
	"twin.last_seen < now - days(30)",
	"twin.last_seen + hours(12) >= now",
	"days_since(twin.birthday) > 365.0",
	"days_between(twin.first_purchase, twin.last_seen) >= 7.0",
	"twin.birthday > timestamp('1990-01-01T00:00:00Z')",
	"now - twin.first_purchase <= duration('720h')",
	"true && twin.spend_total > 1.0",
	"event.amount > 100.0 && event.category == 'books'",
	"event.quantity >= 2 || event.gift",
	"has(event.channel) && event.channel == 'web'",
	"event.shipped_at - event.time < days(2)",
	"event.time > twin.last_seen",
	"event.type == 'purchase' && event.customer_id == twin.key && event.id != '' && event.source == 'shop'",
	"event.position > 5 && event.amount > twin.avg_basket",
	"event.amount / 0.0 > 1.0",
	"twin.purchases_90d % 3 == 1",
	"twin.revision * 2 - 1 > twin.level + 1",
	"event.quantity / 2 >= 1 || event.quantity % 0 == 0",
	"twin.purchases_90d * 9223372036854775807 > 0 && twin.revision - -9223372036854775807 > 0",
	"-9223372036854775807 - twin.revision < 0 || twin.level / -1 < 0",
}

func TestNativeAgreesWithCEL(t *testing.T) {
	s := exprSchema(t, nativeCorpus)
	purchase, _ := s.EventType("purchase")
	rng := rand.New(rand.NewPCG(1, 2))
	now := testNow.UnixNano()
	for i, expr := range nativeCorpus {
		r, _ := s.Rule(fmt.Sprintf("r%d", i))
		prg, fast, kind := r.cond.pick(&Cause{Type: purchase})
		if fast == nil {
			t.Errorf("%s does not compile to a closure", expr)
			continue
		}
		seg, hasSeg := s.Segment(fmt.Sprintf("s%d", i))
		for n := 0; n < 3000; n++ {
			tw := randomTwin(rng, s)
			c := &Cause{Type: purchase, Event: randomPurchase(rng, purchase)}
			got := fast(tw, c.Event, now)
			want := r.cond.celHolds(prg, tw, c, kind, now)
			if got != triCEL && got != want {
				t.Fatalf("%s: closure %v, CEL %v\ntwin %+v\nevent %+v", expr, got, want, tw, c.Event)
			}
			if hasSeg {
				sprg, sfast, skind := seg.cond.pick(nil)
				if sfast == nil {
					t.Fatalf("segment %s does not compile to a closure", expr)
				}
				if got, want := sfast(tw, nil, now), seg.cond.celHolds(sprg, tw, nil, skind, now); got != triCEL && got != want {
					t.Fatalf("segment %s: closure %v, CEL %v\ntwin %+v", expr, got, want, tw)
				}
			}
		}
	}
}

func TestCELOnlyShapes(t *testing.T) {
	// These run in CEL; they must still give the right answers.
	cases := []struct {
		expr string
		want bool
	}{
		{"twin.top_categories.exists(c, c == 'books')", true},
		{"size(twin.top_categories) == 2 && twin.top_categories[0] == 'books'", true},
		{"twin.tags == ['a', 'vip']", true},
		{"twin.segments == ['member']", true},
		{"twin.name.startsWith('A')", true},
		{"int(twin.spend_total) % 7 == 1", true},
		{"dyn(twin).spend_total > 1.0", true},
	}
	exprs := make([]string, len(cases))
	for i, c := range cases {
		exprs[i] = c.expr
	}
	s := exprSchema(t, exprs)
	tw := newFakeTwin(s, "c-1").with(t, s, "spend_total", 8.0).with(t, s, "member", true).
		with(t, s, "top_categories", []string{"books", "music"}).with(t, s, "name", str("Ada")).tag("vip", "a")
	for i, c := range cases {
		seg, _ := s.Segment(fmt.Sprintf("s%d", i))
		if _, fast, _ := seg.cond.pick(nil); fast != nil {
			t.Errorf("%s compiles to a closure; move it to nativeCorpus", c.expr)
		}
		if got := seg.Match(tw, testNow.UnixNano()); got != c.want {
			t.Errorf("%s = %v, want %v", c.expr, got, c.want)
		}
	}
}

// randomTwin fills a twin with values chosen to hit the edges: unset,
// zero, NaN, infinities, huge numbers and times beyond 2262.
func randomTwin(rng *rand.Rand, s *Schema) *fakeTwin {
	tw := newFakeTwin(s, []string{"c-1", "c-2", ""}[rng.IntN(3)])
	tw.rev = uint64(rng.IntN(8))
	nums := []float64{0, 1, 2, 3, 4, 0.5, -1, 1000, 1e300, math.NaN(), math.Inf(1), math.Inf(-1)}
	times := []time.Time{testNow, testNow.Add(-36 * time.Hour), testNow.AddDate(0, -2, 0), testNow.AddDate(-30, 0, 0),
		time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC)}
	for i, a := range s.Attributes {
		if rng.IntN(4) == 0 {
			continue
		}
		v := twinhub.Value{Type: a.Type, Set: true}
		switch a.Type {
		case twinhub.TypeString, twinhub.TypeEnum:
			v.Str = []string{"", "Ada", "gold", "silver", "Zed", "c-1"}[rng.IntN(6)]
		case twinhub.TypeTime:
			v.Num = micros(times[rng.IntN(len(times))])
		case twinhub.TypeBool:
			v.Num = float64(rng.IntN(2))
		case twinhub.TypeInteger:
			v.Num = float64(rng.IntN(7) - 1)
		default:
			v.Num = nums[rng.IntN(len(nums))]
		}
		tw.attrs[i] = v
	}
	for i, a := range s.Aggregates {
		if rng.IntN(5) == 0 {
			continue
		}
		switch {
		case a.Kind == agg.TopK:
			tw.tops[i] = []agg.TopEntry{{Value: "books", Count: 2}}
			continue
		case a.IsTime:
			tw.nums[i] = micros(times[rng.IntN(len(times))])
		case a.Kind == agg.Count || a.Kind == agg.Distinct || a.Kind == agg.Max:
			tw.nums[i] = float64(rng.IntN(6))
		default:
			tw.nums[i] = nums[rng.IntN(len(nums))]
		}
		tw.set[i] = true
	}
	for i := range tw.segs {
		tw.segs[i] = rng.IntN(2) == 0
	}
	if rng.IntN(2) == 0 {
		tw.tag("vip")
	}
	return tw
}

func randomPurchase(rng *rand.Rand, t *EventType) *twinhub.Event {
	ev := &twinhub.Event{ID: []string{"e-1", ""}[rng.IntN(2)], Type: t.Index, Key: []string{"c-1", "c-2"}[rng.IntN(2)],
		Source: []string{"shop", ""}[rng.IntN(2)], Time: testNow.Add(-time.Duration(rng.IntN(72)) * time.Hour).UnixNano(),
		Position: []int64{0, 6, math.MaxInt64, 1<<53 + 1}[rng.IntN(4)], Vals: make([]twinhub.Value, len(t.Fields))}
	for i, f := range t.Fields {
		if rng.IntN(4) == 0 {
			continue
		}
		v := twinhub.Value{Type: f.Type, Set: true}
		switch f.Type {
		case twinhub.TypeString, twinhub.TypeEnum:
			v.Str = []string{"books", "web", "store", ""}[rng.IntN(4)]
		case twinhub.TypeTime:
			v.Num = micros(testNow.Add(time.Duration(rng.IntN(96)) * time.Hour))
		case twinhub.TypeBool:
			v.Num = float64(rng.IntN(2))
		case twinhub.TypeInteger:
			v.Num = float64(rng.IntN(4))
		default:
			v.Num = []float64{0, 50, 150, math.NaN(), -3}[rng.IntN(5)]
		}
		ev.Vals[i] = v
	}
	return ev
}
