// Package pebble is Twinhub's embedded store on CockroachDB's Pebble: the
// event archive, the per-twin timeline, twin snapshots, checkpoints and schema
// versions, all in one database so one write batch can cover several of them.
//
// Key layout (one leading byte names the kind of record):
//
//	'a' seq(8)                          archived event: partition, time, key, raw
//	't' key 0x00 time(8) seq(8)         timeline index entry (empty value)
//	's' key                             twin snapshot
//	'w' partition(2)                    partition mark: watermark, stored twins
//	'd' n(8)                            a batch of seen event-id hashes
//	'v' version(4)                      schema source
//	'm' name                            meta values ("schema" = active version)
//
// Integers are big-endian so that key order is numeric order; event times
// are offset by 2^63 so that times before 1970 sort first. Twin keys never
// contain bytes below 0x20 (the decoder refuses them), so 0x00 ends a key.
package pebble

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	cpebble "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/twinhub/twinhub/engine"
)

// Options configure the store. Zero values mean the defaults.
type Options struct {
	// CacheSize is the block cache size in bytes. Default 256 MiB.
	CacheSize int64
	// MemTableSize in bytes. Default 64 MiB.
	MemTableSize uint64
}

// DB is the store. It is safe for concurrent use.
type DB struct {
	db     *cpebble.DB
	dir    string
	idSeq  atomic.Uint64
	cache  interface{ Unref() }
	closed atomic.Bool
}

var _ engine.Store = (*DB)(nil)

// Open opens or creates the store in dir.
func Open(dir string, o Options) (*DB, error) {
	if o.CacheSize <= 0 {
		o.CacheSize = 256 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 64 << 20
	}
	cache := cpebble.NewCache(o.CacheSize)
	opts := &cpebble.Options{
		Cache:                       cache,
		MemTableSize:                o.MemTableSize,
		MemTableStopWritesThreshold: 4,
		L0CompactionThreshold:       4,
		L0StopWritesThreshold:       24,
		LBaseMaxBytes:               256 << 20,
		FormatMajorVersion:          cpebble.FormatNewest,
		Logger:                      quietLogger{},
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	opts.EnsureDefaults()
	db, err := cpebble.Open(dir, opts)
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &DB{db: db, dir: dir, cache: cache}
	// Seen-id batches are numbered; continue after the last one.
	it, err := db.NewIter(&cpebble.IterOptions{LowerBound: []byte{'d'}, UpperBound: []byte{'e'}})
	if err != nil {
		s.Close()
		return nil, err
	}
	if it.Last() {
		s.idSeq.Store(binary.BigEndian.Uint64(it.Key()[1:]))
	}
	if err := it.Close(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close flushes nothing extra (every acknowledged write is already in the
// WAL) and closes the database.
func (s *DB) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	err := s.db.Close()
	s.cache.Unref()
	return err
}

// Metrics returns Pebble's own metrics, for diagnostics.
func (s *DB) Metrics() *cpebble.Metrics { return s.db.Metrics() }

func archiveKey(seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = 'a'
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

func appendTimelineKey(dst []byte, key string, t int64, seq uint64) []byte {
	dst = append(dst, 't')
	dst = append(dst, key...)
	dst = append(dst, 0)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t)^(1<<63))
	return binary.BigEndian.AppendUint64(dst, seq)
}

func snapshotKey(key string) []byte { return append([]byte{'s'}, key...) }

// LastSeq implements engine.Store.
func (s *DB) LastSeq() (uint64, error) {
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: []byte{'a'}, UpperBound: []byte{'b'}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if it.Last() {
		return binary.BigEndian.Uint64(it.Key()[1:]), nil
	}
	return 0, it.Error()
}

type commit struct{ b *cpebble.Batch }

func (c commit) Wait() error {
	err := c.b.SyncWait()
	c.b.Close()
	return err
}

// Append implements engine.Store: the archive records and their timeline
// entries go in one batch, applied at once and synced in a group commit.
func (s *DB) Append(recs []engine.Record) (engine.Commit, error) {
	b := s.db.NewBatch()
	var kbuf []byte
	for i := range recs {
		r := &recs[i]
		// Encode straight into the batch: the value's exact size is known.
		hdr := uvarintLen(uint64(r.Partition)) + varintLen(r.Time) + uvarintLen(uint64(len(r.Key)))
		op := b.SetDeferred(9, hdr+len(r.Key)+len(r.Raw))
		op.Key[0] = 'a'
		binary.BigEndian.PutUint64(op.Key[1:], r.Seq)
		v := op.Value[:0]
		v = binary.AppendUvarint(v, uint64(r.Partition))
		v = binary.AppendVarint(v, r.Time)
		v = binary.AppendUvarint(v, uint64(len(r.Key)))
		v = append(v, r.Key...)
		_ = append(v, r.Raw...)
		if err := op.Finish(); err != nil {
			b.Close()
			return nil, err
		}
		kbuf = appendTimelineKey(kbuf[:0], r.Key, r.Time, r.Seq)
		if err := b.Set(kbuf, nil, nil); err != nil {
			b.Close()
			return nil, err
		}
	}
	if err := s.db.ApplyNoSyncWait(b, cpebble.Sync); err != nil {
		b.Close()
		return nil, err
	}
	return commit{b}, nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func varintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

func decodeRecord(seq uint64, v []byte) (engine.Record, error) {
	r := engine.Record{Seq: seq}
	p, n := binary.Uvarint(v)
	if n <= 0 {
		return r, errCorrupt("archive record", seq)
	}
	v = v[n:]
	t, n := binary.Varint(v)
	if n <= 0 {
		return r, errCorrupt("archive record", seq)
	}
	v = v[n:]
	kl, n := binary.Uvarint(v)
	if n <= 0 || uint64(len(v)-n) < kl {
		return r, errCorrupt("archive record", seq)
	}
	r.Partition, r.Time = int(p), t
	r.Key = string(v[n : n+int(kl)])
	r.Raw = v[n+int(kl):]
	return r, nil
}

func errCorrupt(what string, seq uint64) error {
	return fmt.Errorf("corrupt %s %d", what, seq)
}

// Replay implements engine.Store. Record.Raw is valid only during fn.
func (s *DB) Replay(after uint64, fn func(engine.Record) error) error {
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: archiveKey(after + 1), UpperBound: []byte{'b'}})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		seq := binary.BigEndian.Uint64(it.Key()[1:])
		r, err := decodeRecord(seq, it.Value())
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return it.Error()
}

// Timeline implements engine.Store.
func (s *DB) Timeline(key string, from, to int64, fn func(engine.Record) bool) error {
	lo := appendTimelineKey(nil, key, from, 0)
	hi := appendTimelineKey(nil, key, to, 0)
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		seq := binary.BigEndian.Uint64(k[len(k)-8:])
		v, closer, err := s.db.Get(archiveKey(seq))
		if err != nil {
			return fmt.Errorf("timeline of %q: event %d: %w", key, seq, err)
		}
		r, err := decodeRecord(seq, v)
		if err == nil {
			r.Raw = bytes.Clone(r.Raw)
		}
		closer.Close()
		if err != nil {
			return err
		}
		if !fn(r) {
			break
		}
	}
	return it.Error()
}

