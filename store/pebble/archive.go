package pebble

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"

	cpebble "github.com/cockroachdb/pebble/v2"
	"github.com/twinhub/twinhub/engine"
)

// The archive's event bytes live in append-only segment files beside the
// Pebble database, not in Pebble itself. Through Pebble every event was
// written to its WAL, copied into a memtable, flushed into a blob file and
// compressed on the way: on two cores that was half of ingestion's cost.
// Here an event is written once, by one goroutine that group-commits:
// it writes every chunk waiting, calls fdatasync once, and acknowledges them
// all. Pebble keeps a small index entry per chunk ('a' first-seq ->
// segment, offset, count), written after the chunk is durable; the segments
// themselves are the truth, and Open indexes any durable tail the index
// missed (a crash between the fsync and the index write) and cuts a torn
// one.
//
// A chunk on disk: length(4) crc32c(4) payload, where the payload is
// first-seq(8) count(uvarint) and the records as chunkReader reads them:
// partition, event time, key, source (lineage), raw event.

const (
	segmentBytes = 256 << 20
	chunkHeader  = 8
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type archiveLog struct {
	dir string
	db  *cpebble.DB

	mu       sync.Mutex
	cond     *sync.Cond
	queue    []*pendingChunk // waiting for the writer
	inflight map[uint64]*pendingChunk
	// free are written chunks' buffers, for reuse: a fresh one per chunk
	// was the engine's largest allocation (about 200 bytes an event), which
	// the collector then had to clear and collect.
	free   [][]byte
	closed bool
	done   chan struct{}

	// owned by the writer goroutine (and Open before it starts)
	w            *os.File
	seg          uint32
	offset       int64
	buf          []byte
	broken       error
	pendingSyncs sync.WaitGroup // groups handed to the syncer and not yet done

	rmu     sync.Mutex
	readers map[uint32]*os.File
}

type pendingChunk struct {
	first uint64
	count uint64
	data  []byte // header and payload
	seg   uint32
	off   int64
	err   error
	done  chan struct{}
}

func (p *pendingChunk) Wait() error {
	<-p.done
	return p.err
}

type multiCommit []*pendingChunk

func (m multiCommit) Wait() error {
	var first error
	for _, p := range m {
		if err := p.Wait(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func segmentName(dir string, seg uint32) string {
	return filepath.Join(dir, fmt.Sprintf("%08d.seg", seg))
}

// indexValue is a chunk's location: segment(4) offset(8) count(uvarint).
func indexValue(seg uint32, off int64, count uint64) []byte {
	v := binary.BigEndian.AppendUint32(nil, seg)
	v = binary.BigEndian.AppendUint64(v, uint64(off))
	return binary.AppendUvarint(v, count)
}

func parseIndexValue(v []byte) (seg uint32, off int64, count uint64, ok bool) {
	if len(v) < 13 {
		return 0, 0, 0, false
	}
	seg, off = binary.BigEndian.Uint32(v), int64(binary.BigEndian.Uint64(v[4:]))
	count, n := binary.Uvarint(v[12:])
	return seg, off, count, n > 0
}

// openArchive opens the segments in dir, indexes a durable tail the index
// lacks, truncates a torn one, and starts the writer.
func openArchive(dir string, db *cpebble.DB) (*archiveLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l := &archiveLog{dir: dir, db: db, inflight: map[uint64]*pendingChunk{}, done: make(chan struct{}), readers: map[uint32]*os.File{}}
	l.cond = sync.NewCond(&l.mu)
	// Resume after the chunk the index knows to be last in the files.
	seg, off := uint32(1), int64(0)
	if v, ok, err := getValue(db, []byte("marchive-end")); err != nil {
		return nil, err
	} else if ok && len(v) == 12 {
		seg, off = binary.BigEndian.Uint32(v), int64(binary.BigEndian.Uint64(v[4:]))
	}
	if err := l.recoverTail(seg, off); err != nil {
		return nil, err
	}
	go l.run()
	return l, nil
}

// recoverTail scans from (seg, off) to the end of the last segment, indexing
// every whole chunk and truncating at the first torn or corrupt one.
func (l *archiveLog) recoverTail(seg uint32, off int64) error {
	b := l.db.NewBatch()
	defer b.Close()
	for {
		f, err := os.OpenFile(segmentName(l.dir, seg), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		if st, err := f.Stat(); err == nil && st.Size() < off {
			// The index is ahead of the file: the machine lost writes that the
			// index (synced by other Pebble writes) kept. Rescan the segment.
			off = 0
		}
		end, torn, err := l.indexChunks(f, seg, off, b)
		if err != nil {
			f.Close()
			return err
		}
		next := segmentName(l.dir, seg+1)
		if _, err := os.Stat(next); err == nil {
			f.Close()
			if torn {
				// A segment is synced before the next one is created, so a
				// crash cannot tear one that has a successor: this is damage,
				// and cutting it would drop acknowledged events after it.
				return fmt.Errorf("archive segment %s is damaged at offset %d and later segments exist; refusing to truncate acknowledged events (restore the file or move the later segments away)", segmentName(l.dir, seg), end)
			}
			seg, off = seg+1, 0
			continue
		}
		if err := f.Truncate(end); err != nil { // a torn tail was never acknowledged
			f.Close()
			return err
		}
		if _, err := f.Seek(end, io.SeekStart); err != nil {
			f.Close()
			return err
		}
		l.w, l.seg, l.offset = f, seg, end
		break
	}
	if err := b.Set([]byte("marchive-end"), endValue(l.seg, l.offset), nil); err != nil {
		return err
	}
	if err := l.dropDangling(b); err != nil {
		return err
	}
	return b.Commit(cpebble.Sync)
}

// dropDangling removes index entries that point past the archive's end, so
// that no lost event is ever read or counted.
func (l *archiveLog) dropDangling(b *cpebble.Batch) error {
	it, err := l.db.NewIter(&cpebble.IterOptions{LowerBound: []byte{'a'}, UpperBound: []byte{'b'}})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		seg, off, _, valid := parseIndexValue(it.Value())
		if !valid || seg > l.seg || (seg == l.seg && off >= l.offset) {
			if err := b.Delete(append([]byte(nil), it.Key()...), nil); err != nil {
				return err
			}
		}
	}
	return it.Error()
}

// indexChunks indexes the whole chunks of f from off on and returns where
// they end and whether a torn or corrupt chunk follows.
func (l *archiveLog) indexChunks(f *os.File, seg uint32, off int64, b *cpebble.Batch) (int64, bool, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	var hdr [chunkHeader]byte
	for off < st.Size() {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			return off, true, nil
		}
		n := int64(binary.BigEndian.Uint32(hdr[:]))
		if n < 9 || off+chunkHeader+n > st.Size() {
			return off, true, nil
		}
		payload := make([]byte, n)
		if _, err := f.ReadAt(payload, off+chunkHeader); err != nil {
			return off, true, nil
		}
		if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(hdr[4:]) {
			return off, true, nil
		}
		first := binary.BigEndian.Uint64(payload)
		count, k := binary.Uvarint(payload[8:])
		if k <= 0 || count == 0 {
			return off, true, nil
		}
		if err := b.Set(archiveKey(first), indexValue(seg, off, count), nil); err != nil {
			return 0, false, err
		}
		off += chunkHeader + n
	}
	return off, false, nil
}

func endValue(seg uint32, off int64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(nil, seg), uint64(off))
}

// append queues encoded chunks; each is durable when its Wait returns.
func (l *archiveLog) append(chunks []*pendingChunk) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("archive is closed")
	}
	for _, c := range chunks {
		l.inflight[c.first] = c
	}
	l.queue = append(l.queue, chunks...)
	l.cond.Signal()
	return nil
}

