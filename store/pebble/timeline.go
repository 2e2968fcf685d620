package pebble

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	cpebble "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twinhub/twinhub/engine"
)

// The per-twin timeline is an index from (key, event time) to archive seq.
// Written as one random key per event it would cost more in LSM compaction
// than the whole rest of ingestion, so the engine hands it over in sorted
// runs instead: each run becomes one SST under a fresh run number, which
// overlaps no other file and is ingested without compaction. A read seeks the
// key in every run. Runs are few (one per TimelineRun events per shard).

type timelineRuns struct {
	mu   sync.Mutex
	runs []uint64
	next uint64
}

func (s *DB) loadRuns() error {
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: []byte{'t'}, UpperBound: []byte{'u'}})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; {
		k := it.Key()
		if len(k) < 9 {
			return fmt.Errorf("corrupt timeline key %x", k)
		}
		run := binary.BigEndian.Uint64(k[1:9])
		s.tl.runs = append(s.tl.runs, run)
		s.tl.next = run + 1
		ok = it.SeekGE(binary.BigEndian.AppendUint64([]byte{'t'}, run+1))
	}
	return it.Error()
}

// WriteTimeline implements engine.Store: entries become one ingested run,
// with one key per twin whose value lists that twin's (time, seq) pairs.
func (s *DB) WriteTimeline(entries []engine.TimelineEntry) error {
	if len(entries) == 0 {
		return nil
	}
	groupByKey(entries)
	s.tl.mu.Lock()
	run := s.tl.next
	s.tl.next++
	s.tl.mu.Unlock()

	path := filepath.Join(s.dir, fmt.Sprintf("timeline-run-%d.sst", run))
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("create timeline run: %w", err)
	}
	wo := s.opts.MakeWriterOptions(6, s.db.TableFormat())
	wo.FilterPolicy = nil // a run is read by point lookups, one per run, rarely
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), wo)
	var k, v []byte
	for i := 0; i < len(entries); {
		j := i + 1
		for j < len(entries) && entries[j].Key == entries[i].Key {
			j++
		}
		v = v[:0]
		for _, e := range entries[i:j] {
			v = binary.AppendVarint(v, e.Time)
			v = binary.AppendUvarint(v, e.Seq)
		}
		k = appendRunKey(k[:0], run, entries[i].Key)
		if err := w.Set(k, v); err != nil {
			w.Close()
			os.Remove(path)
			return fmt.Errorf("write timeline run: %w", err)
		}
		i = j
	}
	if err := w.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("write timeline run: %w", err)
	}
	if err := s.db.Ingest(context.Background(), []string{path}); err != nil {
		os.Remove(path)
		return fmt.Errorf("ingest timeline run: %w", err)
	}
	s.tl.mu.Lock()
	s.tl.runs = append(s.tl.runs, run)
	s.tl.mu.Unlock()
	return nil
}

func appendRunKey(dst []byte, run uint64, key string) []byte {
	dst = append(dst, 't')
	dst = binary.BigEndian.AppendUint64(dst, run)
	return append(dst, key...)
}

// Timeline implements engine.Store: the entries of key with from <= time <
// to from every run, merged by (time, seq) with duplicates dropped.
func (s *DB) Timeline(key string, from, to int64, fn func(engine.Record) bool) error {
	s.tl.mu.Lock()
	runs := slices.Clone(s.tl.runs)
	s.tl.mu.Unlock()
	type ref struct {
		time int64
		seq  uint64
	}
	var refs []ref
	var k []byte
	for _, run := range runs {
		k = appendRunKey(k[:0], run, key)
		v, ok, err := getValue(s.db, k)
		if err != nil {
			return err
		}
		for ok && len(v) > 0 {
			t, n := binary.Varint(v)
			if n <= 0 {
				return fmt.Errorf("corrupt timeline run %d entry for %q", run, key)
			}
			seq, m := binary.Uvarint(v[n:])
			if m <= 0 {
				return fmt.Errorf("corrupt timeline run %d entry for %q", run, key)
			}
			v = v[n+m:]
			if t >= from && t < to {
				refs = append(refs, ref{t, seq})
			}
		}
	}
	slices.SortFunc(refs, func(a, b ref) int {
		if c := cmp.Compare(a.time, b.time); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	refs = slices.Compact(refs) // the same event handed over twice (replayed after a crash)
	for _, r := range refs {
		rec, err := s.readRecord(r.seq)
		if err != nil {
			return fmt.Errorf("timeline of %q: %w", key, err)
		}
		if !fn(rec) {
			break
		}
	}
	return nil
}

// AddKeys implements engine.Store: new twins enter the key directory.
func (s *DB) AddKeys(keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	var k []byte
	for _, key := range keys {
		k = append(append(k[:0], 'k'), key...)
		if err := b.Set(k, nil, nil); err != nil {
			return err
		}
	}
	return b.Commit(cpebble.NoSync)
}

// Keys implements engine.Store.
func (s *DB) Keys(after string, fn func(string) bool) error {
	lo := []byte{'k'}
	if after != "" {
		lo = append(append(lo, after...), 0)
	}
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: lo, UpperBound: []byte{'l'}})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if !fn(string(it.Key()[1:])) {
			return nil
		}
	}
	return it.Error()
}

// Event implements engine.Store.
func (s *DB) Event(seq uint64) (engine.Record, error) { return s.readRecord(seq) }

// groupByKey orders entries by key; within a key the order is kept (the
// reader sorts by time). A comparison sort of a quarter million entries was
// the costliest part of writing a run, so the entries are radix-sorted on
// their keys' first eight bytes (an integer: keys hold no bytes below 0x20,
// so the zero padding orders correctly) and only groups that share those
// bytes but differ later are compared in full.
func groupByKey(entries []engine.TimelineEntry) {
	if len(entries) < 2 {
		return
	}
	type item struct {
		prefix uint64
		idx    uint32
	}
	items := make([]item, len(entries))
	for i, e := range entries {
		var p [8]byte
		copy(p[:], e.Key)
		items[i] = item{binary.BigEndian.Uint64(p[:]), uint32(i)}
	}
	// LSD radix sort, a byte at a time (stable, so a key's entries keep
	// their order); passes where every item has the same byte are skipped.
	tmp := make([]item, len(items))
	for shift := uint(0); shift < 64; shift += 8 {
		var counts [256]int
		for _, it := range items {
			counts[byte(it.prefix>>shift)]++
		}
		if counts[byte(items[0].prefix>>shift)] == len(items) {
			continue
		}
		pos := 0
		for b := range counts {
			pos, counts[b] = pos+counts[b], pos
		}
		for _, it := range items {
			b := byte(it.prefix >> shift)
			tmp[counts[b]] = it
			counts[b]++
		}
		items, tmp = tmp, items
	}
	sorted := make([]engine.TimelineEntry, len(entries))
	for i, it := range items {
		sorted[i] = entries[it.idx]
	}
	for i := 0; i < len(sorted); {
		j := i + 1
		mixed := false
		for j < len(sorted) && items[j].prefix == items[i].prefix {
			mixed = mixed || sorted[j].Key != sorted[i].Key
			j++
		}
		if mixed { // long keys sharing eight bytes
			slices.SortStableFunc(sorted[i:j], func(a, b engine.TimelineEntry) int { return cmp.Compare(a.Key, b.Key) })
		}
		i = j
	}
	copy(entries, sorted)
}
