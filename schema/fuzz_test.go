package schema

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/twinhub/twinhub"
)

// FuzzParse checks that no document makes Parse panic, and that it returns
// either a usable Schema or a ValidationError with problems.
func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte(whereSchema))
	rules, err := os.ReadFile("testdata/rules.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rules)
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := Parse(src)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("Parse error %T %v, want a *ValidationError with problems", err, err)
			}
			if s != nil {
				t.Fatal("Parse returned a Schema with an error")
			}
			_ = err.Error()
			return
		}
		if s.Layout == nil || s.Layout.Len() != len(s.Aggregates) {
			t.Fatalf("Parse succeeded without a Layout for its %d aggregates", len(s.Aggregates))
		}
		for i, et := range s.Events {
			if et.Index != i {
				t.Fatalf("event %s Index %d at position %d", et.Name, et.Index, i)
			}
			for _, feed := range et.Feeds {
				if feed.Agg < 0 || feed.Agg >= len(s.Aggregates) || feed.Slot >= len(et.Fields) || feed.Slot < SlotTime {
					t.Fatalf("event %s feed %+v out of range", et.Name, feed)
				}
				// An event with no values must not panic a where.
				feed.Where.Match(et, &twinhub.Event{Type: i})
			}
			for _, set := range et.Sets {
				if set.Attr < 0 || set.Attr >= len(s.Attributes) || set.Slot >= len(et.Fields) || set.Slot < SlotTime {
					t.Fatalf("event %s attribute feed %+v out of range", et.Name, set)
				}
			}
			inRange(t, et.Name+" segments", et.Segments, len(s.Segments))
			inRange(t, et.Name+" rules", et.Rules, len(s.Rules))
		}
		for _, seg := range s.Segments {
			inRange(t, seg.Name+" on enter", seg.OnEnter, len(s.Rules))
			inRange(t, seg.Name+" on exit", seg.OnExit, len(s.Rules))
		}
		inRange(t, "timed segments", s.TimedSegments, len(s.Segments))
	})
}

// inRange fails t unless every index is below n.
func inRange(t *testing.T, what string, indexes []int, n int) {
	t.Helper()
	for _, i := range indexes {
		if i < 0 || i >= n {
			t.Fatalf("%s: index %d out of range (%d)", what, i, n)
		}
	}
}

// FuzzWhere compiles arbitrary where expressions and evaluates those that
// compile on real events; problems must point inside the document.
func FuzzWhere(f *testing.F) {
	for _, expr := range []string{
		"event.amount > 100",
		"has(event.channel) && event.channel == 'web'",
		"event.time > timestamp('2024-01-01T00:00:00Z')",
		"event.category.matches('^b.*s$')",
		"[1, 2, 3].exists(x, x == event.quantity)",
		"event.amount / 0.0 > 1.0",
		"int(event.amount) % 0 == 1",
		"event.customer_id + event.source == event.id",
		"event.amout >",
		"event.shipped_at - event.time < duration('1h')",
		"dyn(event).amount > 1",
		"event == event",
		"type(event) == type(event)",
		"string(event.gift) == 'true'",
	} {
		f.Add(expr)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		// The events of whereSchema, with the fuzzed aggregate alone.
		src := whereSchema[:strings.Index(whereSchema, "aggregates:\n")] +
			"aggregates:\n  fuzzed: {kind: count, on: [purchase, cart], where: " + strconv.Quote(expr) + "}\n"
		lines := strings.Count(src, "\n") + 1
		s, err := Parse([]byte(src))
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse error %T, want *ValidationError", err)
			}
			for _, p := range ve.Problems {
				if p.Line < 1 || p.Line > lines || p.Column < 1 {
					t.Fatalf("problem outside the document (%d lines): %s", lines, p)
				}
			}
			return
		}
		w := feedWhere(t, s, "fuzzed")
		purchase, _ := s.EventType("purchase")
		cart, _ := s.EventType("cart")
		full := &twinhub.Event{ID: "e", Type: purchase.Index, Key: "c", Time: 1_700_000_000_000_000_000, Source: "shop",
			Vals: []twinhub.Value{
				{Num: 150, Type: twinhub.TypeNumber, Set: true},
				{Str: "p", Type: twinhub.TypeString, Set: true},
				{Str: "books", Type: twinhub.TypeString, Set: true},
				{Str: "web", Type: twinhub.TypeEnum, Set: true},
				{Num: 1, Type: twinhub.TypeBool, Set: true},
				{Num: 12, Type: twinhub.TypeInteger, Set: true},
				{Num: 1_700_000_000_000_000_000, Type: twinhub.TypeTime, Set: true},
			}}
		w.Match(purchase, full)
		w.Match(purchase, &twinhub.Event{Type: purchase.Index})
		w.Match(cart, &twinhub.Event{Type: cart.Index, Vals: []twinhub.Value{{Str: "x", Type: twinhub.TypeString, Set: true}}})
	})
}

