package engine

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/agg"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/schema"
)

// partition is one slice of the key space. Only its shard goroutine writes
// it; readers hold the shard's read lock.
type partition struct {
	id        int
	shard     *shard
	twins     twinTable     // hot twins
	seen      idSet         // ids of archived events
	stored    int64         // twins with a snapshot in the store
	hotStored int64         // of which hot
	wm        uint64        // persisted watermark
	applied   uint64        // highest seq applied
	logged    atomic.Uint64 // highest seq whose outputs are logged (OutputWrite.Logged)
}

// job is a unit of work for a shard: part of an ingest batch, a replayed
// chunk of the archive, or a control function run between batches.
type job struct {
	b    *ingest.Batch
	sc   *schema.Schema
	idx  []int32  // events of b for this shard
	part []int32  // their partitions
	hash []uint64 // their keys' hashes (keyHash)
	seqs []uint64
	// replay marks archived events: they carry their seqs and are applied
	// without archiving or dedupe rejection.
	replay bool
	ctl    func() error
	step   bool // ctl need not wait for earlier batches' acknowledgement
	wg     *sync.WaitGroup
	err    error
}

type pending struct {
	ev   *twinhub.Event
	p    *partition
	seq  uint64
	kh   uint64 // keyHash(ev.Key)
	from *job
	id   IDHash
}

type dirtyEntry struct {
	t     *twin
	since uint64
}

// idAt is an id applied at seq in partition p: IDHash's fields laid out
// flat, 24 bytes rather than 32, as a shard queues one per event.
type idAt struct {
	seq   uint64
	h     uint64
	check uint32
	p     int32
}

// idQueue holds the ids applied but not yet persisted, in seq order. A
// shard holds up to ReplayLag of them, a million by default: in one slice
// they were copied on every doubling and shifted down after every save,
// so they are kept in chunks, and a save drops whole chunks.
type idQueue struct {
	chunks [][]idAt // each idChunk long, but the last may be shorter
	head   int      // entries of chunks[0] already dropped
	spare  []idAt   // a dropped chunk, for reuse
}

const idChunk = 4096

func (q *idQueue) push(x idAt) {
	if n := len(q.chunks); n == 0 || len(q.chunks[n-1]) == idChunk {
		c := q.spare[:0]
		if c == nil {
			c = make([]idAt, 0, idChunk)
		}
		q.spare = nil
		q.chunks = append(q.chunks, c)
	}
	last := &q.chunks[len(q.chunks)-1]
	*last = append(*last, x)
}

// upTo calls fn with the ids at the front with seq <= seq and returns how
// many there are.
func (q *idQueue) upTo(seq uint64, fn func(idAt)) int {
	n := 0
	for ci, c := range q.chunks {
		start := 0
		if ci == 0 {
			start = q.head
		}
		for _, x := range c[start:] {
			if x.seq > seq {
				return n
			}
			fn(x)
			n++
		}
	}
	return n
}

// drop removes n ids from the front.
func (q *idQueue) drop(n int) {
	for n > 0 && len(q.chunks) > 0 {
		left := len(q.chunks[0]) - q.head
		if n < left {
			q.head += n
			return
		}
		n -= left
		if len(q.chunks) == 1 {
			q.chunks[0], q.head = q.chunks[0][:0], 0 // the only chunk: reuse it in place
			return
		}
		q.spare = q.chunks[0]
		q.chunks[0] = nil
		q.chunks, q.head = q.chunks[1:], 0
	}
}

type syncItem struct {
	commit Commit
	jobs   []*job
	// outputs is the last output id of the batch, held back until commit
	// is durable; 0 for none.
	outputs uint64
}

