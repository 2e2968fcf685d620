package schema

import (
	"testing"
	"time"

	"github.com/twinhub/twinhub"
)

const whereSchema = `
entity: customer
key: customer_id
events:
  purchase:
    fields:
      amount: {type: number, required: true}
      product_id: string
      category: string
      channel: {type: enum, values: [web, store]}
      gift: bool
      quantity: integer
      shipped_at: time
  cart:
    fields:
      category: string
      amount: number
aggregates:
  big:          {kind: count, on: purchase, where: "event.amount > 100"}
  web:          {kind: count, on: purchase, where: "event.channel == 'web'"}
  not_web:      {kind: count, on: purchase, where: "!(event.channel == 'web')"}
  has_channel:  {kind: count, on: purchase, where: "has(event.channel)"}
  gifts:        {kind: count, on: purchase, where: event.gift}
  bulk:         {kind: count, on: purchase, where: "event.quantity >= 10 && event.quantity * 2 < 100"}
  books:        {kind: count, on: [cart, purchase], where: "event.category.startsWith('book')"}
  vip:          {kind: count, where: "event.customer_id == 'c-vip' && event.source == 'shop'"}
  by_id:        {kind: count, where: "event.id.endsWith('-1') && event.type == 'purchase'"}
  in_2024:      {kind: count, where: "event.time >= timestamp('2024-01-01T00:00:00Z') && event.time < timestamp('2025-01-01T00:00:00Z')"}
  fast_ship:    {kind: count, on: purchase, where: "event.shipped_at - event.time < duration('48h')"}
  pattern:      {kind: count, on: purchase, where: "event.category.matches('^b(oo)+ks$')"}
  weekend:      {kind: count, where: "event.time.getDayOfWeek() == 0 || event.time.getDayOfWeek() == 6"}
  after_pos:    {kind: count, where: "event.position > 5"}
  cheap_lines:
    kind: count
    on: purchase
    where: |
      event.amount < 10.5 &&
        event.category in ['books', 'music']
`

