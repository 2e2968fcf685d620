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
// overlaps no other file and is ingested without compaction. A read looks the
// key up in every run, so runs are merged in the background, size-tiered:
// whenever there are more than maxRuns, the mergeRuns smallest become one.
// A crash during a merge leaves the same entries in two runs, which readers
// already drop as duplicates.

const (
	maxRuns   = 16
	mergeRuns = 8
)

type timelineRuns struct {
	// mu guards runs; a reader holds it shared for all its lookups, so a
	// merge never deletes a run while a reader still has it to look at.
	mu      sync.RWMutex
	runs    []runInfo
	next    uint64
	merging sync.Mutex
}

// runInfo is a run and its number of twin keys, the measure of its size.
type runInfo struct {
	id   uint64
	keys int64
}

func runSizeKey(run uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'r'}, run) }

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
		var keys int64
		if v, ok, err := getValue(s.db, runSizeKey(run)); err != nil {
			return err
		} else if ok {
			n, _ := binary.Uvarint(v)
			keys = int64(n)
		}
		s.tl.runs = append(s.tl.runs, runInfo{id: run, keys: keys})
		s.tl.next = run + 1
		ok = it.SeekGE(binary.BigEndian.AppendUint64([]byte{'t'}, run+1))
	}
	return it.Error()
}

// WriteTimeline implements engine.Store: entries become one ingested run,
// with one key per twin whose value lists that twin's (time, seq) pairs.
func (s *DB) WriteTimeline(tl *engine.Timeline) error {
	if tl.Len() == 0 {
		return nil
	}
	sorted, rank := groupByKey(tl)
	i := 0
	var v []byte
	next := func() (string, []byte, bool) {
		if i == len(sorted) {
			return "", nil, false
		}
		r := rank[sorted[i].Key]
		j := i + 1
		for j < len(sorted) && rank[sorted[j].Key] == r {
			j++
		}
		v = v[:0]
		for _, e := range sorted[i:j] {
			v = binary.AppendVarint(v, e.Time)
			v = binary.AppendUvarint(v, e.Seq)
		}
		key := tl.Keys[sorted[i].Key]
		i = j
		return key, v, true
	}
	if _, err := s.writeRun(next); err != nil {
		return err
	}
	return s.maybeMergeRuns()
}

// writeRun writes the (key, value) pairs next yields, in key order, as a new
// run, ingests it and records its size.
func (s *DB) writeRun(next func() (string, []byte, bool)) (runInfo, error) {
	s.tl.mu.Lock()
	run := runInfo{id: s.tl.next}
	s.tl.next++
	s.tl.mu.Unlock()

	path := filepath.Join(s.dir, fmt.Sprintf("timeline-run-%d.sst", run.id))
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return run, fmt.Errorf("create timeline run: %w", err)
	}
	wo := s.opts.MakeWriterOptions(6, s.db.TableFormat())
	wo.FilterPolicy = nil // a run is read by point lookups, one per run, rarely
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), wo)
	var k []byte
	for {
		key, v, ok := next()
		if !ok {
			break
		}
		k = appendRunKey(k[:0], run.id, key)
		if err := w.Set(k, v); err != nil {
			w.Close()
			os.Remove(path)
			return run, fmt.Errorf("write timeline run: %w", err)
		}
		run.keys++
	}
	if err := w.Close(); err != nil {
		os.Remove(path)
		return run, fmt.Errorf("write timeline run: %w", err)
	}
	if err := s.db.Ingest(context.Background(), []string{path}); err != nil {
		os.Remove(path)
		return run, fmt.Errorf("ingest timeline run: %w", err)
	}
	if err := s.db.Set(runSizeKey(run.id), binary.AppendUvarint(nil, uint64(run.keys)), cpebble.NoSync); err != nil {
		return run, err
	}
	s.tl.mu.Lock()
	s.tl.runs = append(s.tl.runs, run)
	s.tl.mu.Unlock()
	return run, nil
}

// maybeMergeRuns merges the smallest runs while there are too many. Only one
// merge runs at a time; a caller that finds one running leaves it the work.
func (s *DB) maybeMergeRuns() error {
	if !s.tl.merging.TryLock() {
		return nil
	}
	defer s.tl.merging.Unlock()
	for {
		s.tl.mu.RLock()
		n := len(s.tl.runs)
		picked := slices.Clone(s.tl.runs)
		s.tl.mu.RUnlock()
		if n <= maxRuns {
			return nil
		}
		slices.SortStableFunc(picked, func(a, b runInfo) int { return cmp.Compare(a.keys, b.keys) })
		if err := s.mergeRuns(picked[:mergeRuns]); err != nil {
			return fmt.Errorf("merge timeline runs: %w", err)
		}
	}
}

