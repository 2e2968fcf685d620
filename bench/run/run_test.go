package run_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twinhub/twinhub/bench/run"
	"github.com/twinhub/twinhub/bench/workload"
)

// lines generates n workload events as separate lines.
func lines(tb testing.TB, n, customers int) [][]byte {
	tb.Helper()
	g := workload.New(workload.Options{Events: n, Customers: customers, Now: time.Now().UTC()})
	var out [][]byte
	for {
		l, ok := g.Next(nil)
		if !ok {
			return out
		}
		out = append(out, l)
	}
}

func TestRun(t *testing.T) {
	const events = 20_000
	ls := lines(t, events, 2_000)
	for _, target := range []string{run.TargetInProcess, run.TargetHTTP} {
		t.Run(target, func(t *testing.T) {
			rep, err := run.Run(context.Background(), run.Options{
				Target: target, Lines: ls, Connections: 3, Batch: 500, Readers: 2, DataDir: t.TempDir(),
			})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Events != events || rep.Accepted != events || rep.Duplicates != 0 || rep.Rejected != 0 {
				t.Errorf("events %d accepted %d duplicates %d rejected %d; want %d accepted", rep.Events, rep.Accepted, rep.Duplicates, rep.Rejected, events)
			}
			if rep.Elapsed <= 0 || rep.EventsPerSec <= 0 {
				t.Errorf("elapsed %v, %v events/s; want both positive", rep.Elapsed, rep.EventsPerSec)
			}
			if rep.AckP50 <= 0 || rep.AckP99 < rep.AckP50 || rep.AckP999 < rep.AckP99 {
				t.Errorf("ack p50 %v p99 %v p99.9 %v; want positive and ordered", rep.AckP50, rep.AckP99, rep.AckP999)
			}
			if rep.Reads == 0 || rep.ReadP50 <= 0 || rep.ReadP999 < rep.ReadP50 {
				t.Errorf("reads %d p50 %v p99.9 %v; want reads with positive latencies", rep.Reads, rep.ReadP50, rep.ReadP999)
			}
			if rep.ReadErrors != 0 {
				t.Errorf("%d reads failed", rep.ReadErrors)
			}
			if target == run.TargetInProcess && (rep.Twins == 0 || rep.Twins > 2_000 || rep.HeapPerTwin <= 0) {
				t.Errorf("twins %d heap/twin %v; want 1..2000 twins and a positive heap", rep.Twins, rep.HeapPerTwin)
			}
			s := rep.String()
			if !strings.HasPrefix(s, "events 20,000 in ") || !strings.Contains(s, "accepted 20,000 duplicates 0 rejected 0") {
				t.Errorf("String() = %q", s)
			}
			t.Log(s)
		})
	}
}

func TestRunSameEventsTwiceAreDuplicates(t *testing.T) {
	ls := lines(t, 2_000, 100)
	dir := t.TempDir()
	for i, want := range []struct{ accepted, duplicates int }{{2_000, 0}, {0, 2_000}} {
		rep, err := run.Run(context.Background(), run.Options{Lines: ls, DataDir: dir, Batch: 100})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Accepted != want.accepted || rep.Duplicates != want.duplicates {
			t.Errorf("run %d: accepted %d duplicates %d; want %d and %d", i+1, rep.Accepted, rep.Duplicates, want.accepted, want.duplicates)
		}
	}
}

func TestRunRate(t *testing.T) {
	ls := lines(t, 3_000, 100)
	rep, err := run.Run(context.Background(), run.Options{Lines: ls, Batch: 100, Rate: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	// 3000 events at 10k/s: the first batch goes at once, the last 2900 events
	// take 290ms.
	if rep.Elapsed < 280*time.Millisecond || rep.EventsPerSec > 11_000 {
		t.Errorf("at --rate 10000: %d events in %v (%.0f/s); want at least 280ms", rep.Events, rep.Elapsed, rep.EventsPerSec)
	}
}

func TestReportString(t *testing.T) {
	r := run.Report{
		Events: 1_000_000, Elapsed: 1520 * time.Millisecond, EventsPerSec: 657_894.7,
		AckP50: 1240 * time.Microsecond, AckP99: 8100 * time.Microsecond, AckP999: 15 * time.Millisecond,
		Reads: 12_345, ReadP50: 40 * time.Microsecond, ReadP99: 300 * time.Microsecond, ReadP999: 900 * time.Microsecond,
		Accepted: 1_000_000, HeapPerTwin: 512.2, Twins: 100_000,
	}
	want := "events 1,000,000 in 1.52s: 657,895 events/s; ack p50 1.2ms p99 8.1ms p99.9 15ms; " +
		"reads 12,345 p50 40µs p99 300µs p99.9 900µs; accepted 1,000,000 duplicates 0 rejected 0; heap/twin 512 B (100,000 twins)"
	if got := r.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
}

func TestMedian(t *testing.T) {
	reps := []run.Report{
		{Events: 10, EventsPerSec: 300, AckP99: 9 * time.Millisecond, CPUPerEvent: 3 * time.Microsecond, Accepted: 10},
		{Events: 10, EventsPerSec: 100, AckP99: 1 * time.Millisecond, CPUPerEvent: 9 * time.Microsecond, Accepted: 10},
		{Events: 10, EventsPerSec: 200, AckP99: 5 * time.Millisecond, CPUPerEvent: 4 * time.Microsecond, Accepted: 10},
	}
	m := run.Median(reps)
	if m.EventsPerSec != 200 || m.AckP99 != 5*time.Millisecond || m.CPUPerEvent != 4*time.Microsecond || m.Accepted != 10 {
		t.Errorf("Median = %+v, want 200 events/s, ack p99 5ms, cpu/event 4µs, 10 accepted", m)
	}
	if got := run.Median(reps[:2]).EventsPerSec; got != 300 {
		t.Errorf("Median of two: %v events/s, want the upper middle 300", got)
	}
}
