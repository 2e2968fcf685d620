// Package pebble is Twinhub's embedded store on CockroachDB's Pebble: the
// event archive, the per-twin timeline, twin snapshots, checkpoints, schema
// versions, dead letters and source mappings, all in one database so one
// write batch can cover several of them.
//
// Key layout (one leading byte names the kind of record):
//
//	'a' seq(8)                          archive index: where the chunk from seq on lies (archive.go)
//	't' run(8) key                      timeline run: the twin's (time, seq) pairs in that run
//	'k' key                             twin directory entry (empty value)
//	'r' run(8)                          a timeline run's size in twin keys
//	's' key                             twin snapshot
//	'w' partition(2)                    partition mark: watermark, stored twins, reflects
//	'd' n(8)                            a batch of seen event-id hashes
//	'v' version(4)                      schema source
//	'm' name                            meta values ("schema" = active version)
//	'x' 0x00 id(8)                      dead letter (deadletters.go)
//	'x' 0x01 len source id(8)           dead letter index by source; len is a uvarint
//	'x' 0x02                            the last dead letter ID handed out
//	'g' name                            source mapping (YAML)
//	'o' id(8)                           output log block: one batch's outputs from id on (outcodec.go)
//	'n' id(8)                           action as it is now (outcodec.go); empty: as in its output block
//	'p' id(8)                           index of actions pending approval
//	'j' segment 0x00 key                segment membership, as of the twins' snapshots (written with them)
//	'q' 0x00 shard(2)                   by partition, the highest seq whose outputs are logged, as the shard knew
//	'h' segment 0x00 time(8)            segment size history
//	'y' 0x00 id(8)                      webhook delivery, JSON (deliveries.go)
//	'y' 0x01                            the webhook dispatcher's output cursor and last delivery ID
//	'y' 0x02 status(1) id(8)            index of deliveries by status; the value is the webhook name
//
// The archived events themselves are in append-only segment files in the
// archive/ folder beside the database (archive.go says why); Pebble indexes
// them per chunk of up to chunkBytes of consecutive events.
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
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	cpebble "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
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
	log    *archiveLog
	opts   *cpebble.Options
	dir    string
	tl     timelineRuns
	idSeq  atomic.Uint64
	dl     deadLetters
	dv     sync.Mutex // serialises delivery writes (deliveries.go)
	actMu  sync.Mutex // serialises updates of actions with their moves out of the output log (outputs.go)
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
		// MinLZ compresses about as well as Snappy for less CPU, which is
		// what two cores run short of.
		opts.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.FastestCompression }
	}
	// Values of 4 KiB and more (output blocks, mostly) go to blob files,
	// which compactions reference instead of rewriting. The output log is
	// append-only, so rewriting it level after level was pure cost: about
	// 0.2 µs an event (6%) under a load with 50 rules. Trimmed blocks leave
	// garbage in the blob files, rewritten away at 20%.
	opts.Experimental.ValueSeparationPolicy = func() cpebble.ValueSeparationPolicy {
		return cpebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           4096,
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     5 * time.Minute,
			TargetGarbageRatio:    0.2,
		}
	}
	opts.EnsureDefaults()
	db, err := cpebble.Open(dir, opts)
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &DB{db: db, opts: opts, dir: dir, cache: cache}
	if err := s.loadRuns(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.loadDeadLetters(); err != nil {
		s.Close()
		return nil, fmt.Errorf("load dead letters: %w", err)
	}
	if s.log, err = openArchive(filepath.Join(dir, "archive"), db); err != nil {
		s.Close()
		return nil, fmt.Errorf("open archive: %w", err)
	}
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
	var err error
	if s.log != nil {
		err = s.log.close()
	}
	err = errors.Join(err, s.db.Close())
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

func snapshotKey(key string) []byte { return append([]byte{'s'}, key...) }

// chunkBytes bounds an archive chunk, and so what a timeline read decodes to
// reach one event.
const chunkBytes = 32 << 10

// LastSeq implements engine.Store.
func (s *DB) LastSeq() (uint64, error) {
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: []byte{'a'}, UpperBound: []byte{'b'}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	first := binary.BigEndian.Uint64(it.Key()[1:])
	_, _, count, ok := parseIndexValue(it.Value())
	if !ok || count == 0 {
		return 0, errCorrupt("archive index entry", first)
	}
	return first + count - 1, nil
}

// Append implements engine.Store: recs, in chunks of consecutive seqs, go to
// the archive's writer; the Commit waits for their group fsync.
func (s *DB) Append(recs []engine.Record) (engine.Commit, error) {
	chunks := s.log.encodeChunks(recs)
	if err := s.log.append(chunks); err != nil {
		return nil, err
	}
	return multiCommit(chunks), nil
}

// chunkReader walks the records of one archive chunk.
type chunkReader struct {
	seq  uint64 // of the next record
	left uint64
	v    []byte
}

// newChunkReader reads a chunk's payload: first seq(8), count, records.
func newChunkReader(payload []byte) (chunkReader, error) {
	if len(payload) < 9 {
		return chunkReader{}, errCorrupt("archive chunk", 0)
	}
	first := binary.BigEndian.Uint64(payload)
	n, k := binary.Uvarint(payload[8:])
	if k <= 0 || n == 0 {
		return chunkReader{}, errCorrupt("archive chunk", first)
	}
	return chunkReader{seq: first, left: n, v: payload[8+k:]}, nil
}

// next decodes the next record; Raw aliases the chunk.
func (c *chunkReader) next() (engine.Record, bool, error) {
	if c.left == 0 {
		return engine.Record{}, false, nil
	}
	r := engine.Record{Seq: c.seq}
	bad := func() (engine.Record, bool, error) { return r, false, errCorrupt("archive record", r.Seq) }
	p, n := binary.Uvarint(c.v)
	if n <= 0 {
		return bad()
	}
	c.v = c.v[n:]
	t, n := binary.Varint(c.v)
	if n <= 0 {
		return bad()
	}
	c.v = c.v[n:]
	kl, n := binary.Uvarint(c.v)
	if n <= 0 || uint64(len(c.v)-n) < kl {
		return bad()
	}
	r.Partition, r.Time, r.Key = int(p), t, string(c.v[n:n+int(kl)])
	c.v = c.v[n+int(kl):]
	sl, n := binary.Uvarint(c.v)
	if n <= 0 || uint64(len(c.v)-n) < sl {
		return bad()
	}
	r.Source = string(c.v[n : n+int(sl)])
	c.v = c.v[n+int(sl):]
	rl, n := binary.Uvarint(c.v)
	if n <= 0 || uint64(len(c.v)-n) < rl {
		return bad()
	}
	r.Raw = c.v[n : n+int(rl)]
	c.v = c.v[n+int(rl):]
	c.seq++
	c.left--
	return r, true, nil
}

func errCorrupt(what string, seq uint64) error {
	return fmt.Errorf("corrupt %s %d", what, seq)
}

// Replay implements engine.Store. Record.Raw is valid only during fn.
func (s *DB) Replay(after uint64, fn func(engine.Record) error) error {
	chunks, err := s.chunksAfter(after)
	if err != nil {
		return err
	}
	for _, ch := range chunks {
		payload, err := s.log.readChunk(ch.seg, ch.off)
		if err != nil {
			return err
		}
		c, err := newChunkReader(payload)
		if err != nil {
			return err
		}
		for {
			r, more, err := c.next()
			if err != nil {
				return err
			}
			if !more {
				break
			}
			if r.Seq <= after {
				continue
			}
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// readRecord finds event seq in its chunk; the returned Raw is a copy.
func (s *DB) readRecord(seq uint64) (engine.Record, error) {
	_, payload, err := s.chunkPayload(seq)
	if err != nil {
		return engine.Record{}, err
	}
	c, err := newChunkReader(payload)
	if err != nil {
		return engine.Record{}, err
	}
	for {
		r, more, err := c.next()
		if err != nil {
			return r, err
		}
		if !more {
			return r, fmt.Errorf("archived event %d is missing", seq)
		}
		if r.Seq == seq {
			r.Raw = bytes.Clone(r.Raw)
			return r, nil
		}
	}
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
	if err := setTwins(b, snaps, marks); err != nil {
		return err
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

// setTwins adds snapshots and partition marks to b.
func setTwins(b *cpebble.Batch, snaps []engine.Snapshot, marks []engine.PartitionMark) error {
	var kbuf []byte
	for _, sn := range snaps {
		kbuf = append(append(kbuf[:0], 's'), sn.Key...)
		if err := b.Set(kbuf, sn.Data, nil); err != nil {
			return err
		}
		// The membership index follows the snapshots (outputs.go).
		for _, m := range sn.Members {
			var err error
			if m.In {
				err = b.Set(memberKey(m.Segment, m.Key), nil, nil)
			} else {
				err = b.Delete(memberKey(m.Segment, m.Key), nil)
			}
			if err != nil {
				return err
			}
		}
	}
	var v []byte
	for _, m := range marks {
		v = binary.AppendUvarint(v[:0], m.Watermark)
		v = binary.AppendVarint(v, m.Stored)
		v = binary.AppendUvarint(v, m.Reflects)
		if err := b.Set(markKey(m.Partition), v, nil); err != nil {
			return err
		}
	}
	return nil
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
		reflects, r := binary.Uvarint(v[n+m:])
		if r <= 0 {
			return nil, fmt.Errorf("corrupt partition mark %q", k)
		}
		out = append(out, engine.PartitionMark{Partition: int(k[1])<<8 | int(k[2]), Watermark: wm, Stored: stored, Reflects: reflects})
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

// ResetDerived implements engine.Store.
func (s *DB) ResetDerived() error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, r := range [][2]byte{{'d', 'e'}, {'k', 'l'}, {'r', 'u'}, {'w', 'x'}} { // 'r'..'u': run sizes, snapshots, runs
		if err := b.DeleteRange([]byte{r[0]}, []byte{r[1]}, nil); err != nil {
			return err
		}
	}
	if err := b.Commit(cpebble.Sync); err != nil {
		return err
	}
	s.tl.mu.Lock()
	s.tl.runs = nil
	s.tl.mu.Unlock()
	return nil
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
