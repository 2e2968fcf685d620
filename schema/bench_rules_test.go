package schema

import (
	"os"
	"testing"
	"time"

	"github.com/twinhub/twinhub"
)

func BenchmarkSegmentMatch(b *testing.B) {
	s := parseFile(b, "testdata/rules.yaml")
	now := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	tw := newFakeTwin(s, "c-1").
		with(b, s, "spend_total", 1500.0).with(b, s, "purchases_90d", 5.0).
		with(b, s, "complaints_7d", 1.0).with(b, s, "vip", true).
		with(b, s, "last_seen", float64(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).UnixMicro())).
		with(b, s, "tier", twinhub.Value{Str: "gold", Type: twinhub.TypeEnum, Set: true})
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
