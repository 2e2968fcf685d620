package schema

import (
	"os"
	"testing"
)

// BenchmarkSegmentMatch measures membership tests of testdata/rules.yaml,
// which run as closures; loyal/cel runs loyal's predicate in CEL instead,
// as expressions of other shapes run.
func BenchmarkSegmentMatch(b *testing.B) {
	s := parseFile(b, "testdata/rules.yaml")
	now := testNow.UnixNano()
	tw := newFakeTwin(s, "c-1").
		with(b, s, "spend_total", 1500.0).with(b, s, "purchases_90d", 5.0).
		with(b, s, "complaints_7d", 1.0).with(b, s, "vip", true).
		with(b, s, "last_seen", micros(testNow.AddDate(0, -1, 0))).
		with(b, s, "tier", enum("gold"))
	for _, name := range []string{"loyal", "vip", "at_risk", "gold", "quiet"} {
		seg, _ := s.Segment(name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !seg.Match(tw, now) {
					b.Fatal("no match")
				}
			}
		})
	}
	// The same predicate as loyal, run by CEL.
	seg, _ := s.Segment("loyal")
	prg, _, kind := seg.cond.pick(nil)
	b.Run("loyal/cel", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if seg.cond.celHolds(prg, tw, nil, kind, now) != triTrue {
				b.Fatal("no match")
			}
		}
	})
}

func BenchmarkRuleHolds(b *testing.B) {
	s := parseFile(b, "testdata/rules.yaml")
	now := testNow.UnixNano()
	tw := newFakeTwin(s, "c-1").with(b, s, "at_risk", true).with(b, s, "spend_total", 600.0).
		with(b, s, "tier", enum("gold"))
	cases := []struct {
		rule  string
		cause *Cause
	}{
		{"winback_offer", complaintCause(b, s, "late")},        // segment membership and a twin field
		{"level_up", purchaseCause(b, s, 150)},                 // an event field
		{"goodbye_vip", segmentCause(b, s, "vip", false, nil)}, // segment change fields, in CEL
	}
	for _, c := range cases {
		r, _ := s.Rule(c.rule)
		b.Run(c.rule, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !r.Holds(tw, c.cause, now) {
					b.Fatal("does not hold")
				}
			}
		})
	}
}

func BenchmarkActionPayload(b *testing.B) {
	s := parseFile(b, "testdata/rules.yaml")
	now := testNow.UnixNano()
	tw := newFakeTwin(s, "c-1").with(b, s, "spend_total", 600.5).with(b, s, "purchases_90d", 3.0).with(b, s, "name", str("Ada"))
	r, _ := s.Rule("winback_offer")
	c := complaintCause(b, s, "late")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Actions[0].Payload(tw, c, now); err != nil {
			b.Fatal(err)
		}
	}
}

func parseFile(tb testing.TB, file string) *Schema {
	tb.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := Parse(src)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
