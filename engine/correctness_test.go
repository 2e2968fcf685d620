package engine_test

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/agg"
	"github.com/twinhub/twinhub/bench/workload"
	"github.com/twinhub/twinhub/engine"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/schema"
)

// TestAggregatesMatchReference drives the standard workload through the
// engine with a memory budget so small that twins are evicted and reloaded
// all the time and a replay lag that forces incremental checkpoints, restarts
// it midway, and compares every twin with the independent reference model.
func TestAggregatesMatchReference(t *testing.T) {
	opts := workload.Options{Events: 40_000, Customers: 2_000, Seed: 7, Now: testNow}
	if testing.Short() {
		opts.Events = 8_000
	}
	eopts := engine.Options{MemoryBudget: 256 << 10, ReplayLag: 2_000, MaxBatch: 512}
	dir := t.TempDir()
	h := openHarness(t, dir, eopts)
	ref := workload.NewReference()
	gen := workload.New(opts)
	sc := h.e.Schema()
	dec := ingest.NewDecoder(sc, func() time.Time { return testNow }, "bench")
	var b ingest.Batch
	var line []byte
	sent := 0
	for {
		var ok bool
		line, ok = gen.Next(line[:0])
		if ok {
			if err := ref.Add(line); err != nil {
				t.Fatal(err)
			}
			dec.Decode(bytes.TrimSpace(line), &b)
			sent++
		}
		if len(b.Results) == 1000 || (!ok && len(b.Results) > 0) {
			if err := h.e.Ingest(context.Background(), &b, sc); err != nil {
				t.Fatal(err)
			}
			if a, d, r := b.Counts(); a != len(b.Results) {
				t.Fatalf("batch: %d accepted, %d duplicate, %d rejected (first: %+v)", a, d, r, firstBad(b.Results))
			}
			b.Reset()
		}
		if sent == opts.Events/2 && ok {
			h.close() // restart halfway
			h = openHarness(t, dir, eopts)
			sc = h.e.Schema()
			dec = ingest.NewDecoder(sc, func() time.Time { return testNow }, "bench")
		}
		if !ok {
			break
		}
	}
	st := h.e.Stats()
	if st.HotTwins >= st.Twins {
		t.Errorf("hot twins %d of %d: the budget never evicted, the test exercises nothing cold", st.HotTwins, st.Twins)
	}
	compareAll(t, h.e, ref)
	h.close()
	h = openHarness(t, dir, eopts)
	compareAll(t, h.e, ref)
	// Activating the same schema again rebuilds every twin from the archive.
	if _, _, err := h.e.SetSchema(schema.DefaultYAML()); err != nil {
		t.Fatal(err)
	}
	compareAll(t, h.e, ref)
	h.close()
}

func firstBad(rs []twinhub.Result) twinhub.Result {
	for _, r := range rs {
		if r.Status != twinhub.Accepted {
			return r
		}
	}
	return twinhub.Result{}
}

func compareAll(t *testing.T, e *engine.Engine, ref *workload.Reference) {
	t.Helper()
	bad := 0
	for _, key := range ref.Customers() {
		v, err := e.Twin(key)
		if err != nil {
			t.Fatalf("Twin(%s): %v", key, err)
		}
		want := ref.Aggregates(key, testNow)
		for name, w := range want {
			var got any
			if len(name) > 5 && name[:5] == "attr." {
				got = v.Attributes[name[5:]].Value
			} else {
				got = v.Aggregates[name]
			}
			if !sameValue(name, got, w) {
				bad++
				if bad <= 20 {
					t.Errorf("twin %s: %s = %v (%T), want %v (%T)", key, name, got, got, w, w)
				}
			}
		}
	}
	if bad > 20 {
		t.Errorf("... %d mismatches in all", bad)
	}
}

func sameValue(name string, got, want any) bool {
	switch w := want.(type) {
	case nil:
		return got == nil
	case int64:
		g, ok := got.(int64)
		return ok && g == w
	case float64:
		g, ok := got.(float64)
		return ok && math.Abs(g-w) <= 1e-9*math.Max(1, math.Abs(w))
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Equal(w)
	case string:
		g, ok := got.(string)
		return ok && g == w
	case []workload.TopCount:
		g, ok := got.([]agg.TopEntry)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if g[i].Value != w[i].Value || int64(g[i].Count) != w[i].Count {
				return false
			}
		}
		return true
	}
	return false
}