// Keys implements engine.Store by skipping through the timeline index, one
// seek per twin.
func (s *DB) Keys(after string, fn func(string) bool) error {
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: []byte{'t'}, UpperBound: []byte{'u'}})
	if err != nil {
		return err
	}
	defer it.Close()
	seek := []byte{'t'}
	if after != "" {
		seek = append(append(seek, after...), 1) // past every entry of after
	}
	for ok := it.SeekGE(seek); ok; {
		k := it.Key()
		end := bytes.IndexByte(k[1:], 0)
		if end < 0 {
			return fmt.Errorf("corrupt timeline key %q", k)
		}
		key := string(k[1 : 1+end])
		if !fn(key) {
			return nil
		}
		ok = it.SeekGE(append(append([]byte{'t'}, key...), 1))
	}
	return it.Error()
}

// LoadTwin implements engine.Store.
func (s *DB) LoadTwin(key string) ([]byte, bool, error) {
	v, closer, err := s.db.Get(snapshotKey(key))
	if errors.Is(err, cpebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, true, nil
}

func markKey(p int) []byte { return []byte{'w', byte(p >> 8), byte(p)} }

// SaveTwins implements engine.Store.
func (s *DB) SaveTwins(snaps []engine.Snapshot, marks []engine.PartitionMark, ids []engine.SeenIDs, sync bool) error {
	b := s.db.NewBatch()
	defer b.Close()
	var kbuf []byte
	for _, sn := range snaps {
		kbuf = append(append(kbuf[:0], 's'), sn.Key...)
		if err := b.Set(kbuf, sn.Data, nil); err != nil {
			return err
		}
	}
	for _, m := range marks {
		v := binary.AppendUvarint(nil, m.Watermark)
		v = binary.AppendVarint(v, m.Stored)
		if err := b.Set(markKey(m.Partition), v, nil); err != nil {
			return err
		}
	}
	for _, set := range ids {
		v := make([]byte, 0, 2+12*len(set.IDs))
		v = binary.BigEndian.AppendUint16(v, uint16(set.Partition))
		for _, id := range set.IDs {
			v = binary.BigEndian.AppendUint64(v, id.H)
			v = binary.BigEndian.AppendUint32(v, id.Check)
		}
		k := binary.BigEndian.AppendUint64([]byte{'d'}, s.idSeq.Add(1))
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
	}
	wo := cpebble.NoSync
	if sync {
		wo = cpebble.Sync
	}
	return b.Commit(wo)
}

// LoadMarks implements engine.Store.
func (s *DB) LoadMarks() ([]engine.PartitionMark, error) {
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: []byte{'w'}, UpperBound: []byte{'x'}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []engine.PartitionMark
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 3 {
			return nil, fmt.Errorf("corrupt partition mark key %q", k)
		}
		wm, n := binary.Uvarint(v)
		if n <= 0 {
			return nil, fmt.Errorf("corrupt partition mark %q", k)
		}
		stored, m := binary.Varint(v[n:])
		if m <= 0 {
			return nil, fmt.Errorf("corrupt partition mark %q", k)
		}
		out = append(out, engine.PartitionMark{Partition: int(k[1])<<8 | int(k[2]), Watermark: wm, Stored: stored})
	}
	return out, it.Error()
}