// mergeRuns writes the union of runs as one new run, then drops them.
func (s *DB) mergeRuns(runs []runInfo) error {
	its := make([]*cpebble.Iterator, 0, len(runs))
	defer func() {
		for _, it := range its {
			it.Close()
		}
	}()
	for _, r := range runs {
		lo := binary.BigEndian.AppendUint64([]byte{'t'}, r.id)
		hi := binary.BigEndian.AppendUint64([]byte{'t'}, r.id+1)
		it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		it.First()
		its = append(its, it)
	}
	var v []byte
	var iterErr error
	next := func() (string, []byte, bool) {
		// The smallest twin key among the runs' current keys, and every
		// run's pairs for it, concatenated (the reader sorts them).
		var min []byte
		for _, it := range its {
			if it.Valid() && (min == nil || string(it.Key()[9:]) < string(min)) {
				min = it.Key()[9:]
			}
		}
		if min == nil {
			return "", nil, false
		}
		key := string(min)
		v = v[:0]
		for _, it := range its {
			if it.Valid() && string(it.Key()[9:]) == key {
				v = append(v, it.Value()...)
				it.Next()
				if err := it.Error(); err != nil && iterErr == nil {
					iterErr = err
				}
			}
		}
		return key, v, true
	}
	if _, err := s.writeRun(next); err != nil {
		return err
	}
	if iterErr != nil {
		return iterErr
	}
	// Readers hold mu shared while they look runs up: once this swap is
	// done no reader can still be using the merged runs.
	s.tl.mu.Lock()
	s.tl.runs = slices.DeleteFunc(s.tl.runs, func(r runInfo) bool {
		return slices.ContainsFunc(runs, func(m runInfo) bool { return m.id == r.id })
	})
	s.tl.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	for _, r := range runs {
		lo := binary.BigEndian.AppendUint64([]byte{'t'}, r.id)
		hi := binary.BigEndian.AppendUint64([]byte{'t'}, r.id+1)
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return err
		}
		if err := b.Delete(runSizeKey(r.id), nil); err != nil {
			return err
		}
	}
	return b.Commit(cpebble.NoSync)
}

func appendRunKey(dst []byte, run uint64, key string) []byte {
	dst = append(dst, 't')
	dst = binary.BigEndian.AppendUint64(dst, run)
	return append(dst, key...)
}

// Timeline implements engine.Store: the entries of key with from <= time <
// to from every run, merged by (time, seq) with duplicates dropped.
func (s *DB) Timeline(key string, from, to int64, fn func(engine.Record) bool) error {
	s.tl.mu.RLock()
	runs := slices.Clone(s.tl.runs)
	type ref struct {
		time int64
		seq  uint64
	}
	var refs []ref
	var k []byte
	for _, run := range runs {
		k = appendRunKey(k[:0], run.id, key)
		v, ok, err := getValue(s.db, k)
		if err != nil {
			s.tl.mu.RUnlock()
			return err
		}
		for ok && len(v) > 0 {
			t, n := binary.Varint(v)
			if n <= 0 {
				s.tl.mu.RUnlock()
				return fmt.Errorf("corrupt timeline run %d entry for %q", run.id, key)
			}
			seq, m := binary.Uvarint(v[n:])
			if m <= 0 {
				s.tl.mu.RUnlock()
				return fmt.Errorf("corrupt timeline run %d entry for %q", run.id, key)
			}
			v = v[n+m:]
			if t >= from && t < to {
				refs = append(refs, ref{t, seq})
			}
		}
	}
	s.tl.mu.RUnlock()
	slices.SortFunc(refs, func(a, b ref) int {
		if c := cmp.Compare(a.time, b.time); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	refs = slices.Compact(refs) // the same event handed over twice (replayed after a crash, or merged)
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

// groupByKey returns tl's entries ordered by key, each key's entries in
// their order in tl (the reader sorts by time), and the rank of each of tl's
// key indices in key order: equal keys share a rank. Only the keys are
// sorted, which are fewer than the entries and the only data that points
// elsewhere: radix-sorted on their first eight bytes (an integer: keys hold
// no bytes below 0x20, so the zero padding orders correctly), then compared
// in full only where eight bytes tie. The entries follow with a counting sort
// on their key's rank. A comparison sort of a quarter million entries used
// to be the costliest part of writing a run.
func groupByKey(tl *engine.Timeline) ([]engine.TimelineEntry, []uint32) {
	type item struct {
		prefix uint64
		idx    uint32
	}
	items := make([]item, len(tl.Keys))
	for i, k := range tl.Keys {
		var p [8]byte
		copy(p[:], k)
		items[i] = item{binary.BigEndian.Uint64(p[:]), uint32(i)}
	}
	// LSD radix sort, a byte at a time; passes where every item has the same
	// byte are skipped.
	tmp := make([]item, len(items))
	for shift := uint(0); shift < 64 && len(items) > 1; shift += 8 {
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
	key := func(it item) string { return tl.Keys[it.idx] }
	for i := 0; i < len(items); {
		j := i + 1
		mixed := false
		for j < len(items) && items[j].prefix == items[i].prefix {
			mixed = mixed || key(items[j]) != key(items[i])
			j++
		}
		if mixed { // long keys sharing eight bytes
			slices.SortFunc(items[i:j], func(a, b item) int { return cmp.Compare(key(a), key(b)) })
		}
		i = j
	}
	rank := make([]uint32, len(items))
	r := uint32(0)
	for i, it := range items {
		if i > 0 && (it.prefix != items[i-1].prefix || key(it) != key(items[i-1])) {
			r++
		}
		rank[it.idx] = r
	}
	// Counting sort by rank, stable: starts[r] is where rank r's entries go.
	starts := make([]int, r+2)
	for _, e := range tl.Entries {
		starts[rank[e.Key]+1]++
	}
	for k := 1; k < len(starts); k++ {
		starts[k] += starts[k-1]
	}
	sorted := make([]engine.TimelineEntry, len(tl.Entries))
	for _, e := range tl.Entries {
		at := &starts[rank[e.Key]]
		sorted[*at] = e
		*at++
	}
	return sorted, rank
}
