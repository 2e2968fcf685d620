package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/engine"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/store/pebble"
)

var testNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

type harness struct {
	tb  testing.TB
	dir string
	db  *pebble.DB
	e   *engine.Engine
	now time.Time
}

func openHarness(tb testing.TB, dir string, opts engine.Options) *harness {
	tb.Helper()
	h := &harness{tb: tb, dir: dir, now: testNow}
	db, err := pebble.Open(dir, pebble.Options{CacheSize: 16 << 20, MemTableSize: 8 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	opts.Store = db
	if opts.Now == nil {
		opts.Now = func() time.Time { return h.now }
	}
	e, err := engine.Open(opts)
	if err != nil {
		db.Close()
		tb.Fatal(err)
	}
	h.db, h.e = db, e
	return h
}

func (h *harness) close() {
	h.tb.Helper()
	if err := h.e.Close(); err != nil {
		h.tb.Fatal(err)
	}
	if err := h.db.Close(); err != nil {
		h.tb.Fatal(err)
	}
}

// ingest posts NDJSON lines and returns the per-record statuses.
func (h *harness) ingest(lines ...string) []twinhub.Result {
	h.tb.Helper()
	sc := h.e.Schema()
	dec := ingest.NewDecoder(sc, func() time.Time { return h.now }, "test")
	var b ingest.Batch
	dec.DecodeNDJSON([]byte(strings.Join(lines, "\n")), &b)
	if err := h.e.Ingest(context.Background(), &b, sc); err != nil {
		h.tb.Fatal(err)
	}
	return b.Results
}

func (h *harness) twin(key string) *engine.View {
	h.tb.Helper()
	v, err := h.e.Twin(key)
	if err != nil {
		h.tb.Fatalf("Twin(%s): %v", key, err)
	}
	return v
}

func purchase(id, key string, at time.Time, amount float64) string {
	return fmt.Sprintf(`{"id":%q,"type":"purchase","customer_id":%q,"time":%q,"amount":%v,"product_id":"p-1","category":"shoes"}`,
		id, key, at.Format(time.RFC3339Nano), amount)
}

func TestIngestAndRead(t *testing.T) {
	h := openHarness(t, t.TempDir(), engine.Options{})
	defer h.close()
	res := h.ingest(
		purchase("e-1", "c-1", testNow.Add(-time.Hour), 59.9),
		purchase("e-2", "c-1", testNow.Add(-40*24*time.Hour), 60),
		`{"id":"e-3","type":"profile","customer_id":"c-1","time":"2026-11-19T00:00:00Z","name":"Ada","tier":"gold"}`,
		purchase("e-1", "c-1", testNow.Add(-time.Hour), 59.9), // retry
		`{"id":"e-4","type":"purchase","customer_id":"c-1","amount":"12"}`,
	)
	want := []twinhub.Status{twinhub.Accepted, twinhub.Accepted, twinhub.Accepted, twinhub.Duplicate, twinhub.Rejected}
	for i, w := range want {
		if res[i].Status != w {
			t.Errorf("record %d: status %v (%s %s), want %v", i, res[i].Status, res[i].Field, res[i].Reason, w)
		}
	}
	v := h.twin("c-1")
	checks := map[string]any{
		"purchases_total": int64(2), "spend_total": 119.9, "spend_30d": 59.9, "events_total": int64(3),
	}
	for name, w := range checks {
		if got := v.Aggregates[name]; got != w {
			t.Errorf("%s = %v (%T), want %v", name, got, got, w)
		}
	}
	if a := v.Attributes["name"]; a.Value != "Ada" || a.EventID != "e-3" || a.Source != "test" {
		t.Errorf("attribute name = %+v, want Ada from e-3 via test", a)
	}
	if v.Revision != 3 {
		t.Errorf("revision = %d, want 3", v.Revision)
	}
}

func TestRestartRecoversExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	h := openHarness(t, dir, engine.Options{})
	for i := range 100 {
		h.ingest(purchase(fmt.Sprintf("e-%d", i), fmt.Sprintf("c-%d", i%7), testNow.Add(-time.Duration(i)*time.Hour), 10))
	}
	h.close()
	h = openHarness(t, dir, engine.Options{})
	res := h.ingest(purchase("e-5", "c-5", testNow.Add(-5*time.Hour), 10))
	if res[0].Status != twinhub.Duplicate {
		t.Errorf("retry after restart: %v, want duplicate", res[0].Status)
	}
	total := int64(0)
	for k := range 7 {
		total += h.twin(fmt.Sprintf("c-%d", k)).Aggregates["purchases_total"].(int64)
	}
	if total != 100 {
		t.Errorf("purchases after restart = %d, want 100", total)
	}
	h.close()
}