// FuzzRuleWhen compiles arbitrary conditions and templates as a segment
// and a rule, and runs those that compile on random twins and events: no
// input may panic Parse or evaluation, and problems point inside the
// document.
func FuzzRuleWhen(f *testing.F) {
	for _, c := range []struct{ when, tmpl string }{
		{"twin.spend_total >= 1000.0 && twin.purchases_90d > 3", "{{ twin.spend_total }}"},
		{"'member' in twin.segments", "Hi {{ twin.name }}, {{ now + days(2) }}"},
		{"days_since(twin.last_seen) > 30.0", "{{ days_between(twin.first_purchase, now) }}"},
		{"now - twin.last_seen > days(1e300)", "{{ [twin.top_categories, twin.tags, twin.segments] }}"},
		{"event.amount > twin.avg_basket * 2.0", "{{ {'a': event.amount, 'b': [event.time]} }}"},
		{"dyn(twin).spend_total > 1", "{{ dyn(twin) }}"},
		{"twin.spend_total >", "{{ twin.spend_total"},
		{"has(twin.name) ? twin.name.size() > 3 : false", "{{ }}{{ 1 }}}}"},
		{"int(twin.spend_total) / 0 == 1", "{{ int(twin.spend_total) / 0 }}"},
		{"event.shipped_at - event.time < duration('48h')", "{{ hours(event.quantity) }}"},
	} {
		f.Add(c.when, c.tmpl)
	}
	f.Fuzz(func(t *testing.T, when, tmpl string) {
		src := exprBase + "segments:\n  member: twin.spend_total > 0.0\n  fuzzed: " + strconv.Quote(when) + "\n" +
			"rules:\n  fuzzed:\n    on: [purchase, enter:member]\n    when: " + strconv.Quote(when) + "\n" +
			"    do:\n      - {kind: alert, name: a, payload: {v: " + strconv.Quote(tmpl) + "}}\n" +
			"      - {kind: set, attribute: name, value: " + strconv.Quote(tmpl) + "}\n"
		lines := strings.Count(src, "\n") + 1
		s, err := Parse([]byte(src))
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse error %T, want *ValidationError", err)
			}
			for _, p := range ve.Problems {
				if p.Line < 1 || p.Line > lines || p.Column < 1 {
					t.Fatalf("problem outside the document (%d lines): %s", lines, p)
				}
			}
			return
		}
		purchase, _ := s.EventType("purchase")
		member, _ := s.Segment("member")
		r, _ := s.Rule("fuzzed")
		seg, _ := s.Segment("fuzzed")
		rng := rand.New(rand.NewPCG(uint64(len(when)), uint64(len(tmpl))))
		for range 4 {
			tw := randomTwin(rng, s)
			now := testNow.UnixNano()
			seg.Match(tw, now)
			for _, c := range []*Cause{{Type: purchase, Event: randomPurchase(rng, purchase)}, {Segment: member, Enter: true}, nil} {
				r.Holds(tw, c, now)
				r.Reads(tw, c, now)
				for _, a := range r.Actions {
					a.Payload(tw, c, now)
					a.Value(tw, c, now)
				}
			}
		}
	})
}
