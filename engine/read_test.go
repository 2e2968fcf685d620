package engine_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/engine"
	"github.com/twinhub/twinhub/schema"
)

func TestTimelineAcrossRunsAndBuffer(t *testing.T) {
	dir := t.TempDir()
	// A run of 8 entries: most of the 30 events are in written runs, the
	// last few still buffered.
	opts := engine.Options{TimelineRun: 8, Shards: 1}
	h := openHarness(t, dir, opts)
	var want []string
	for i := range 30 {
		// Out of order in event time: every third event is late.
		at := testNow.Add(-time.Duration(30-i) * time.Hour)
		if i%3 == 0 {
			at = at.Add(-100 * time.Hour)
		}
		id := fmt.Sprintf("e-%d", i)
		h.ingest(purchase(id, "c-1", at, 1), purchase("o-"+id, "c-2", at, 1))
		want = append(want, at.Format(time.RFC3339)+" "+id)
	}
	slices.Sort(want)
	check := func(when string) {
		t.Helper()
		recs, err := h.e.Timeline("c-1", time.Time{}, testNow.Add(time.Hour), 1000)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range recs {
			if r.Key != "c-1" {
				t.Fatalf("%s: timeline of c-1 holds an event of %s", when, r.Key)
			}
			id := string(r.Raw[strings.Index(string(r.Raw), `"id":"`)+6:])
			id = id[:strings.IndexByte(id, '"')]
			got = append(got, time.Unix(0, r.Time).UTC().Format(time.RFC3339)+" "+id)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: timeline =\n%v\nwant\n%v", when, got, want)
		}
		// A window and a limit.
		from, to := testNow.Add(-20*time.Hour), testNow.Add(-10*time.Hour)
		recs, err = h.e.Timeline("c-1", from, to, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 3 {
			t.Fatalf("%s: limited timeline has %d events, want 3", when, len(recs))
		}
		for i, r := range recs {
			if r.Time < from.UnixNano() || r.Time >= to.UnixNano() || (i > 0 && r.Time < recs[i-1].Time) {
				t.Errorf("%s: event %d at %v outside [%v, %v) or out of order", when, i, time.Unix(0, r.Time).UTC(), from, to)
			}
		}
	}
	check("live")
	h.close()
	h = openHarness(t, dir, opts)
	check("after restart")
	keys, err := h.e.Keys("", 10)
	if err != nil || !slices.Equal(keys, []string{"c-1", "c-2"}) {
		t.Errorf("Keys = %v, %v; want [c-1 c-2]", keys, err)
	}
	keys, _ = h.e.Keys("c-1", 10)
	if !slices.Equal(keys, []string{"c-2"}) {
		t.Errorf("Keys after c-1 = %v, want [c-2]", keys)
	}
	h.close()
}

func TestSchemaSwapBackfills(t *testing.T) {
	h := openHarness(t, t.TempDir(), engine.Options{})
	defer h.close()
	h.ingest(purchase("e-1", "c-1", testNow.Add(-time.Hour), 10), purchase("e-2", "c-1", testNow.Add(-2*time.Hour), 32))

	bad := strings.Replace(string(schema.DefaultYAML()), "aggregates:", "aggregates:\n  broken: {kind: sum, on: purchase, field: amount, where: \"event.amount >\"}", 1)
	if _, _, err := h.e.SetSchema([]byte(bad)); twinhub.ErrorCode(err) != twinhub.EINVALID || !strings.Contains(err.Error(), "line") {
		t.Fatalf("SetSchema(bad) = %v, want an EINVALID error naming the line", err)
	}
	if v := h.e.Schema().Version; v != 1 {
		t.Fatalf("after a rejected schema the version is %d, want 1", v)
	}

	good := strings.Replace(string(schema.DefaultYAML()), "aggregates:", "aggregates:\n  big_spend: {kind: sum, on: purchase, field: amount, where: \"event.amount > 20\"}", 1)
	sc, rep, err := h.e.SetSchema([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Version != 2 || rep.Replayed != 2 {
		t.Errorf("swap: version %d, replayed %d; want 2, 2", sc.Version, rep.Replayed)
	}
	v := h.twin("c-1")
	if got := v.Aggregates["big_spend"]; got != 32.0 {
		t.Errorf("backfilled big_spend = %v, want 32", got)
	}
	if got := v.Aggregates["spend_total"]; got != 42.0 {
		t.Errorf("spend_total after swap = %v, want 42 (not double-counted)", got)
	}
	// New events count once under the new version, and old ids stay known.
	res := h.ingest(purchase("e-3", "c-1", testNow, 50), purchase("e-1", "c-1", testNow.Add(-time.Hour), 10))
	if res[0].Status != twinhub.Accepted || res[1].Status != twinhub.Duplicate {
		t.Errorf("after swap: %v %v, want accepted, duplicate", res[0].Status, res[1].Status)
	}
	if got := h.twin("c-1").Aggregates["big_spend"]; got != 82.0 {
		t.Errorf("big_spend = %v, want 82", got)
	}
}

// TestEventClock replays history from 1997: with the engine's clock at the
// newest event time, windows are relative to the data, not to today.
func TestEventClock(t *testing.T) {
	old := time.Date(1997, 6, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		eventClock bool
		want30d    float64
	}{
		{"event clock: windows follow the data", true, 15},
		{"wall clock: 1997 is outside every window", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := openHarness(t, t.TempDir(), engine.Options{EventClock: tc.eventClock})
			defer h.close()
			h.ingest(
				purchase("e-1", "c-1", old.Add(-60*24*time.Hour), 100), // 60 days before the newest: out of 30d
				purchase("e-2", "c-1", old.Add(-2*24*time.Hour), 10),
				purchase("e-3", "c-1", old, 5),
			)
			v := h.twin("c-1")
			if got := v.Aggregates["spend_30d"]; got != tc.want30d {
				t.Errorf("spend_30d = %v, want %v", got, tc.want30d)
			}
			if got := v.Aggregates["spend_total"]; got != 115.0 {
				t.Errorf("spend_total = %v, want 115", got)
			}
			if tc.eventClock && !h.e.Now().Equal(old) {
				t.Errorf("engine clock = %v, want the newest event time %v", h.e.Now(), old)
			}
		})
	}
}