// shard is one writer goroutine and the partitions it owns.
type shard struct {
	e       *Engine
	id      int
	parts   []*partition
	in      chan *job
	syncq   chan syncItem
	stopped chan struct{}

	mu sync.RWMutex // guards the twin tables, timeline buffers and twin contents against readers

	// owned by the shard goroutine
	ring      []*twin // hot twins, for CLOCK eviction
	hand      int
	bytes     int64
	budget    int64
	dirty     []dirtyEntry // FIFO by since, from dirtyOff on
	dirtyOff  int
	ids       idQueue   // ids not yet persisted, by seq
	tl        Timeline  // timeline entries not yet written, by seq
	tlWriting *Timeline // the run the background writer is writing; nil when none
	tlSpare   Timeline  // the other buffers, reused
	// tlGen numbers tl's key indices: a twin whose tlGen equals it has its
	// key at tl.Keys[tlKey]. It changes whenever tl's indices do.
	tlGen    uint32
	tlDone   chan error
	newKeys  []string // twins created in this batch
	reflects uint64   // highest seq a saved snapshot holds
	applied  uint64
	recs     []Record
	pend     []pending
	intern   map[string]string
	snapBuf  []byte
	jobsBuf  []*job
	sinceLag uint64

	// reacting: buffers reused across events
	vars    twinVars
	segBuf  []segChange
	trigBuf []trigger
	// unsaved are the twins whose segment bits may differ from their last
	// snapshot's (ruleState.unsaved), for member listings; unsavedStale
	// counts those on it that are saved by now. Under mu.
	unsaved      []*twin
	unsavedStale int
	cause        schema.Cause // of the event reacted on (reactPass)
	mutated      bool         // an action of the current reaction changed the twin
	outW         OutputWrite
	changes      []twinhub.Output // live TwinChanged outputs of the batch

	// published for Stats
	hot      atomic.Int64
	twins    atomic.Int64
	bytesPub atomic.Int64
}

func newShard(e *Engine, id int, budget int64) *shard {
	return &shard{
		e: e, id: id, budget: budget,
		in:      make(chan *job, 256),
		syncq:   make(chan syncItem, 64),
		stopped: make(chan struct{}),
		intern:  make(map[string]string),
		// Sized once so appends on the hot path never copy it.
		tl:      Timeline{Entries: make([]TimelineEntry, 0, e.opts.TimelineRun)},
		tlSpare: Timeline{Entries: make([]TimelineEntry, 0, e.opts.TimelineRun)},
		tlGen:   1, // a new twin's 0 is never current
		tlDone:  make(chan error, 1),
	}
}

// control runs fn on the shard goroutine between batches and waits for it.
func (s *shard) control(fn func() error) error {
	var wg sync.WaitGroup
	wg.Add(1)
	j := &job{ctl: fn, wg: &wg}
	s.in <- j
	wg.Wait()
	return j.err
}

// run is the shard goroutine. It exits when s.in is closed, after closing
// s.syncq and waiting for the syncer to drain it.
func (s *shard) run() {
	defer func() {
		close(s.syncq)
	}()
	max := s.e.opts.MaxBatch
	for j := range s.in {
		jobs := append(s.jobsBuf[:0], j)
		n := len(j.idx)
	gather:
		for n < max && j.ctl == nil {
			select {
			case j2, ok := <-s.in:
				if !ok {
					break gather
				}
				jobs = append(jobs, j2)
				if j2.ctl != nil {
					break gather
				}
				n += len(j2.idx)
			default:
				break gather
			}
		}
		last := jobs[len(jobs)-1]
		if last.ctl != nil {
			jobs = jobs[:len(jobs)-1]
		}
		if len(jobs) > 0 {
			s.process(jobs)
		}
		if last.ctl != nil {
			if !last.step {
				s.drainSync()
			}
			last.err = last.ctl()
			last.wg.Done()
		}
		s.jobsBuf = jobs[:0]
	}
}

// drainSync waits until every batch handed to the syncer is acknowledged.
func (s *shard) drainSync() {
	done := make(chan struct{})
	s.syncq <- syncItem{jobs: []*job{{ctl: func() error { close(done); return nil }}}}
	<-done
}

// syncLoop acknowledges batches once durable. It exits when syncq is closed.
func (s *shard) syncLoop() {
	defer close(s.stopped)
	for it := range s.syncq {
		var err error
		if it.commit != nil {
			t0 := time.Now()
			err = it.commit.Wait()
			if s.e.opts.OnSync != nil {
				s.e.opts.OnSync(time.Since(t0))
			}
		}
		if it.outputs > 0 {
			// Published before the batch is acknowledged, so that a client
			// that reads outputs after its ingest returned finds them.
			s.e.outputsDurable(it.outputs)
		}
		for _, j := range it.jobs {
			if j.ctl != nil {
				j.ctl()
				continue
			}
			if err != nil {
				j.err = fmt.Errorf("archive sync: %w", err)
			}
			j.wg.Done()
		}
	}
}

