package run

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// String returns the report on one line, e.g.
//
//	events 1,000,000 in 1.52s: 657,894 events/s; ack p50 1.2ms p99 8.1ms p99.9 15ms;
//	reads 12,345 p50 40µs p99 300µs p99.9 900µs; accepted 1,000,000 duplicates 0 rejected 0;
//	heap/twin 512 B (100,000 twins)
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "events %s in %s: %s events/s; ack p50 %s p99 %s p99.9 %s",
		group(int64(r.Events)), formatDuration(r.Elapsed, 3), group(int64(math.Round(r.EventsPerSec))),
		formatDuration(r.AckP50, 2), formatDuration(r.AckP99, 2), formatDuration(r.AckP999, 2))
	if r.Reads > 0 || r.ReadErrors > 0 {
		fmt.Fprintf(&b, "; reads %s p50 %s p99 %s p99.9 %s", group(int64(r.Reads)),
			formatDuration(r.ReadP50, 2), formatDuration(r.ReadP99, 2), formatDuration(r.ReadP999, 2))
		if r.ReadErrors > 0 {
			fmt.Fprintf(&b, " (%s failed)", group(int64(r.ReadErrors)))
		}
	}
	fmt.Fprintf(&b, "; accepted %s duplicates %s rejected %s",
		group(int64(r.Accepted)), group(int64(r.Duplicates)), group(int64(r.Rejected)))
	if r.StreamOutputs > 0 {
		fmt.Fprintf(&b, "; stream %s outputs, after ack p50 %s p99 %s p99.9 %s", group(int64(r.StreamOutputs)),
			formatDuration(r.StreamP50, 2), formatDuration(r.StreamP99, 2), formatDuration(r.StreamP999, 2))
	}
	if r.Outputs > 0 {
		fmt.Fprintf(&b, "; outputs %s", group(r.Outputs))
	}
	if r.CPUPerEvent > 0 {
		fmt.Fprintf(&b, "; cpu/event %s", formatDuration(r.CPUPerEvent, 3))
	}
	if r.Twins > 0 {
		fmt.Fprintf(&b, "; heap/twin %s B (%s twins)", group(int64(math.Round(r.HeapPerTwin))), group(r.Twins))
	}
	return b.String()
}

// group formats n with commas between groups of three digits: 1,234,567.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// formatDuration formats d in the largest of s, ms, µs and ns that shows it
// as at least 1, with about sig significant digits: 1.2ms, 15ms, 1.52s.
func formatDuration(d time.Duration, sig int) string {
	units := []struct {
		name string
		size time.Duration
	}{{"s", time.Second}, {"ms", time.Millisecond}, {"µs", time.Microsecond}}
	for _, u := range units {
		if d >= u.size {
			v := float64(d) / float64(u.size)
			digits := len(strconv.FormatInt(int64(v), 10))
			return strconv.FormatFloat(v, 'f', max(0, sig-digits), 64) + u.name
		}
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}

// Median returns a report whose events/s, latencies, CPU per event and
// heap per twin are each the median of reps' (for an even count, the upper
// of the middle two), and whose counts are the first's. Repeated runs on a
// shared machine spread widely; the median is what to compare.
func Median(reps []Report) Report {
	if len(reps) == 0 {
		return Report{}
	}
	of := func(f func(Report) float64) float64 {
		v := make([]float64, len(reps))
		for i, r := range reps {
			v[i] = f(r)
		}
		return median(v)
	}
	dur := func(f func(Report) time.Duration) time.Duration {
		return time.Duration(of(func(r Report) float64 { return float64(f(r)) }))
	}
	m := reps[0]
	m.EventsPerSec = of(func(r Report) float64 { return r.EventsPerSec })
	m.HeapPerTwin = of(func(r Report) float64 { return r.HeapPerTwin })
	m.Elapsed = dur(func(r Report) time.Duration { return r.Elapsed })
	m.AckP50 = dur(func(r Report) time.Duration { return r.AckP50 })
	m.AckP99 = dur(func(r Report) time.Duration { return r.AckP99 })
	m.AckP999 = dur(func(r Report) time.Duration { return r.AckP999 })
	m.ReadP50 = dur(func(r Report) time.Duration { return r.ReadP50 })
	m.ReadP99 = dur(func(r Report) time.Duration { return r.ReadP99 })
	m.ReadP999 = dur(func(r Report) time.Duration { return r.ReadP999 })
	m.StreamP50 = dur(func(r Report) time.Duration { return r.StreamP50 })
	m.StreamP99 = dur(func(r Report) time.Duration { return r.StreamP99 })
	m.StreamP999 = dur(func(r Report) time.Duration { return r.StreamP999 })
	m.CPUPerEvent = dur(func(r Report) time.Duration { return r.CPUPerEvent })
	return m
}
