package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/agg"
	"github.com/twinhub/twinhub/engine"
	"github.com/twinhub/twinhub/schema"
	"github.com/twinhub/twinhub/store/pebble"
)

// change is a profile event of twin key, as change data capture sends it:
// fields is the JSON members after the common ones ("email":null clears
// email); pos 0 sends no position.
func change(id, key string, pos int64, at time.Time, fields string) string {
	p := ""
	if pos != 0 {
		p = fmt.Sprintf(`"position":%d,`, pos)
	}
	return fmt.Sprintf(`{"id":%q,"type":"profile","customer_id":%q,"time":%q,%s%s}`, id, key, at.Format(time.RFC3339Nano), p, fields)
}

// lineage is what a test expects of one attribute: its value (nil when
// cleared), the event that wrote it and that event's position.
type lineage struct {
	Value    any
	EventID  string
	Position int64
}

func lineages(v *engine.View, names ...string) map[string]lineage {
	out := map[string]lineage{}
	for _, n := range names {
		if a, ok := v.Attributes[n]; ok {
			out[n] = lineage{a.Value, a.EventID, a.Position}
		}
	}
	return out
}

// cdcBase is the event time the change streams below are relative to.
var cdcBase = testNow.Add(-10 * time.Hour)

// cdcSteps is one twin's change stream in arrival order, with the email,
// tier and country it must leave after each event. Event times deliberately
// disagree with positions: where both events have a position, it decides.
var cdcSteps = []struct {
	name  string
	event string
	want  map[string]lineage
}{
	{"update at position 5 sets", change("u5", "c-1", 5, cdcBase.Add(time.Hour), `"email":"a5@x","tier":"gold"`),
		map[string]lineage{"email": {"a5@x", "u5", 5}, "tier": {"gold", "u5", 5}}},
	{"an older position arriving later, with a later time, is ignored", change("u3", "c-1", 3, cdcBase.Add(2*time.Hour), `"email":"a3@x"`),
		map[string]lineage{"email": {"a5@x", "u5", 5}, "tier": {"gold", "u5", 5}}},
	{"a delete at position 7, with an earlier time, clears", change("d7", "c-1", 7, cdcBase, `"email":null,"tier":null`),
		map[string]lineage{"email": {nil, "d7", 7}, "tier": {nil, "d7", 7}}},
	{"an update at position 6 arriving after the delete does not resurrect", change("u6", "c-1", 6, cdcBase.Add(3*time.Hour), `"email":"a6@x","tier":"silver"`),
		map[string]lineage{"email": {nil, "d7", 7}, "tier": {nil, "d7", 7}}},
	{"an update at position 8 sets again; absent fields stay cleared", change("u8", "c-1", 8, cdcBase.Add(-time.Hour), `"email":"a8@x"`),
		map[string]lineage{"email": {"a8@x", "u8", 8}, "tier": {nil, "d7", 7}}},
	{"without a position an older event time loses", change("t1", "c-1", 0, cdcBase.Add(-2*time.Hour), `"email":"t1@x"`),
		map[string]lineage{"email": {"a8@x", "u8", 8}, "tier": {nil, "d7", 7}}},
	{"without a position an equal event time wins (later arrival)", change("t2", "c-1", 0, cdcBase.Add(-time.Hour), `"email":"t2@x"`),
		map[string]lineage{"email": {"t2@x", "t2", 0}, "tier": {nil, "d7", 7}}},
	{"a position against none falls back to time: older loses", change("u99", "c-1", 99, cdcBase.Add(-3*time.Hour), `"email":"u99@x"`),
		map[string]lineage{"email": {"t2@x", "t2", 0}, "tier": {nil, "d7", 7}}},
	{"set at position 9", change("c9a", "c-1", 9, cdcBase, `"country":"DE"`),
		map[string]lineage{"email": {"t2@x", "t2", 0}, "tier": {nil, "d7", 7}, "country": {"DE", "c9a", 9}}},
	{"equal position: an earlier time loses", change("c9b", "c-1", 9, cdcBase.Add(-time.Minute), `"country":"FR"`),
		map[string]lineage{"email": {"t2@x", "t2", 0}, "tier": {nil, "d7", 7}, "country": {"DE", "c9a", 9}}},
	{"equal position and time: the later arrival wins", change("c9c", "c-1", 9, cdcBase, `"country":"AT"`),
		map[string]lineage{"email": {"t2@x", "t2", 0}, "tier": {nil, "d7", 7}, "country": {"AT", "c9c", 9}}},
}

// cdcOthers are events of other twins: a delete that arrives before the
// insert it follows (the twin's first event clears), and purchases with a
// null category, which aggregates must ignore as if it were absent.
var cdcOthers = []string{
	change("d10", "c-2", 10, cdcBase, `"email":null`),
	change("u9", "c-2", 9, cdcBase.Add(time.Hour), `"email":"late@x","name":"Late"`),
	`{"id":"b-1","type":"purchase","customer_id":"c-3","time":"2026-11-20T09:00:00Z","amount":10,"product_id":"p-1","category":"shoes"}`,
	`{"id":"b-2","type":"purchase","customer_id":"c-3","time":"2026-11-20T10:00:00Z","amount":5,"product_id":"p-2","category":null,"channel":null}`,
}

