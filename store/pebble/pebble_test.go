package pebble

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	cpebble "github.com/cockroachdb/pebble/v2"
	"github.com/twinhub/twinhub/engine"
)

func openTest(tb testing.TB, dir string) *DB {
	tb.Helper()
	db, err := Open(dir, Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

func TestArchiveChunksAndReplay(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	// Two appends with a gap between them, as two shards leave when one's
	// batch never made it; and a batch large enough to span chunks.
	var recs []engine.Record
	for i := range 1000 {
		recs = append(recs, engine.Record{Seq: uint64(i + 1), Partition: i % 7, Time: int64(i) * 1e9, Key: fmt.Sprintf("c-%d", i%13), Raw: []byte(fmt.Sprintf(`{"id":"e-%d","pad":"%0100d"}`, i+1, i))})
	}
	c, err := db.Append(recs)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	later := []engine.Record{{Seq: 1005, Key: "c-x", Raw: []byte(`{"id":"late"}`)}}
	c, err = db.Append(later)
	if err != nil {
		t.Fatal(err)
	}
	c.Wait()
	db.Close()

	db = openTest(t, dir)
	defer db.Close()
	if last, err := db.LastSeq(); err != nil || last != 1005 {
		t.Fatalf("LastSeq = %d, %v; want 1005", last, err)
	}
	for _, after := range []uint64{0, 1, 499, 999, 1000, 1005} {
		var got []uint64
		err := db.Replay(after, func(r engine.Record) error {
			got = append(got, r.Seq)
			if r.Seq <= 1000 {
				want := recs[r.Seq-1]
				if r.Key != want.Key || r.Partition != want.Partition || r.Time != want.Time || string(r.Raw) != string(want.Raw) {
					t.Fatalf("Replay: record %d = %+v, want %+v", r.Seq, r, want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []uint64{}
		for s := after + 1; s <= 1000; s++ {
			want = append(want, s)
		}
		if after < 1005 {
			want = append(want, 1005)
		}
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("Replay(after %d) = %d records %v..., want %d", after, len(got), head(got), len(want))
		}
	}
	r, err := db.Event(777)
	if err != nil || r.Seq != 777 || string(r.Raw) != string(recs[776].Raw) {
		t.Errorf("Event(777) = %+v, %v", r, err)
	}
	if _, err := db.Event(1002); err == nil {
		t.Errorf("Event(1002) in the gap: no error")
	}
}

func head(s []uint64) []uint64 { return s[:min(len(s), 5)] }

// TestGroupByKey checks the radix grouping against a stable sort by key,
// with keys sharing long prefixes, keys that prefix one another, keys at
// more than one index (a twin evicted and loaded again) and many entries per
// key, whose order must be kept.
func TestGroupByKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"a", "ab", "abcdefgh", "abcdefghi", "abcdefghij", "abcdefgi", "c-1", "c-10", "c-100", "customer-000001", "customer-000002", "z"}
	type flat struct {
		key  string
		time int64
		seq  uint64
	}
	var tl engine.Timeline
	var want []flat
	at := map[string]uint32{}
	for i := range 5000 {
		key := keys[rng.IntN(len(keys))]
		k, ok := at[key]
		if !ok || rng.IntN(50) == 0 { // now and then, the key again at a new index
			k = uint32(len(tl.Keys))
			tl.Keys = append(tl.Keys, key)
			at[key] = k
		}
		e := engine.TimelineEntry{Time: int64(rng.IntN(20) - 10), Seq: uint64(i), Key: k}
		tl.Entries = append(tl.Entries, e)
		want = append(want, flat{key, e.Time, e.Seq})
	}
	before := slices.Clone(tl.Entries)
	slices.SortStableFunc(want, func(a, b flat) int { return cmp.Compare(a.key, b.key) })
	sorted, rank := groupByKey(&tl)
	var got []flat
	for _, e := range sorted {
		got = append(got, flat{tl.Keys[e.Key], e.Time, e.Seq})
	}
	if !slices.Equal(got, want) {
		t.Fatal("groupByKey disagrees with a stable sort by key")
	}
	if !slices.Equal(tl.Entries, before) {
		t.Error("groupByKey changed its input")
	}
	for i := range tl.Keys {
		for j := range tl.Keys {
			if (tl.Keys[i] == tl.Keys[j]) != (rank[i] == rank[j]) || (tl.Keys[i] < tl.Keys[j]) != (rank[i] < rank[j]) {
				t.Fatalf("keys %q and %q have ranks %d and %d", tl.Keys[i], tl.Keys[j], rank[i], rank[j])
			}
		}
	}
}

// timelineOf is the timeline of recs, a key index per record.
func timelineOf(recs []engine.Record) *engine.Timeline {
	var tl engine.Timeline
	for _, r := range recs {
		tl.Add(r.Key, r.Time, r.Seq)
	}
	return &tl
}

func TestTimelineRunsAndKeys(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	var recs []engine.Record
	for i := range 50 {
		recs = append(recs, engine.Record{Seq: uint64(i + 1), Time: int64(50-i) * 1e9, Key: fmt.Sprintf("k%d", i%3), Raw: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	c, _ := db.Append(recs)
	c.Wait()
	// Two runs, overlapping: the same event handed over twice appears once.
	if err := db.WriteTimeline(timelineOf(recs[:30])); err != nil {
		t.Fatal(err)
	}
	if err := db.WriteTimeline(timelineOf(recs[20:])); err != nil {
		t.Fatal(err)
	}
	if err := db.AddKeys([]string{"k1", "k0", "k2", "k1"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openTest(t, dir)
	defer db.Close()
	var got []int64
	err := db.Timeline("k1", 0, 1<<62, func(r engine.Record) bool {
		if r.Key != "k1" {
			t.Fatalf("timeline of k1 returned key %s", r.Key)
		}
		got = append(got, r.Time)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 17 || !slices.IsSorted(got) {
		t.Errorf("timeline of k1 = %v, want 17 events in time order, once each", got)
	}
	var keys []string
	db.Keys("", func(k string) bool { keys = append(keys, k); return true })
	if !slices.Equal(keys, []string{"k0", "k1", "k2"}) {
		t.Errorf("Keys = %v", keys)
	}
	keys = keys[:0]
	db.Keys("k0", func(k string) bool { keys = append(keys, k); return len(keys) < 1 })
	if !slices.Equal(keys, []string{"k1"}) {
		t.Errorf("Keys after k0, limit 1 = %v, want [k1]", keys)
	}
}

// TestArchiveReadsWhileBuffersAreReused reads events back, many of them
// still in flight, while later appends reuse the buffers of chunks already
// written: every read must see its own event's bytes.
func TestArchiveReadsWhileBuffersAreReused(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	raw := func(seq uint64) []byte { return []byte(fmt.Sprintf(`{"id":"e-%d","pad":"%0300d"}`, seq, seq)) }
	var appended atomic.Uint64
	done := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(3, 4))
		for {
			last := appended.Load()
			if last == ^uint64(0) {
				done <- nil
				return
			}
			if last == 0 {
				continue
			}
			seq := last - uint64(rng.IntN(int(min(last, 500))))
			r, err := db.Event(seq)
			if err != nil {
				done <- fmt.Errorf("Event(%d): %w", seq, err)
				return
			}
			if !bytes.Equal(r.Raw, raw(seq)) {
				done <- fmt.Errorf("Event(%d) = %s, want %s", seq, r.Raw, raw(seq))
				return
			}
		}
	}()
	var seq uint64
	var commits []engine.Commit
	for range 300 {
		recs := make([]engine.Record, 200)
		for i := range recs {
			seq++
			recs[i] = engine.Record{Seq: seq, Key: "c-1", Raw: raw(seq)}
		}
		c, err := db.Append(recs)
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, c)
		appended.Store(seq) // readable once appended, durable or not
		if len(commits) > 8 {
			if err := commits[0].Wait(); err != nil {
				t.Fatal(err)
			}
			commits = commits[1:]
		}
	}
	for _, c := range commits {
		if err := c.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	appended.Store(^uint64(0))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	db.log.mu.Lock()
	reused := len(db.log.free) > 0
	db.log.mu.Unlock()
	if !reused {
		t.Error("no chunk buffer was kept for reuse")
	}
}

// TestArchiveTailRecovery simulates a crash after a chunk was fsynced but
// before its index entry was written, followed by a torn write: reopening
// must index the whole chunk, cut the torn bytes, and append after them.
func TestArchiveTailRecovery(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	rec := func(seq uint64) engine.Record {
		return engine.Record{Seq: seq, Key: "c-1", Raw: []byte(fmt.Sprintf(`{"id":"e-%d"}`, seq))}
	}
	c, _ := db.Append([]engine.Record{rec(1), rec(2)})
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	c, _ = db.Append([]engine.Record{rec(3)})
	c.Wait()
	// Forget the index of the second chunk, as a crash before its (unsynced)
	// index write would.
	if err := db.db.Delete(archiveKey(3), cpebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.db.Set([]byte("marchive-end"), endValue(1, int64(len(db.log.encodeChunks([]engine.Record{rec(1), rec(2)})[0].data))), cpebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// A torn chunk: a header promising more bytes than were written.
	seg := segmentName(filepath.Join(dir, "archive"), 1)
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 1, 0, 1, 2, 3, 4, 5, 6})
	f.Close()

	db = openTest(t, dir)
	defer db.Close()
	if last, err := db.LastSeq(); err != nil || last != 3 {
		t.Fatalf("LastSeq after recovery = %d, %v; want 3 (the unindexed durable chunk)", last, err)
	}
	c, _ = db.Append([]engine.Record{rec(4)})
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	db.Replay(0, func(r engine.Record) error { got = append(got, r.Seq); return nil })
	if !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Errorf("Replay after recovery = %v, want [1 2 3 4] (torn bytes cut, new chunk after them)", got)
	}
	if r, err := db.Event(4); err != nil || string(r.Raw) != `{"id":"e-4"}` {
		t.Errorf("Event(4) = %s, %v", r.Raw, err)
	}
}

// TestArchiveRefusesDamageBeforeLaterSegments: damage in a segment that has
// a successor cannot be a torn write, so Open must refuse rather than cut
// acknowledged events.
func TestArchiveRefusesDamageBeforeLaterSegments(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	c, _ := db.Append([]engine.Record{{Seq: 1, Key: "c-1", Raw: []byte(`{"id":"e-1"}`)}})
	c.Wait()
	// As if the index write was lost: recovery must scan the chunk.
	db.db.Delete(archiveKey(1), cpebble.Sync)
	db.db.Set([]byte("marchive-end"), endValue(1, 0), cpebble.Sync)
	db.Close()
	archive := filepath.Join(dir, "archive")
	// Flip a payload byte of segment 1 and add a segment 2.
	b, err := os.ReadFile(segmentName(archive, 1))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	os.WriteFile(segmentName(archive, 1), b, 0o644)
	os.WriteFile(segmentName(archive, 2), nil, 0o644)
	if _, err := Open(dir, Options{CacheSize: 8 << 20}); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("Open over a damaged segment with a successor = %v, want a refusal naming the damage", err)
	}
}

// TestTimelineRunsMerge writes many small runs: they must be merged down to
// at most maxRuns, and every twin's timeline must still hold each of its
// events exactly once, in time order, also after a restart.
func TestTimelineRunsMerge(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	rng := rand.New(rand.NewPCG(9, 9))
	var recs []engine.Record
	want := map[string][]int64{}
	for i := range 2000 {
		key := fmt.Sprintf("k%d", rng.IntN(30))
		at := int64(rng.IntN(1_000_000)) * 1e6
		recs = append(recs, engine.Record{Seq: uint64(i + 1), Key: key, Time: at, Raw: []byte(fmt.Sprintf(`{"n":%d}`, i))})
		want[key] = append(want[key], at)
	}
	c, _ := db.Append(recs)
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	// A reader runs throughout: merges must never hide or break entries.
	stop := make(chan struct{})
	readerDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				readerDone <- nil
				return
			default:
			}
			if err := db.Timeline("k1", 0, 1<<62, func(engine.Record) bool { return true }); err != nil {
				readerDone <- err
				return
			}
		}
	}()
	for i := 0; i < len(recs); i += 50 { // 40 runs
		tl := timelineOf(recs[i : i+50])
		if i == 500 {
			tl.Add(recs[0].Key, recs[0].Time, recs[0].Seq) // handed over twice
		}
		if err := db.WriteTimeline(tl); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-readerDone; err != nil {
		t.Fatalf("a timeline read during merges failed: %v", err)
	}
	check := func(when string) {
		t.Helper()
		db.tl.mu.RLock()
		n := len(db.tl.runs)
		db.tl.mu.RUnlock()
		if n > maxRuns {
			t.Errorf("%s: %d runs, want at most %d", when, n, maxRuns)
		}
		for key, times := range want {
			var got []int64
			err := db.Timeline(key, 0, 1<<62, func(r engine.Record) bool { got = append(got, r.Time); return true })
			if err != nil {
				t.Fatal(err)
			}
			w := slices.Clone(times)
			slices.Sort(w)
			if !slices.Equal(got, w) {
				t.Errorf("%s: timeline of %s has %d events, want %d (in time order, once each)", when, key, len(got), len(w))
			}
		}
	}
	check("after merging")
	db.Close()
	db = openTest(t, dir)
	defer db.Close()
	check("after a restart")
}