// process dedupes, archives and applies one batch of jobs.
func (s *shard) process(jobs []*job) {
	t0 := time.Now()
	sc := s.e.sc.Load()
	recs, pend := s.recs[:0], s.pend[:0]
	for _, j := range jobs {
		if j.sc != nil && j.sc != sc {
			j.err = twinhub.Errorf(twinhub.EUNAVAILABLE, "the schema changed while this request was queued; send it again")
			continue
		}
		for k, i := range j.idx {
			ev := &j.b.Events[i]
			p := s.e.parts[j.part[k]]
			h := idHashOf(ev.ID)
			if j.replay {
				p.seen.add(h)
				pend = append(pend, pending{ev: ev, p: p, seq: j.seqs[k], kh: j.hash[k], from: j, id: h})
				continue
			}
			res := &j.b.Results[j.b.EventIndex[i]]
			if !p.seen.add(h) {
				res.Status = twinhub.Duplicate
				continue
			}
			res.Status = twinhub.Accepted
			recs = append(recs, Record{Partition: int(p.id), Time: ev.Time, Key: ev.Key, Source: ev.Source, Raw: ev.Raw})
			pend = append(pend, pending{ev: ev, p: p, kh: j.hash[k], from: j, id: h})
		}
	}

	var commit Commit
	if len(recs) > 0 {
		base := s.e.seq.Add(uint64(len(recs))) - uint64(len(recs))
		k := 0
		for i := range pend {
			if pend[i].seq == 0 {
				base++
				pend[i].seq = base
				recs[k].Seq = base
				k++
			}
		}
		var err error
		commit, err = s.e.store.Append(recs)
		if err != nil {
			s.unaccept(jobs, pend, fmt.Errorf("archive append: %w", err))
			s.ackLater(nil, jobs, 0)
			return
		}
	}

	accepted, dups := 0, 0
	now := s.e.nowNS()
	for i := 0; i < len(pend); {
		// Apply in chunks so a reader never waits long for the lock.
		end := min(i+128, len(pend))
		s.mu.Lock()
		for ; i < end; i++ {
			pe := &pend[i]
			if err := s.apply(sc, pe.p, pe.ev, pe.kh, pe.seq, now); err != nil {
				pe.from.err = err
			}
		}
		s.mu.Unlock()
	}
	// Outputs of events not yet durable are held back until the commit is:
	// replayed events are in the archive already.
	outputs, _ := s.flushOutputs(commit != nil) // an error is logged; the outputs are derived again after a restart
	if rc := s.e.rc.Load(); rc != nil {
		rc.publish(s.id)
	}
	for _, j := range jobs {
		if j.replay {
			s.e.replayed.Add(int64(len(j.idx)))
			continue
		}
		for _, i := range j.idx {
			switch j.b.Results[j.b.EventIndex[i]].Status {
			case twinhub.Accepted:
				accepted++
			case twinhub.Duplicate:
				dups++
			}
		}
	}
	s.e.accepted.Add(int64(accepted))
	s.e.duplicates.Add(int64(dups))
	// Every applied event above the watermark (replayed ones too) has its id
	// persisted with the checkpoint that moves the watermark past it.
	if !s.e.rebuilding.Load() {
		for i := range pend {
			pe := &pend[i]
			s.ids.push(idAt{seq: pe.seq, h: pe.id.H, check: pe.id.Check, p: int32(pe.p.id)})
		}
	}
	if len(s.newKeys) > 0 {
		if err := s.e.store.AddKeys(s.newKeys); err != nil {
			s.e.log.Error("add twin keys", "shard", s.id, "err", err)
		}
		clear(s.newKeys)
		s.newKeys = s.newKeys[:0]
	}
	if err := s.housekeep(len(pend)); err != nil {
		s.e.log.Error("persist twins", "shard", s.id, "err", err)
	}
	if s.e.opts.OnApply != nil {
		s.e.opts.OnApply(len(pend), time.Since(t0))
	}
	s.recs, s.pend = recs[:0], pend[:0]
	s.ackLater(commit, jobs, outputs)
}