// run is the writer goroutine. It writes what is queued and hands the group
// to the syncer, then goes on writing the next group while that one syncs,
// so an acknowledgement waits for one write and one sync rather than for
// the groups before it too. It exits after Close once the queue is empty.
func (l *archiveLog) run() {
	syncq := make(chan *syncGroup, 4)
	synced := make(chan struct{})
	go l.syncLoop(syncq, synced)
	defer func() {
		close(syncq)
		<-synced
		close(l.done)
	}()
	var batch []*pendingChunk
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closed {
			l.cond.Wait()
		}
		if len(l.queue) == 0 && l.closed {
			l.mu.Unlock()
			return
		}
		batch, l.queue = l.queue, nil
		l.mu.Unlock()

		g := &syncGroup{chunks: batch}
		if l.broken != nil {
			g.err = l.broken
		} else if err := l.writeGroup(g); err != nil {
			// After a failed write the file's tail is unknown: refuse
			// everything from now on rather than write after a hole.
			l.broken = fmt.Errorf("archive write failed, restart to recover: %w", err)
			g.err = l.broken
		}
		l.pendingSyncs.Add(1)
		syncq <- g
	}
}

// syncGroup is a written group of chunks on its way to durability.
type syncGroup struct {
	chunks []*pendingChunk
	f      *os.File
	index  *cpebble.Batch
	err    error
}

