package pebble

import (
	"bytes"
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

// WriteTimeline implements engine.Store: entries become one ingested run.
func (s *DB) WriteTimeline(entries []engine.TimelineEntry) error {
	if len(entries) == 0 {
		return nil
	}
	sortTimeline(entries)
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
	wo.FilterPolicy = nil // runs are only ever range-scanned
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), wo)
	var k, prev []byte
	for _, e := range entries {
		k = appendTimelineKey(k[:0], run, e.Key, e.Time, e.Seq)
		if bytes.Equal(k, prev) {
			continue // the same event handed over twice (replayed after a crash)
		}
		if err := w.Set(k, nil); err != nil {
			w.Close()
			os.Remove(path)
			return fmt.Errorf("write timeline run: %w", err)
		}
		prev = append(prev[:0], k...)
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
	for _, run := range runs {
		lo := appendTimelineKey(nil, run, key, from, 0)
		hi := appendTimelineKey(nil, run, key, to, 0)
		it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			k := it.Key()
			refs = append(refs, ref{
				time: int64(binary.BigEndian.Uint64(k[len(k)-16:]) ^ (1 << 63)),
				seq:  binary.BigEndian.Uint64(k[len(k)-8:]),
			})
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	slices.SortFunc(refs, func(a, b ref) int {
		if c := cmp.Compare(a.time, b.time); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	refs = slices.Compact(refs)
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

// sortTimeline sorts entries by (key, time, seq). A comparison sort of a
// quarter million entries was the costliest part of writing a run, so the
// entries are radix-sorted on their keys' first eight bytes (an integer, as
// keys hold no bytes below 0x20 the zero padding orders correctly) and only
// the small groups that share those bytes are then compared in full.
func sortTimeline(entries []engine.TimelineEntry) {
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
	// LSD radix sort, a byte at a time; passes where every item has the same
	// byte are skipped.
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
		for j < len(sorted) && items[j].prefix == items[i].prefix {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(sorted[i:j], func(a, b engine.TimelineEntry) int {
				return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Time, b.Time), cmp.Compare(a.Seq, b.Seq))
			})
		}
		i = j
	}
	copy(entries, sorted)
}