// unaccept undoes a batch the archive refused: its ids are forgotten (so a
// retry is not taken for a duplicate), its records lose their accepted
// status and its jobs fail with err.
func (s *shard) unaccept(jobs []*job, pend []pending, err error) {
	for _, pe := range pend {
		if !pe.from.replay {
			pe.p.seen.remove(pe.id)
		}
	}
	for _, j := range jobs {
		if j.replay || j.b == nil {
			continue
		}
		for _, i := range j.idx {
			if r := &j.b.Results[j.b.EventIndex[i]]; r.Status == twinhub.Accepted {
				r.Status = 0
			}
		}
		j.err = err
	}
}

// ackLater hands jobs to the syncer, to be acknowledged once c is durable,
// with the last output id to publish then (0 for none).
func (s *shard) ackLater(c Commit, jobs []*job, outputs uint64) {
	s.syncq <- syncItem{commit: c, jobs: append([]*job(nil), jobs...), outputs: outputs}
}

// apply applies one event, whose key hashes to kh, to its twin. The caller
// holds s.mu.
func (s *shard) apply(sc *schema.Schema, p *partition, ev *twinhub.Event, kh, seq uint64, now int64) error {
	t, err := s.twinFor(sc, p, ev.Key, kh, true)
	if err != nil {
		return err
	}
	if seq > s.applied {
		s.applied = seq
	}
	if seq > p.applied {
		p.applied = seq
	}
	if !s.e.rebuilding.Load() {
		// Indexed even when the twin already holds the event: after a crash
		// the snapshot may be newer than the last written timeline run.
		if t.tlGen != s.tlGen {
			t.tlGen, t.tlKey = s.tlGen, uint32(len(s.tl.Keys))
			s.tl.Keys = append(s.tl.Keys, t.key)
		}
		s.tl.Entries = append(s.tl.Entries, TimelineEntry{Time: ev.Time, Seq: seq, Key: t.tlKey})
	}
	if seq <= t.applied {
		return nil // a snapshot already holds it (replay after eviction)
	}
	if s.e.opts.EventClock && ev.Time > s.e.clock.Load() {
		s.e.clock.Store(ev.Time) // single shard per engine in replays; races only move time forward
		now = ev.Time
	}
	t.applied = seq
	t.rev++
	t.ref = true
	l := sc.Layout
	et := sc.Events[ev.Type]
	for fi := range et.Feeds {
		f := &et.Feeds[fi]
		if f.Where != nil && !f.Where.Match(et, ev) {
			continue
		}
		var in agg.Input
		switch f.Slot {
		case schema.SlotNone:
		case schema.SlotTime:
			in.Num = twinhub.MicrosOf(ev.Time)
		default:
			v := &ev.Vals[f.Slot]
			if !v.Set {
				continue
			}
			in.Num = v.Num
			switch l.Kind(f.Agg) {
			case agg.TopK:
				in.Str = s.internString(v.Str)
			case agg.Distinct:
				if v.Type == twinhub.TypeString || v.Type == twinhub.TypeEnum {
					in.Hash = xxhash.Sum64String(v.Str)
				} else {
					var b [8]byte
					binary.LittleEndian.PutUint64(b[:], math.Float64bits(v.Num))
					in.Hash = xxhash.Sum64(b[:])
				}
			}
		}
		l.Add(&t.state, f.Agg, ev.Time, now, in)
	}
	for _, a := range et.Sets {
		var v twinhub.Value
		if a.Slot == schema.SlotTime {
			v = twinhub.Value{Type: twinhub.TypeTime, Num: twinhub.MicrosOf(ev.Time), Set: true}
		} else {
			v = ev.Vals[a.Slot]
		}
		if !v.Set && !v.Null {
			continue // absent: the attribute keeps what it has
		}
		if t.attrs == nil {
			t.attrs = make([]attr, len(sc.Attributes))
		}
		cur := &t.attrs[a.Attr]
		if !cur.takes(ev) {
			continue // a newer value (or clearing) is already there
		}
		// A null leaves a tombstone: no value, the clearing event's lineage.
		v.Str = strings.Clone(v.Str)
		*cur = attr{val: v, eventID: strings.Clone(ev.ID), source: s.internString(ev.Source), time: ev.Time, position: ev.Position}
	}
	if rc := s.e.rc.Load(); rc != nil && rc.sc == sc {
		// A replay after a crash applies events again whose outputs were
		// logged before it: the partition's Logged mark says up to which.
		emit := !s.e.quiet.Load() && (!s.e.replaying.Load() || seq > p.logged.Load())
		s.react(rc, t, et, ev, et.Segments, now, emit)
	}
	if s.e.out.watching.Load() && !s.e.replaying.Load() {
		s.changes = appendOutput(s.changes, twinhub.TwinChanged, t, ev, et, now, "")
	}
	if t.dirtySince == 0 {
		t.dirtySince = seq
		s.dirty = append(s.dirty, dirtyEntry{t: t, since: seq})
	}
	// Sizes change only when a slice grows; re-measuring every 16th event
	// keeps the budget close enough at a sixteenth of the cost.
	if t.slot >= 0 && t.rev%16 == 1 {
		nb := int32(t.bytes(l))
		s.bytes += int64(nb - t.size)
		t.size = nb
	}
	return nil
}