// syncLoop makes each group durable in order (fdatasync covers everything
// written before it), then indexes and acknowledges it.
func (l *archiveLog) syncLoop(syncq <-chan *syncGroup, done chan<- struct{}) {
	defer close(done)
	for g := range syncq {
		err := g.err
		if err == nil {
			if err = fdatasync(g.f); err != nil {
				err = fmt.Errorf("sync archive: %w", err)
			}
		}
		if g.index != nil {
			// The index follows the data: if it is lost in a crash, Open
			// rebuilds it from the segment tail.
			if err == nil {
				err = g.index.Commit(cpebble.NoSync)
			}
			g.index.Close()
		}
		l.mu.Lock()
		for _, c := range g.chunks {
			c.err = err
			delete(l.inflight, c.first)
			close(c.done)
			// Written, and no longer readable here: readers copy an
			// inflight chunk under mu (chunkPayload).
			if cap(c.data) <= maxFreeChunk && len(l.free) < maxFreeChunks {
				l.free = append(l.free, c.data[:0])
			}
			c.data = nil
		}
		l.mu.Unlock()
		l.pendingSyncs.Done()
	}
}

// writeGroup writes g's chunks, rotating segments as they fill, and builds
// their index entries.
func (l *archiveLog) writeGroup(g *syncGroup) error {
	ib := l.db.NewBatch()
	buf := l.buf[:0]
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		_, err := l.w.Write(buf)
		l.offset += int64(len(buf))
		buf = buf[:0]
		return err
	}
	for _, c := range g.chunks {
		if l.offset+int64(len(buf))+int64(len(c.data)) > segmentBytes && l.offset+int64(len(buf)) > 0 {
			if err := flush(); err != nil {
				ib.Close()
				return err
			}
			if err := l.rotate(); err != nil {
				ib.Close()
				return err
			}
		}
		c.seg, c.off = l.seg, l.offset+int64(len(buf))
		buf = append(buf, c.data...)
		if err := ib.Set(archiveKey(c.first), indexValue(c.seg, c.off, c.count), nil); err != nil {
			ib.Close()
			return err
		}
	}
	if err := flush(); err != nil {
		ib.Close()
		return err
	}
	if cap(buf) <= 16<<20 {
		l.buf = buf
	}
	if err := ib.Set([]byte("marchive-end"), endValue(l.seg, l.offset), nil); err != nil {
		ib.Close()
		return err
	}
	g.f, g.index = l.w, ib
	return nil
}

// rotate starts a new segment. Groups still syncing hold the old file, so
// it waits for them before syncing and closing it.
func (l *archiveLog) rotate() error {
	l.pendingSyncs.Wait()
	if err := fdatasync(l.w); err != nil {
		return err
	}
	if err := l.w.Close(); err != nil {
		return err
	}
	f, err := os.OpenFile(segmentName(l.dir, l.seg+1), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if d, err := os.Open(l.dir); err == nil { // make the new file's name durable
		d.Sync()
		d.Close()
	}
	l.w, l.seg, l.offset = f, l.seg+1, 0
	return nil
}

func fdatasync(f *os.File) error { return f.Sync() }

// close stops the writer after the queued chunks are written.
func (l *archiveLog) close() error {
	l.mu.Lock()
	l.closed = true
	l.cond.Signal()
	l.mu.Unlock()
	<-l.done
	var first error
	if l.w != nil {
		if err := l.w.Close(); err != nil {
			first = err
		}
	}
	l.rmu.Lock()
	for _, f := range l.readers {
		f.Close()
	}
	l.rmu.Unlock()
	return first
}

func (l *archiveLog) reader(seg uint32) (*os.File, error) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if f, ok := l.readers[seg]; ok {
		return f, nil
	}
	f, err := os.Open(segmentName(l.dir, seg))
	if err != nil {
		return nil, err
	}
	l.readers[seg] = f
	return f, nil
}

// readChunk returns the payload of the chunk at (seg, off).
func (l *archiveLog) readChunk(seg uint32, off int64) ([]byte, error) {
	f, err := l.reader(seg)
	if err != nil {
		return nil, err
	}
	var hdr [chunkHeader]byte
	if _, err := f.ReadAt(hdr[:], off); err != nil {
		return nil, fmt.Errorf("read archive chunk at %d:%d: %w", seg, off, err)
	}
	payload := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := f.ReadAt(payload, off+chunkHeader); err != nil {
		return nil, fmt.Errorf("read archive chunk at %d:%d: %w", seg, off, err)
	}
	if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(hdr[4:]) {
		return nil, fmt.Errorf("archive chunk at %d:%d is corrupt (checksum mismatch)", seg, off)
	}
	return payload, nil
}

