package pebble

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/engine"
)

// sampleOutputs covers every field the encoding has: each kind, an action
// with every field set, a receipt that differs from its action, values of
// every tag.
func sampleOutputs() []twinhub.Output {
	at := time.Date(2026, 11, 20, 10, 0, 0, 123456789, time.UTC)
	full := &twinhub.Action{
		Key: "c-1/2/7/0", Kind: "offer", Name: "winback", Rule: "r", Twin: "c-1", Revision: 7, Time: at,
		Payload: map[string]any{
			"n": int64(-3), "u": uint64(1 << 63), "f": 2.5, "s": "ü", "t": true, "no": false, "nil": nil,
			"list": []any{int64(1), "x", []any{}, map[string]any{"k": 1.5}}, "strs": []string{"a", ""},
			"raw": json.RawMessage(`{"a":[1,2]}`),
		},
		Status: twinhub.ActionApproved, Expires: at.Add(72 * time.Hour),
		Decision: &twinhub.Decision{By: "ana", At: at.Add(time.Hour), Note: "ok"},
		URL:      "http://127.0.0.1/hook",
		Receipt: twinhub.Receipt{SchemaVersion: 2, Rule: "other", When: "twin.x > 1", Trigger: "enter:vip", Event: "e-9",
			Twin: "c-2", Revision: 6, Time: at.Add(-time.Second), Reads: map[string]any{"twin.x": 2.0, "event.y": nil}},
	}
	plain := &twinhub.Action{Key: "c-1/2/7/1", Kind: "tag", Rule: "r", Twin: "c-1", Revision: 7, Time: at, Status: twinhub.ActionFiredStatus,
		Receipt: twinhub.Receipt{SchemaVersion: 2, Rule: "r", Trigger: "purchase", Twin: "c-1", Revision: 7, Time: at}}
	return []twinhub.Output{
		{ID: 10, Kind: twinhub.SegmentEntered, Time: at, Twin: "c-1", Revision: 7, Event: "e-1", EventType: "purchase", Segment: "vip"},
		{ID: 11, Kind: twinhub.SegmentLeft, Time: at, Twin: "c-1", Revision: 8, Segment: "lapsed_30d"},
		{ID: 12, Kind: twinhub.ActionFired, Time: at, Twin: "c-1", Revision: 7, Rule: "r", Action: full},
		{ID: 13, Kind: twinhub.ActionFired, Time: at, Twin: "c-1", Revision: 7, Event: "e-1", EventType: "purchase", Rule: "r", Action: plain},
		{ID: 14, Kind: twinhub.ActionUpdated, Time: at.Add(time.Hour), Twin: "c-1", Revision: 7, Rule: "r", Action: full},
	}
}