// internString returns a heap copy of v shared by every twin of the shard,
// so a category seen by a million twins is stored once. The table is capped
// so high-cardinality values do not grow it without bound.
func (s *shard) internString(v string) string {
	if c, ok := s.intern[v]; ok {
		return c
	}
	c := strings.Clone(v)
	if len(s.intern) < 1<<16 {
		s.intern[c] = c
	}
	return c
}

// twinFor returns key's twin in p, loading it from its snapshot when cold and
// creating it when create is set; kh is keyHash(key). The caller holds s.mu.
func (s *shard) twinFor(sc *schema.Schema, p *partition, key string, kh uint64, create bool) (*twin, error) {
	if t := p.twins.get(kh, key); t != nil {
		return t, nil
	}
	var t *twin
	if p.stored > p.hotStored { // some twins of p are cold: key may be one
		data, ok, err := s.e.store.LoadTwin(key)
		if err != nil {
			return nil, fmt.Errorf("load twin %q: %w", key, err)
		}
		if ok {
			t, err = decodeSnapshot(strings.Clone(key), data, sc.Version, sc.Layout, s.internString)
			if err != nil {
				return nil, fmt.Errorf("load twin %q: %w", key, err)
			}
			t.stored = true
			p.hotStored++
		}
	}
	if t == nil {
		if !create {
			return nil, nil
		}
		t = &twin{key: strings.Clone(key), state: sc.Layout.New(), slot: -1}
		s.twins.Add(1)
		s.newKeys = append(s.newKeys, t.key)
	}
	t.hash = kh
	p.twins.put(t)
	t.slot = int32(len(s.ring))
	s.ring = append(s.ring, t)
	t.size = int32(t.bytes(sc.Layout))
	s.bytes += int64(t.size)
	s.hot.Add(1)
	return t, nil
}

// housekeep persists twins dirty for longer than the replay lag, starts a
// timeline run when the buffer is full and evicts twins over the memory
// budget. It runs on the shard goroutine after every batch, and does a
// bounded amount of work so that acknowledgements never wait long.
func (s *shard) housekeep(batch int) error {
	var err error
	if s.tl.Len() >= s.e.opts.TimelineRun {
		err = s.startTimelineRun()
	}
	if d := s.dirtyHead(); d != nil && s.applied-d.since > s.e.opts.ReplayLag {
		// Twice the batch keeps up with twins dirtied by the batch itself.
		if e2 := s.persist(s.applied-s.e.opts.ReplayLag/2, max(2*batch, 1024)); e2 != nil && err == nil {
			err = e2
		}
	}
	if s.bytes > s.budget {
		if e2 := s.evict(s.budget * 9 / 10); e2 != nil && err == nil {
			err = e2
		}
	}
	s.bytesPub.Store(s.bytes)
	return err
}