// LoadIDs implements engine.Store.
func (s *DB) LoadIDs(fn func(engine.SeenIDs) error) error {
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: []byte{'d'}, UpperBound: []byte{'e'}})
	if err != nil {
		return err
	}
	defer it.Close()
	var ids []engine.IDHash
	for ok := it.First(); ok; ok = it.Next() {
		v := it.Value()
		if len(v) < 2 || (len(v)-2)%12 != 0 {
			return fmt.Errorf("corrupt seen-id batch %x", it.Key())
		}
		p := int(binary.BigEndian.Uint16(v))
		ids = ids[:0]
		for v = v[2:]; len(v) > 0; v = v[12:] {
			ids = append(ids, engine.IDHash{H: binary.BigEndian.Uint64(v), Check: binary.BigEndian.Uint32(v[8:])})
		}
		if err := fn(engine.SeenIDs{Partition: p, IDs: ids}); err != nil {
			return err
		}
	}
	return it.Error()
}

// ResetTwins implements engine.Store.
func (s *DB) ResetTwins() error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, r := range [][2]byte{{'s', 't'}, {'w', 'x'}} {
		if err := b.DeleteRange([]byte{r[0]}, []byte{r[1]}, nil); err != nil {
			return err
		}
	}
	return b.Commit(cpebble.Sync)
}

func schemaKey(v int) []byte {
	return binary.BigEndian.AppendUint32([]byte{'v'}, uint32(v))
}

// SaveSchema implements engine.Store.
func (s *DB) SaveSchema(v int, src []byte) error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(schemaKey(v), src, nil); err != nil {
		return err
	}
	if err := b.Set([]byte("mschema"), []byte(strconv.Itoa(v)), nil); err != nil {
		return err
	}
	return b.Commit(cpebble.Sync)
}

// ActiveSchema implements engine.Store.
func (s *DB) ActiveSchema() (int, []byte, error) {
	raw, ok, err := s.Meta("schema")
	if err != nil || !ok {
		return 0, nil, err
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil {
		return 0, nil, fmt.Errorf("corrupt active schema version %q", raw)
	}
	src, ok, err := s.Schema(v)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, fmt.Errorf("active schema version %d is missing", v)
	}
	return v, src, nil
}

// Schema implements engine.Store.
func (s *DB) Schema(v int) ([]byte, bool, error) { return s.get(schemaKey(v)) }

// Schemas returns every stored schema version number, ascending.
func (s *DB) Schemas() ([]int, error) {
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: []byte{'v'}, UpperBound: []byte{'w'}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []int
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, int(binary.BigEndian.Uint32(it.Key()[1:])))
	}
	return out, it.Error()
}

// Meta implements engine.Store.
func (s *DB) Meta(name string) ([]byte, bool, error) { return s.get(append([]byte{'m'}, name...)) }

// SetMeta implements engine.Store.
func (s *DB) SetMeta(name string, val []byte) error {
	return s.db.Set(append([]byte{'m'}, name...), val, cpebble.Sync)
}

func (s *DB) get(k []byte) ([]byte, bool, error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, cpebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, true, nil
}

// quietLogger drops Pebble's informational chatter; errors still surface
// through returned errors, and fatal conditions still stop the process.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