func TestWhereMatch(t *testing.T) {
	s, err := Parse([]byte(whereSchema))
	if err != nil {
		t.Fatal(err)
	}
	purchase, _ := s.EventType("purchase")
	cart, _ := s.EventType("cart")
	when := time.Date(2024, 3, 9, 12, 0, 0, 0, time.UTC) // a Saturday
	str := func(s string) twinhub.Value { return twinhub.Value{Str: s, Type: twinhub.TypeString, Set: true} }
	num := func(f float64, typ twinhub.FieldType) twinhub.Value {
		return twinhub.Value{Num: f, Type: typ, Set: true}
	}
	// purchase slots: amount, product_id, category, channel, gift, quantity, shipped_at
	buy := func(amount float64, category, channel string, gift bool, qty int, shipped time.Time) *twinhub.Event {
		vals := make([]twinhub.Value, len(purchase.Fields))
		vals[0] = num(amount, twinhub.TypeNumber)
		vals[1] = str("p-1")
		if category != "" {
			vals[2] = str(category)
		}
		if channel != "" {
			vals[3] = twinhub.Value{Str: channel, Type: twinhub.TypeEnum, Set: true}
		}
		g := 0.0
		if gift {
			g = 1
		}
		vals[4] = num(g, twinhub.TypeBool)
		if qty > 0 {
			vals[5] = num(float64(qty), twinhub.TypeInteger)
		}
		if !shipped.IsZero() {
			vals[6] = num(float64(shipped.UnixMicro()), twinhub.TypeTime)
		}
		return &twinhub.Event{ID: "e-1", Type: purchase.Index, Key: "c-vip", Time: when.UnixNano(), Source: "shop", Vals: vals}
	}
	// nullChannel sends channel as an explicit null, which reads as unset.
	nullChannel := func(ev *twinhub.Event) *twinhub.Event {
		ev.Vals[3] = twinhub.Value{Type: twinhub.TypeEnum, Null: true}
		return ev
	}
	at := func(ev *twinhub.Event, pos int64) *twinhub.Event { ev.Position = pos; return ev }
	cartEv := &twinhub.Event{ID: "e-2", Type: cart.Index, Key: "c-2", Time: when.Add(48 * time.Hour).UnixNano(),
		Vals: []twinhub.Value{str("bookshelves"), num(5, twinhub.TypeNumber)}}

	type tc struct {
		name string
		agg  string
		t    *EventType
		ev   *twinhub.Event
		want bool
	}
	cases := []tc{
		{"amount above", "big", purchase, buy(150, "", "", false, 0, time.Time{}), true},
		{"amount below", "big", purchase, buy(50, "", "", false, 0, time.Time{}), false},
		{"amount equal", "big", purchase, buy(100, "", "", false, 0, time.Time{}), false},
		{"enum equal", "web", purchase, buy(1, "", "web", false, 0, time.Time{}), true},
		{"enum other", "web", purchase, buy(1, "", "store", false, 0, time.Time{}), false},
		{"enum unset", "web", purchase, buy(1, "", "", false, 0, time.Time{}), false},
		{"negated, set", "not_web", purchase, buy(1, "", "store", false, 0, time.Time{}), true},
		{"negated, unset field does not match", "not_web", purchase, buy(1, "", "", false, 0, time.Time{}), false},
		{"has, set", "has_channel", purchase, buy(1, "", "app", false, 0, time.Time{}), true},
		{"has, unset", "has_channel", purchase, buy(1, "", "", false, 0, time.Time{}), false},
		{"has, null", "has_channel", purchase, nullChannel(buy(1, "", "web", false, 0, time.Time{})), false},
		{"enum null is no value", "web", purchase, nullChannel(buy(1, "", "web", false, 0, time.Time{})), false},
		{"negated, null does not match", "not_web", purchase, nullChannel(buy(1, "", "store", false, 0, time.Time{})), false},
		{"position above", "after_pos", purchase, at(buy(1, "", "", false, 0, time.Time{}), 6), true},
		{"position below", "after_pos", purchase, at(buy(1, "", "", false, 0, time.Time{}), 5), false},
		{"position unknown reads 0", "after_pos", cart, cartEv, false},
		{"bool true", "gifts", purchase, buy(1, "", "", true, 0, time.Time{}), true},
		{"bool false", "gifts", purchase, buy(1, "", "", false, 0, time.Time{}), false},
		{"integer in range", "bulk", purchase, buy(1, "", "", false, 12, time.Time{}), true},
		{"integer too big", "bulk", purchase, buy(1, "", "", false, 60, time.Time{}), false},
		{"integer too small", "bulk", purchase, buy(1, "", "", false, 3, time.Time{}), false},
		{"string method, purchase", "books", purchase, buy(1, "books", "", false, 0, time.Time{}), true},
		{"string method, purchase other", "books", purchase, buy(1, "garden", "", false, 0, time.Time{}), false},
		{"string method, cart (other slot)", "books", cart, cartEv, true},
		{"key and source", "vip", purchase, buy(1, "", "", false, 0, time.Time{}), true},
		{"key other", "vip", cart, cartEv, false},
		{"id and type", "by_id", purchase, buy(1, "", "", false, 0, time.Time{}), true},
		{"id and type, cart", "by_id", cart, cartEv, false},
		{"time range", "in_2024", purchase, buy(1, "", "", false, 0, time.Time{}), true},
		{"time field minus event time", "fast_ship", purchase, buy(1, "", "", false, 0, when.Add(24*time.Hour)), true},
		{"time field slow", "fast_ship", purchase, buy(1, "", "", false, 0, when.Add(72*time.Hour)), false},
		{"regular expression", "pattern", purchase, buy(1, "booooks", "", false, 0, time.Time{}), true},
		{"regular expression, no match", "pattern", purchase, buy(1, "bks", "", false, 0, time.Time{}), false},
		{"timestamp functions in UTC", "weekend", purchase, buy(1, "", "", false, 0, time.Time{}), true},
		{"timestamp functions, monday", "weekend", cart, cartEv, false},
		{"block scalar", "cheap_lines", purchase, buy(9.99, "music", "", false, 0, time.Time{}), true},
		{"block scalar, other category", "cheap_lines", purchase, buy(9.99, "garden", "", false, 0, time.Time{}), false},
		{"event type the aggregate is not on", "big", cart, cartEv, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, ok := s.Aggregate(c.agg)
			if !ok {
				t.Fatalf("no aggregate %s", c.agg)
			}
			w := feedWhere(t, s, c.agg)
			if w == nil {
				t.Fatalf("aggregate %s has no compiled where", c.agg)
			}
			if w.Expr != a.Where {
				t.Errorf("Where.Expr = %q, want %q", w.Expr, a.Where)
			}
			if got := w.Match(c.t, c.ev); got != c.want {
				t.Errorf("%s: Match(%s) = %v, want %v", c.agg, a.Where, got, c.want)
			}
		})
	}
}

// feedWhere returns the compiled where of aggregate name, from the first
// event type it feeds.
func feedWhere(tb testing.TB, s *Schema, name string) *Where {
	tb.Helper()
	a, _ := s.Aggregate(name)
	for _, t := range s.Events {
		for _, f := range t.Feeds {
			if f.Agg == a.Index {
				return f.Where
			}
		}
	}
	return nil
}

func TestWhereNil(t *testing.T) {
	var w *Where
	if !w.Match(nil, nil) {
		t.Error("nil Where does not match; want every event to match")
	}
	s := Default()
	for _, et := range s.Events {
		for _, f := range et.Feeds {
			if f.Where != nil {
				t.Errorf("%s feeds %s with a where; the default schema has none", et.Name, s.Aggregates[f.Agg].Name)
			}
		}
	}
}

func TestWhereShortVals(t *testing.T) {
	// An event whose Vals are shorter than the slots (a decoder bug) must
	// not panic: its fields read as unset.
	s, err := Parse([]byte(whereSchema))
	if err != nil {
		t.Fatal(err)
	}
	purchase, _ := s.EventType("purchase")
	w := feedWhere(t, s, "big")
	if w.Match(purchase, &twinhub.Event{Type: purchase.Index}) {
		t.Error("Match on an event without values = true, want false")
	}
}

func BenchmarkWhereMatch(b *testing.B) {
	s, err := Parse([]byte(whereSchema))
	if err != nil {
		b.Fatal(err)
	}
	purchase, _ := s.EventType("purchase")
	w := feedWhere(b, s, "big")
	ev := &twinhub.Event{ID: "e", Type: purchase.Index, Key: "c", Vals: make([]twinhub.Value, len(purchase.Fields))}
	ev.Vals[0] = twinhub.Value{Num: 150, Type: twinhub.TypeNumber, Set: true}
	b.ReportAllocs()
	for b.Loop() {
		if !w.Match(purchase, ev) {
			b.Fatal("no match")
		}
	}
}