// dirtyHead returns the oldest dirty entry still current, dropping stale
// ones (twins persisted or re-dirtied since they were queued).
func (s *shard) dirtyHead() *dirtyEntry {
	for s.dirtyOff < len(s.dirty) {
		d := &s.dirty[s.dirtyOff]
		if d.t.dirtySince == d.since {
			return d
		}
		s.dirty[s.dirtyOff] = dirtyEntry{}
		s.dirtyOff++
	}
	s.dirty, s.dirtyOff = s.dirty[:0], 0
	return nil
}

// persist writes up to limit twins (0: no limit) dirty since a seq at or
// below upTo, with the ids seen up to the new watermark and the partitions'
// marks. Snapshot encoding needs no lock: only this goroutine writes twins.
func (s *shard) persist(upTo uint64, limit int) error {
	sc := s.e.sc.Load()
	var snaps []Snapshot
	var written []writtenTwin
	buf := s.snapBuf[:0]
	for d := s.dirtyHead(); d != nil && d.since <= upTo && (limit == 0 || len(snaps) < limit); d = s.dirtyHead() {
		t := d.t
		var sn Snapshot
		buf, sn = s.snapshot(buf, t, sc)
		snaps = append(snaps, sn)
		written = s.markWritten(written, t) // makes the entry stale; dirtyHead drops it
	}
	// Keep the queue's memory bounded: compact once the dropped head dominates.
	if s.dirtyOff > len(s.dirty)/2 && s.dirtyOff > 4096 {
		n := copy(s.dirty, s.dirty[s.dirtyOff:])
		clear(s.dirty[n:])
		s.dirty, s.dirtyOff = s.dirty[:n], 0
	}
	err := s.save(snaps, s.watermark())
	if err != nil {
		s.undoWritten(written)
	} else {
		s.markSaved(written)
	}
	s.keepSnapBuf(buf)
	return err
}

// persistAll persists every dirty twin and the whole timeline buffer, so
// that the watermark reaches the last applied event (Close, schema swaps).
func (s *shard) persistAll() error {
	if err := s.waitTimelineRun(); err != nil {
		return err
	}
	if err := s.startTimelineRun(); err != nil {
		return err
	}
	if err := s.waitTimelineRun(); err != nil {
		return err
	}
	return s.persist(^uint64(0), 0)
}

// writtenTwin remembers what markWritten changed, for undoWritten.
type writtenTwin struct {
	t         *twin
	since     uint64
	wasStored bool
}

// snapshot appends t's snapshot to buf and returns it with the membership
// changes since t's last snapshot, which the store writes with it.
func (s *shard) snapshot(buf []byte, t *twin, sc *schema.Schema) ([]byte, Snapshot) {
	start := len(buf)
	buf = appendSnapshot(buf, t, sc.Version, sc.Layout)
	sn := Snapshot{Key: t.key, Data: buf[start:len(buf):len(buf)]}
	if rs := t.rs; rs != nil {
		for i, seg := range sc.Segments {
			if in := getBit(rs.segs, i); in != getBit(rs.saved, i) {
				sn.Members = append(sn.Members, Membership{Segment: seg.Name, Key: t.key, In: in})
			}
		}
	}
	return buf, sn
}

// markWritten marks t persisted: clean, and with a snapshot in the store.
func (s *shard) markWritten(w []writtenTwin, t *twin) []writtenTwin {
	w = append(w, writtenTwin{t: t, since: t.dirtySince, wasStored: t.stored})
	s.reflects = max(s.reflects, t.applied)
	t.dirtySince = 0
	if !t.stored {
		t.stored = true
		s.e.parts[s.e.PartitionOf(t.key)].noteStored()
	}
	return w
}