func ingestOne(t *testing.T, h *harness, event string) {
	t.Helper()
	if res := h.ingest(event); res[0].Status != twinhub.Accepted {
		t.Fatalf("ingest %s: %v %s %s", event, res[0].Status, res[0].Field, res[0].Reason)
	}
}

// TestAttributesFollowPositions runs one twin's change stream event by
// event, checking the attributes after each.
func TestAttributesFollowPositions(t *testing.T) {
	h := openHarness(t, t.TempDir(), engine.Options{})
	defer h.close()
	for _, st := range cdcSteps {
		ingestOne(t, h, st.event)
		got := lineages(h.twin("c-1"), "email", "tier", "country", "name")
		if d := cmp.Diff(st.want, got); d != "" {
			t.Fatalf("after %s: attributes differ (-want +got):\n%s", st.name, d)
		}
	}
	for _, ev := range cdcOthers {
		ingestOne(t, h, ev)
	}
	c2 := lineages(h.twin("c-2"), "email", "name")
	if d := cmp.Diff(map[string]lineage{"email": {nil, "d10", 10}, "name": {"Late", "u9", 9}}, c2); d != "" {
		t.Errorf("c-2, deleted before its insert arrived (-want +got):\n%s", d)
	}
	checkNullIgnoredByAggregates(t, h.twin("c-3"))
}

func checkNullIgnoredByAggregates(t *testing.T, v *engine.View) {
	t.Helper()
	top, _ := v.Aggregates["top_categories"].([]agg.TopEntry)
	if len(top) != 1 || top[0].Value != "shoes" || top[0].Count != 1 {
		t.Errorf("top_categories = %v, want only shoes once (a null category is no category)", v.Aggregates["top_categories"])
	}
	if got := v.Aggregates["spend_total"]; got != 15.0 {
		t.Errorf("spend_total = %v, want 15 (the event with nulls still counts)", got)
	}
}

// TestAttributesSurviveRestartAndRebuild: the same change streams leave the
// same attributes, lineage included, when read back from snapshots after a
// restart, after a schema swap rebuilds every twin from the archive, and
// after a recovery that replays the whole archive.
func TestAttributesSurviveRestartAndRebuild(t *testing.T) {
	dir := t.TempDir()
	opts := engine.Options{Shards: 1}
	h := openHarness(t, dir, opts)
	for _, st := range cdcSteps {
		ingestOne(t, h, st.event)
	}
	for _, ev := range cdcOthers {
		ingestOne(t, h, ev)
	}
	keys := []string{"c-1", "c-2", "c-3"}
	snapshot := func() map[string]map[string]engine.AttributeView {
		out := map[string]map[string]engine.AttributeView{}
		for _, k := range keys {
			out[k] = h.twin(k).Attributes
		}
		return out
	}
	want := snapshot()
	if d := cmp.Diff(cdcSteps[len(cdcSteps)-1].want, lineages(h.twin("c-1"), "email", "tier", "country", "name")); d != "" {
		t.Fatalf("before restarting (-want +got):\n%s", d)
	}
	check := func(when string) {
		t.Helper()
		if d := cmp.Diff(want, snapshot()); d != "" {
			t.Errorf("%s: attributes differ (-before +after):\n%s", when, d)
		}
		checkNullIgnoredByAggregates(t, h.twin("c-3"))
	}

	h.close()
	h = openHarness(t, dir, opts)
	check("after a restart (from snapshots)")
	// The tombstone must still hold against an old update after the restart.
	ingestOne(t, h, change("u6b", "c-1", 6, cdcBase.Add(4*time.Hour), `"tier":"bronze"`))
	check("after an older update once restarted")

	src := strings.Replace(string(schema.DefaultYAML()), "aggregates:", "aggregates:\n  profile_changes: {kind: count, on: profile}", 1)
	if _, rep, err := h.e.SetSchema([]byte(src)); err != nil || rep.Invalid != 0 {
		t.Fatalf("SetSchema: %v, %+v", err, rep)
	}
	check("after a schema swap (rebuilt from the archive)")
	h.close()

	// Drop everything derived from the archive, as Open does after a power
	// loss, so that the next Open replays the whole archive.
	db, err := pebble.Open(dir, pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.ResetDerived(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	h = openHarness(t, dir, opts)
	defer h.close()
	check("after a recovery replaying the whole archive")
}

// TestAttributeFromEventTime: an attribute may be set from an event's time
// rather than a declared field.
func TestAttributeFromEventTime(t *testing.T) {
	h := openHarness(t, t.TempDir(), engine.Options{})
	defer h.close()
	src := strings.Replace(string(schema.DefaultYAML()), "attributes:", "attributes:\n  last_purchase_at: {from: purchase.time}", 1)
	if _, _, err := h.e.SetSchema([]byte(src)); err != nil {
		t.Fatal(err)
	}
	at := testNow.Add(-time.Hour)
	ingestOne(t, h, purchase("e-1", "c-1", at, 1))
	ingestOne(t, h, purchase("e-2", "c-1", at.Add(-time.Hour), 1)) // older: loses
	a := h.twin("c-1").Attributes["last_purchase_at"]
	if a.Value != at.Format(time.RFC3339Nano) || a.EventID != "e-1" {
		t.Errorf("last_purchase_at = %+v, want %s from e-1", a, at.Format(time.RFC3339Nano))
	}
}
