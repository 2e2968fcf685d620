package schema

import (
	"slices"
	"testing"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/agg"
)

// fakeTwin is a twin as TwinVars, held in slices. It stands in for the
// engine's twin state: these tests are about the expression layer, and
// aggregates come as the values they evaluate to.
type fakeTwin struct {
	key   string
	rev   uint64
	attrs []twinhub.Value
	nums  []float64
	set   []bool // nums[i] has a value
	tops  [][]agg.TopEntry
	segs  []bool
	tags  []string
}

func newFakeTwin(s *Schema, key string) *fakeTwin {
	return &fakeTwin{key: key, rev: 1,
		attrs: make([]twinhub.Value, len(s.Attributes)),
		nums:  make([]float64, len(s.Aggregates)), set: make([]bool, len(s.Aggregates)),
		tops: make([][]agg.TopEntry, len(s.Aggregates)), segs: make([]bool, len(s.Segments))}
}

func (f *fakeTwin) Key() string                          { return f.key }
func (f *fakeTwin) Revision() uint64                     { return f.rev }
func (f *fakeTwin) Attr(i int) twinhub.Value             { return f.attrs[i] }
func (f *fakeTwin) InSegment(i int) bool                 { return f.segs[i] }
func (f *fakeTwin) Tags() []string                       { return f.tags }
func (f *fakeTwin) AggTop(i int, _ int64) []agg.TopEntry { return f.tops[i] }
func (f *fakeTwin) AggNum(i int, _ int64) (float64, bool) {
	return f.nums[i], f.set[i]
}

// with sets aggregate or attribute name (an attribute takes a
// twinhub.Value, a top-k aggregate a []string, others a float64), or
// segment membership ("segment:vip") and returns f.
func (f *fakeTwin) with(tb testing.TB, s *Schema, name string, v any) *fakeTwin {
	tb.Helper()
	if seg, ok := s.Segment(name); ok {
		f.segs[seg.Index] = v.(bool)
		return f
	}
	if a, ok := s.Attribute(name); ok {
		f.attrs[a.Index] = v.(twinhub.Value)
		return f
	}
	a, ok := s.Aggregate(name)
	if !ok {
		tb.Fatalf("no attribute, aggregate or segment %s", name)
	}
	if vals, ok := v.([]string); ok {
		f.tops[a.Index] = nil
		for _, s := range vals {
			f.tops[a.Index] = append(f.tops[a.Index], agg.TopEntry{Value: s, Count: 1})
		}
		return f
	}
	f.nums[a.Index], f.set[a.Index] = v.(float64), true
	return f
}

func (f *fakeTwin) tag(tags ...string) *fakeTwin {
	f.tags = slices.Sorted(slices.Values(tags))
	return f
}