// markSaved records, once the store has them, the segment bits of the
// snapshots just written: the membership index now holds them. Under the
// lock, as member listings read them (SegmentMembers).
func (s *shard) markSaved(ws []writtenTwin) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range ws {
		if rs := w.t.rs; rs != nil {
			rs.saved = append(rs.saved[:0], rs.segs...)
			if rs.unsaved {
				rs.unsaved = false
				s.unsavedStale++
			}
		}
	}
	// Drop the saved twins from the list once they are half of it.
	if s.unsavedStale > len(s.unsaved)/2 {
		live := s.unsaved[:0]
		for _, t := range s.unsaved {
			if t.rs.unsaved {
				live = append(live, t)
			}
		}
		clear(s.unsaved[len(live):])
		s.unsaved, s.unsavedStale = live, 0
	}
}

// undoWritten reverts markWritten after the store refused the snapshots:
// the twins are dirty again and back at the head of the queue, so the
// watermark cannot pass their events and a later persist retries them.
func (s *shard) undoWritten(ws []writtenTwin) {
	var requeue []dirtyEntry
	for _, w := range ws {
		w.t.dirtySince = w.since
		if !w.wasStored {
			w.t.stored = false
			p := s.e.parts[s.e.PartitionOf(w.t.key)]
			p.stored--
			p.hotStored--
		}
		if w.since != 0 {
			requeue = append(requeue, dirtyEntry{t: w.t, since: w.since})
		}
	}
	slices.SortFunc(requeue, func(a, b dirtyEntry) int { return cmp.Compare(a.since, b.since) })
	// A twin may now be queued twice; the later entry is harmless.
	s.dirty = append(requeue, s.dirty[s.dirtyOff:]...)
	s.dirtyOff = 0
}

// watermark returns the highest seq at or below which every event of the
// shard is in a persisted snapshot and a written timeline run. With nothing
// outstanding it is the global sequence: only this goroutine archives events
// of its partitions, so any later one gets a higher seq. (Using the shard's
// own last seq instead would pin idle partitions at 0 and make every
// restart scan the whole archive.) Not during a replay, though: then the
// archive holds events the shard has not been handed yet.
func (s *shard) watermark() uint64 {
	wm := s.e.seq.Load()
	if s.e.replaying.Load() {
		wm = s.applied
	}
	if d := s.dirtyHead(); d != nil {
		wm = d.since - 1
	}
	if w := s.tlWriting; w != nil && w.Len() > 0 {
		wm = min(wm, w.Entries[0].Seq-1)
	}
	if s.tl.Len() > 0 {
		wm = min(wm, s.tl.Entries[0].Seq-1)
	}
	return wm
}

// startTimelineRun hands the buffered timeline entries to a background
// writer, so sorting and writing a run never holds up a batch. One run is
// written at a time; readers see its entries in tlWriting until it is in
// the store.
func (s *shard) startTimelineRun() error {
	if s.tlWriting != nil {
		select {
		case err := <-s.tlDone:
			if err := s.finishTimelineRun(err); err != nil {
				return err
			}
		default:
			if s.tl.Len() < 2*s.e.opts.TimelineRun {
				return nil // the writer is busy; try after the next batch
			}
			if err := s.waitTimelineRun(); err != nil { // backpressure
				return err
			}
		}
	}
	if s.tl.Len() == 0 {
		return nil
	}
	s.mu.Lock()
	run := s.tl
	s.tlWriting = &run // the store only reads it, so readers keep scanning it
	s.tl = Timeline{Keys: s.tlSpare.Keys[:0], Entries: s.tlSpare.Entries[:0]}
	s.tlSpare = Timeline{}
	s.tlGen++
	s.mu.Unlock()
	go func() { s.tlDone <- s.e.store.WriteTimeline(&run) }()
	return nil
}

// waitTimelineRun waits for the run being written, if any.
func (s *shard) waitTimelineRun() error {
	if s.tlWriting == nil {
		return nil
	}
	return s.finishTimelineRun(<-s.tlDone)
}