func TestOutputBlockRoundTrip(t *testing.T) {
	outs := sampleOutputs()
	outs[2].Action.ID, outs[3].Action.ID = 12, 13
	v, err := appendOutputBlock(nil, outs)
	if err != nil {
		t.Fatal(err)
	}
	var got []twinhub.Output
	more, err := decodeOutputBlock(10, v, 0, func(o twinhub.Output) bool { got = append(got, o); return true })
	if err != nil || !more {
		t.Fatalf("decode: more %v, err %v", more, err)
	}
	want := sampleOutputs()
	want[2].Action.ID, want[3].Action.ID = 12, 13 // the update's action is want[2]'s
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Fatalf("round trip:\n got %s\nwant %s", gj, wj)
	}
	// Reading from the middle skips the records before without decoding.
	got = got[:0]
	if _, err := decodeOutputBlock(10, v, 12, func(o twinhub.Output) bool { got = append(got, o); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != 13 || got[1].ID != 14 {
		t.Fatalf("after 12: got %d outputs from %d", len(got), got[0].ID)
	}

	a := *outs[2].Action
	av, err := appendAction([]byte{codecBinary}, &a)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeActionValue(12, av)
	if err != nil || !reflect.DeepEqual(back, a) {
		t.Fatalf("action round trip: %+v, %v", back, err)
	}
}

// The binary encoding is what makes outputs cheap to log; this pins how
// much smaller than JSON it is on the sample.
func TestOutputBlockSmallerThanJSON(t *testing.T) {
	outs := sampleOutputs()
	v, err := appendOutputBlock(nil, outs)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(outs)
	if len(v)*2 > len(j) {
		t.Errorf("block is %d bytes, JSON %d: want at most half", len(v), len(j))
	}
}

func TestOutputBlockRejectsUnknownKind(t *testing.T) {
	if _, err := appendOutputBlock(nil, []twinhub.Output{{Kind: "nonsense"}}); err == nil {
		t.Fatal("an unknown kind encoded")
	}
}

// Outputs and actions that versions before the binary encoding wrote, as
// JSON under the same keys, read back alongside blocks.
func TestOutputsReadJSONFromEarlierVersions(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	old := twinhub.Output{ID: 1, Kind: twinhub.ActionFired, Time: at, Twin: "c-1", Revision: 1, Rule: "r",
		Action: &twinhub.Action{ID: 1, Key: "k", Kind: "offer", Rule: "r", Twin: "c-1", Revision: 1, Time: at, Status: twinhub.ActionFiredStatus}}
	ov, _ := json.Marshal(old)
	av, _ := json.Marshal(old.Action)
	if err := db.db.Set(outputKey(1), ov, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.db.Set(actionKey(1), av, nil); err != nil {
		t.Fatal(err)
	}
	outs := sampleOutputs()
	for i := range outs {
		outs[i].ID = uint64(2 + i)
		if a := outs[i].Action; a != nil && outs[i].Kind == twinhub.ActionFired {
			a.ID = outs[i].ID
		}
	}
	if err := db.WriteOutputs(&engine.OutputWrite{Outputs: outs[:4], Next: 6}); err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	if err := db.ReadOutputs(0, func(o twinhub.Output) bool { ids = append(ids, o.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("ids %v", ids)
	}
	ids = ids[:0]
	if err := db.ReadOutputs(3, func(o twinhub.Output) bool { ids = append(ids, o.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []uint64{4, 5}) {
		t.Fatalf("after 3: ids %v", ids)
	}
	var acts []uint64
	if err := db.Actions(0, func(a twinhub.Action) bool { acts = append(acts, a.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(acts, []uint64{1, 4, 5}) {
		t.Fatalf("actions %v", acts)
	}
	if a, ok, err := db.Action(1); err != nil || !ok || a.Key != "k" {
		t.Fatalf("old action: %+v %v %v", a, ok, err)
	}
}

func TestTrimOutputsByBlock(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	id := uint64(1)
	for b := range 3 { // blocks of two outputs, an hour apart
		var outs []twinhub.Output
		for range 2 {
			outs = append(outs, twinhub.Output{ID: id, Kind: twinhub.SegmentEntered, Time: t0.Add(time.Duration(b) * time.Hour), Twin: "c", Segment: "s"})
			id++
		}
		if err := db.WriteOutputs(&engine.OutputWrite{Outputs: outs, Next: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.TrimOutputs(t0.Add(90 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	if err := db.ReadOutputs(0, func(o twinhub.Output) bool { ids = append(ids, o.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []uint64{5, 6}) {
		t.Fatalf("after trim: ids %v, want the last block's", ids)
	}
}

func FuzzDecodeOutputBlock(f *testing.F) {
	v, err := appendOutputBlock(nil, sampleOutputs())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v)
	f.Add([]byte{codecBinary, 1, 0, 2, 1, 0})
	f.Add(binary.AppendUvarint([]byte{codecBinary}, 1<<40))
	f.Fuzz(func(t *testing.T, v []byte) {
		var outs []twinhub.Output
		_, err := decodeOutputBlock(1, v, 0, func(o twinhub.Output) bool { outs = append(outs, o); return true })
		if err != nil {
			return
		}
		// What decodes encodes again to the same outputs.
		v2, err := appendOutputBlock(nil, outs)
		if err != nil {
			t.Fatalf("decoded outputs do not encode: %v", err)
		}
		var again []twinhub.Output
		if _, err := decodeOutputBlock(1, v2, 0, func(o twinhub.Output) bool { again = append(again, o); return true }); err != nil {
			t.Fatalf("re-encoded block does not decode: %v", err)
		}
		if len(again) != len(outs) {
			t.Fatalf("%d outputs, then %d", len(outs), len(again))
		}
	})
}

// Every shard writes the whole vector, exact for its own partitions; a
// restart takes the highest of each, also from shards of an earlier run
// with more shards than this one.
func TestLoadLoggedTakesTheHighest(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	writes := []engine.OutputWrite{
		{Shard: 0, Logged: []uint64{10, 3, 7}},
		{Shard: 1, Logged: []uint64{4, 9, 2}},
		{Shard: 5, Logged: []uint64{1, 1, 8}}, // an earlier run's shard
		{Shard: 0, Logged: []uint64{12, 3, 7}},
	}
	for i := range writes {
		if err := db.WriteOutputs(&writes[i]); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.LoadLogged(4)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{12, 9, 8, 0}; !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadLogged = %v, want %v", got, want)
	}
}

// A new action is written once, in its output block; its key points there.
// Trimming the block moves the action to its key, and an update made
// before the trim is not overwritten with the action as first logged.
func TestActionsOutliveTrimmedOutputs(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	act := func(id uint64, at time.Time, status twinhub.ActionStatus) *twinhub.Action {
		return &twinhub.Action{ID: id, Key: fmt.Sprintf("c/1/%d/0", id), Kind: "offer", Rule: "r", Twin: "c", Revision: id, Time: at, Status: status,
			Receipt: twinhub.Receipt{SchemaVersion: 1, Rule: "r", Trigger: "purchase", Twin: "c", Revision: id, Time: at}}
	}
	old, later := t0, t0.Add(48*time.Hour)
	w := []engine.OutputWrite{
		{Outputs: []twinhub.Output{
			{ID: 1, Kind: twinhub.ActionFired, Time: old, Twin: "c", Rule: "r", Action: act(1, old, twinhub.ActionFiredStatus)},
			{ID: 2, Kind: twinhub.ActionFired, Time: old, Twin: "c", Rule: "r", Action: act(2, old, twinhub.ActionPending)},
			{ID: 3, Kind: twinhub.SegmentEntered, Time: old, Twin: "c", Segment: "s"},
		}, Next: 4},
		// Action 2 approved, a day later, in a block of its own.
		{Outputs: []twinhub.Output{{ID: 4, Kind: twinhub.ActionUpdated, Time: old.Add(24 * time.Hour), Twin: "c", Rule: "r",
			Action: func() *twinhub.Action {
				a := act(2, old, twinhub.ActionApproved)
				a.Decision = &twinhub.Decision{By: "ana", At: old.Add(24 * time.Hour)}
				return a
			}()}}, Next: 5},
		{Outputs: []twinhub.Output{{ID: 5, Kind: twinhub.ActionFired, Time: later, Twin: "c", Rule: "r", Action: act(5, later, twinhub.ActionFiredStatus)}}, Next: 6},
	}
	for i := range w {
		if err := db.WriteOutputs(&w[i]); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		var got []string
		if err := db.Actions(0, func(a twinhub.Action) bool {
			got = append(got, fmt.Sprintf("%d:%s", a.ID, a.Status))
			return true
		}); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if want := []string{"1:fired", "2:approved", "5:fired"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: actions %v, want %v", when, got, want)
		}
		a, ok, err := db.Action(1)
		if err != nil || !ok || a.Key != "c/1/1/0" || a.ID != 1 {
			t.Fatalf("%s: action 1 = %+v, %v, %v", when, a, ok, err)
		}
		if a, _, _ := db.Action(2); a.Decision == nil || a.Decision.By != "ana" {
			t.Fatalf("%s: action 2 lost its approval: %+v", when, a)
		}
	}
	check("before the trim")
	if err := db.TrimOutputs(t0.Add(36 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	if err := db.ReadOutputs(0, func(o twinhub.Output) bool { ids = append(ids, o.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []uint64{5}) {
		t.Fatalf("outputs after the trim: %v, want [5]", ids)
	}
	check("after the trim")
}

// Trimming goes trimBlocks blocks per batch, until none is old enough.
func TestTrimOutputsInBatches(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	const blocks = 2*trimBlocks + 5
	for i := range uint64(blocks) {
		o := twinhub.Output{ID: i + 1, Kind: twinhub.ActionFired, Time: t0, Twin: "c", Rule: "r",
			Action: &twinhub.Action{ID: i + 1, Key: fmt.Sprint(i), Kind: "tag", Rule: "r", Twin: "c", Time: t0, Status: twinhub.ActionFiredStatus}}
		if err := db.WriteOutputs(&engine.OutputWrite{Outputs: []twinhub.Output{o}, Next: i + 2}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.TrimOutputs(t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	n := 0
	db.ReadOutputs(0, func(twinhub.Output) bool { n++; return true })
	m := 0
	if err := db.Actions(0, func(twinhub.Action) bool { m++; return true }); err != nil {
		t.Fatal(err)
	}
	if n != 0 || m != blocks {
		t.Fatalf("after the trim: %d outputs, %d actions; want 0 and %d", n, m, blocks)
	}
}

// TestLargeOutputBlocksInBlobFiles writes output blocks big enough for
// Pebble to keep their values in blob files (see Open), then flushes and
// compacts, trims, copies the store with Checkpoint and reopens it: every
// output and action reads back from each.
func TestLargeOutputBlocksInBlobFiles(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	const blocks, per = 40, 60
	id := uint64(1)
	for b := range blocks {
		at := t0.Add(time.Duration(b) * time.Hour)
		w := engine.OutputWrite{}
		for range per {
			a := &twinhub.Action{ID: id, Key: fmt.Sprintf("c-%d/1/%d/0", b, id), Kind: "offer", Name: "o", Rule: "r", Twin: fmt.Sprintf("c-%d", b), Revision: id, Time: at,
				Payload: map[string]any{"message": fmt.Sprintf("offer %d: %0100d", id, id)}, Status: twinhub.ActionFiredStatus,
				Receipt: twinhub.Receipt{SchemaVersion: 1, Rule: "r", Trigger: "purchase", Twin: fmt.Sprintf("c-%d", b), Revision: id, Time: at}}
			w.Outputs = append(w.Outputs, twinhub.Output{ID: id, Kind: twinhub.ActionFired, Time: at, Twin: a.Twin, Revision: id, Rule: "r", Action: a})
			id++
		}
		w.Next = id
		if err := db.WriteOutputs(&w); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
		t.Fatal(err)
	}
	if blobs, _ := filepath.Glob(filepath.Join(dir, "*.blob")); len(blobs) == 0 {
		t.Fatal("no blob files: the output blocks stayed in the sstables")
	}
	check := func(db *DB, when string, first uint64) {
		t.Helper()
		want := first
		if err := db.ReadOutputs(0, func(o twinhub.Output) bool {
			if o.ID != want || o.Action == nil || o.Action.Payload["message"] != fmt.Sprintf("offer %d: %0100d", want, want) {
				t.Fatalf("%s: output %d = %+v, want id %d with its payload", when, o.ID, o, want)
			}
			want++
			return true
		}); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if want != id {
			t.Fatalf("%s: read outputs up to %d, want up to %d", when, want-1, id-1)
		}
		n := 0
		if err := db.Actions(0, func(twinhub.Action) bool { n++; return true }); err != nil || n != blocks*per {
			t.Fatalf("%s: %d actions, %v; want %d", when, n, err, blocks*per)
		}
		if a, ok, err := db.Action(id - 1); err != nil || !ok || a.Payload["message"] != fmt.Sprintf("offer %d: %0100d", id-1, id-1) {
			t.Fatalf("%s: last action = %+v, %v, %v", when, a, ok, err)
		}
	}
	check(db, "after the compaction", 1)
	cp := filepath.Join(t.TempDir(), "copy")
	if err := db.Checkpoint(cp); err != nil {
		t.Fatal(err)
	}
	// The first 10 blocks are more than a day older than the trim time.
	if err := db.TrimOutputs(t0.Add(10 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	check(db, "after the trim", 10*per+1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir)
	check(db, "reopened", 10*per+1)
	db.Close()
	c := openTest(t, cp)
	defer c.Close()
	check(c, "checkpoint", 1)
}