// encodeChunks splits recs into chunks of consecutive seqs of at most
// chunkBytes and encodes them.
func (l *archiveLog) encodeChunks(recs []engine.Record) []*pendingChunk {
	var out []*pendingChunk
	for i := 0; i < len(recs); {
		j, size := i, 0
		for j < len(recs) && (j == i || (recs[j].Seq == recs[j-1].Seq+1 && size < chunkBytes)) {
			size += len(recs[j].Key) + len(recs[j].Source) + len(recs[j].Raw) + 20
			j++
		}
		data := l.buffer(chunkHeader + size + 16)[:chunkHeader]
		data = binary.BigEndian.AppendUint64(data, recs[i].Seq)
		data = binary.AppendUvarint(data, uint64(j-i))
		for k := i; k < j; k++ {
			r := &recs[k]
			data = binary.AppendUvarint(data, uint64(r.Partition))
			data = binary.AppendVarint(data, r.Time)
			data = binary.AppendUvarint(data, uint64(len(r.Key)))
			data = append(data, r.Key...)
			data = binary.AppendUvarint(data, uint64(len(r.Source)))
			data = append(data, r.Source...)
			data = binary.AppendUvarint(data, uint64(len(r.Raw)))
			data = append(data, r.Raw...)
		}
		payload := data[chunkHeader:]
		binary.BigEndian.PutUint32(data, uint32(len(payload)))
		binary.BigEndian.PutUint32(data[4:], crc32.Checksum(payload, crcTable))
		out = append(out, &pendingChunk{first: recs[i].Seq, count: uint64(j - i), data: data, done: make(chan struct{})})
		i = j
	}
	return out
}

// Reused chunk buffers: enough for a few batches in flight, and only
// buffers of ordinary chunks (a single large event makes a larger one).
const (
	maxFreeChunks = 256
	maxFreeChunk  = 2 * chunkBytes
)

// buffer returns an empty buffer with room for n bytes, a reused one when
// one is free and large enough.
func (l *archiveLog) buffer(n int) []byte {
	l.mu.Lock()
	if k := len(l.free); k > 0 && cap(l.free[k-1]) >= n {
		b := l.free[k-1]
		l.free[k-1] = nil
		l.free = l.free[:k-1]
		l.mu.Unlock()
		return b
	}
	l.mu.Unlock()
	return make([]byte, 0, max(n, min(chunkBytes+chunkBytes/4, maxFreeChunk)))
}

// chunkPayload returns the chunk holding seq, looking at chunks still being
// written first (they are visible before they are durable, like the twins
// they were applied to).
func (s *DB) chunkPayload(seq uint64) (uint64, []byte, error) {
	s.log.mu.Lock()
	for first, c := range s.log.inflight {
		if seq >= first && seq < first+c.count {
			data := bytes.Clone(c.data[chunkHeader:]) // the buffer is reused once written
			s.log.mu.Unlock()
			return first, data, nil
		}
	}
	s.log.mu.Unlock()
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: []byte{'a'}, UpperBound: []byte{'b'}})
	if err != nil {
		return 0, nil, err
	}
	defer it.Close()
	if !it.SeekLT(archiveKey(seq + 1)) {
		return 0, nil, fmt.Errorf("archived event %d is missing", seq)
	}
	first := binary.BigEndian.Uint64(it.Key()[1:])
	seg, off, count, ok := parseIndexValue(it.Value())
	if !ok || seq >= first+count {
		return 0, nil, fmt.Errorf("archived event %d is missing", seq)
	}
	payload, err := s.log.readChunk(seg, off)
	return first, payload, err
}

// sortedChunks lists indexed chunks whose seqs may exceed after, by first seq.
type chunkRef struct {
	first, count uint64
	seg          uint32
	off          int64
}

func (s *DB) chunksAfter(after uint64) ([]chunkRef, error) {
	// Chunks hold at most a shard batch of consecutive seqs, so a chunk with
	// a seq above after starts no earlier than this.
	lo := uint64(0)
	if after > 1<<20 {
		lo = after - 1<<20
	}
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: archiveKey(lo), UpperBound: []byte{'b'}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []chunkRef
	for ok := it.First(); ok; ok = it.Next() {
		first := binary.BigEndian.Uint64(it.Key()[1:])
		seg, off, count, ok := parseIndexValue(it.Value())
		if !ok {
			return nil, fmt.Errorf("corrupt archive index entry %d", first)
		}
		if first+count-1 > after {
			out = append(out, chunkRef{first, count, seg, off})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].first < out[j].first })
	return out, it.Error()
}

func getValue(db *cpebble.DB, k []byte) ([]byte, bool, error) {
	v, closer, err := db.Get(k)
	if errors.Is(err, cpebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, true, nil
}