// finishTimelineRun takes the writer's result. A failed run's entries go
// back in front of the buffer, so they are neither lost from the index nor
// passed by the watermark, and the next run retries them.
func (s *shard) finishTimelineRun(err error) error {
	s.mu.Lock()
	w := s.tlWriting
	s.tlWriting = nil
	if err != nil {
		// The buffered entries' key indices move up past w's keys; the
		// twins' cached indices are stale, so the generation changes.
		n := uint32(len(w.Keys))
		for i := range s.tl.Entries {
			s.tl.Entries[i].Key += n
		}
		s.tl = Timeline{Keys: append(w.Keys, s.tl.Keys...), Entries: append(w.Entries, s.tl.Entries...)}
		s.tlGen++
		s.mu.Unlock()
		return fmt.Errorf("write timeline run: %w", err)
	}
	s.mu.Unlock()
	clear(w.Keys)
	s.tlSpare = Timeline{Keys: w.Keys[:0], Entries: w.Entries[:0]}
	return nil
}

// save writes snaps with every partition's mark at watermark wm and the ids
// seen up to wm.
func (s *shard) save(snaps []Snapshot, wm uint64) error {
	marks := make([]PartitionMark, 0, len(s.parts))
	for _, p := range s.parts {
		pwm := max(wm, p.wm)
		marks = append(marks, PartitionMark{Partition: p.id, Watermark: pwm, Stored: p.stored, Reflects: max(s.reflects, pwm)})
	}
	byPart := make(map[int32][]IDHash)
	n := s.ids.upTo(wm, func(x idAt) { byPart[x.p] = append(byPart[x.p], IDHash{H: x.h, Check: x.check}) })
	var seen []SeenIDs
	for p, ids := range byPart {
		seen = append(seen, SeenIDs{Partition: int(p), IDs: ids})
	}
	if err := s.e.store.SaveTwins(snaps, marks, seen, false); err != nil {
		return err
	}
	s.ids.drop(n)
	s.mu.Lock()
	for i, p := range s.parts {
		p.wm = marks[i].Watermark
	}
	s.mu.Unlock()
	return nil
}

func (p *partition) noteStored() {
	p.stored++
	p.hotStored++
}

// evict makes twins cold with CLOCK until the shard holds at most target
// bytes. Dirty twins are written first, in the same batch as the partition
// marks, so a restart finds either the old or the new snapshot consistent
// with the marks.
func (s *shard) evict(target int64) error {
	sc := s.e.sc.Load()
	var victims []*twin
	var snaps []Snapshot
	buf := s.snapBuf[:0]
	bytes := s.bytes
	scanned := 0
	for bytes > target && len(s.ring) > len(victims) && scanned < 4*len(s.ring) {
		t := s.ring[s.hand]
		s.hand = (s.hand + 1) % len(s.ring)
		scanned++
		if t.ref || t.slot < 0 {
			t.ref = false
			continue
		}
		if t.dirtySince != 0 || !t.stored {
			var sn Snapshot
			buf, sn = s.snapshot(buf, t, sc)
			snaps = append(snaps, sn)
		}
		t.slot = -1 // marks it chosen; fixed up below
		victims = append(victims, t)
		bytes -= int64(t.size)
	}
	if len(victims) == 0 {
		return nil
	}
	var written []writtenTwin
	for _, t := range victims {
		written = s.markWritten(written, t)
	}
	if err := s.save(snaps, s.watermark()); err != nil {
		s.undoWritten(written)
		for i, t := range s.ring { // the victims stay hot
			t.slot = int32(i)
		}
		return err
	}
	s.markSaved(written)
	s.mu.Lock()
	for _, t := range victims {
		p := s.e.parts[s.e.partitionOfHash(t.hash)]
		p.twins.remove(t)
		p.hotStored--
		s.bytes -= int64(t.size)
	}
	// Compact the ring, dropping the victims (slot -1).
	live := s.ring[:0]
	for _, t := range s.ring {
		if t.slot >= 0 {
			t.slot = int32(len(live))
			live = append(live, t)
		}
	}
	clear(s.ring[len(live):])
	s.ring = live
	if s.hand >= len(s.ring) {
		s.hand = 0
	}
	s.mu.Unlock()
	s.hot.Add(-int64(len(victims)))
	return nil
}

// keepSnapBuf keeps buf for the next snapshots unless a few large twins grew
// it past 64 MiB, which would then stay allocated for good.
func (s *shard) keepSnapBuf(buf []byte) {
	if cap(buf) <= 64<<20 {
		s.snapBuf = buf[:0]
	} else {
		s.snapBuf = nil
	}
}
