package engine

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/schema"
)

// Defaults for Options' zero values.
const (
	DefaultPartitions   = 64
	DefaultMemoryBudget = 2 << 30
	DefaultReplayLag    = 1 << 20
	DefaultMaxBatch     = 2048
	DefaultTimelineRun  = 256 << 10

	DefaultSweepInterval   = time.Minute
	DefaultOutputRetention = 7 * 24 * time.Hour
	DefaultColdSweep       = 15 * time.Minute
)

// Options configure an Engine. Zero values mean the documented defaults.
type Options struct {
	Store Store
	// Schema is used when the store holds no schema yet; default schema.Default().
	Schema *schema.Schema
	// Partitions is the fixed number of key partitions, recorded in the store
	// when it is created; later values are ignored. Default 64.
	Partitions int
	// Shards is the number of writer goroutines. Default: the number of CPUs.
	Shards int
	// Now is the wall clock. Default time.Now.
	Now func() time.Time
	// EventClock makes the engine's clock the newest event time applied, for
	// replaying history: windows then close relative to the data, not today.
	EventClock bool
	// MemoryBudget bounds the heap held by hot twins, in bytes. Default 2 GiB.
	MemoryBudget int64
	// ReplayLag bounds, per shard, how many archived events a restart may
	// have to replay: twins dirty for longer are persisted. Default 1Mi.
	ReplayLag uint64
	// MaxBatch is the most events a shard applies per archive write. Default
	// DefaultMaxBatch.
	MaxBatch int
	// TimelineRun is how many timeline entries a shard buffers before it
	// writes them to the store as one sorted run. Default 256Ki.
	TimelineRun int
	// SweepInterval is how often segments that time alone can change are
	// re-evaluated on every hot twin, pending actions expire and segment
	// sizes are recorded. Default 1 minute; negative disables the loop.
	SweepInterval time.Duration
	// ColdSweepInterval is how often the same is done for cold twins, those
	// beyond the memory budget, which are read from the store for it (and
	// loaded only when time changed them). Default 15 minutes; negative
	// disables it.
	ColdSweepInterval time.Duration
	// OutputRetention is how long the output log keeps segment changes and
	// actions for stream clients that resume. Default 7 days. The action
	// log itself is kept.
	OutputRetention time.Duration
	Logger          *slog.Logger
	// OnApply and OnSync, when set, observe each shard batch: events applied
	// and apply time; fsync wait time. Called from shard goroutines.
	OnApply func(events int, d time.Duration)
	OnSync  func(d time.Duration)
}

// Engine is a running twin engine. Its methods are safe for concurrent use.
type Engine struct {
	opts   Options
	store  Store
	log    *slog.Logger
	sc     atomic.Pointer[schema.Schema]
	rc     atomic.Pointer[reaction] // the active schema's segments and rules; nil when it has none
	out    outputLog
	parts  []*partition
	shards []*shard
	seq    atomic.Uint64
	clock  atomic.Int64 // newest event time, with EventClock
	// rebuilding is set while a schema swap replays the archive: the
	// timeline, key directory and seen ids already cover those events.
	rebuilding atomic.Bool
	// quiet is set while a rebuild derives twin state from the whole archive:
	// memberships and rule state are recomputed, but nothing is logged or
	// fired again for history.
	quiet atomic.Bool
	// replaying is set while the archive is replayed (recovery or rebuild).
	replaying atomic.Bool

	accepted   atomic.Int64
	duplicates atomic.Int64
	replayed   atomic.Int64

	stopBG chan struct{} // closed by Close: stops the background loop and retries of output writes
	bgDone chan struct{}

	decideMu sync.Mutex // serialises action decisions and expiry

	swapMu sync.Mutex   // serialises schema swaps and Close
	gate   sync.RWMutex // ingestion holds it shared; a schema rebuild exclusively
	closed bool
}

// Open opens an engine on opts.Store: it loads or stores the schema, loads
// the checkpoint and replays the archive's tail before returning.
func Open(opts Options) (*Engine, error) {
	if opts.Store == nil {
		return nil, fmt.Errorf("engine: no store")
	}
	if opts.Partitions <= 0 {
		opts.Partitions = DefaultPartitions
	}
	if opts.Shards <= 0 {
		opts.Shards = runtime.NumCPU()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MemoryBudget <= 0 {
		opts.MemoryBudget = DefaultMemoryBudget
	}
	if opts.ReplayLag == 0 {
		opts.ReplayLag = DefaultReplayLag
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.TimelineRun <= 0 {
		opts.TimelineRun = DefaultTimelineRun
	}
	if opts.ColdSweepInterval == 0 {
		opts.ColdSweepInterval = DefaultColdSweep
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	if opts.OutputRetention <= 0 {
		opts.OutputRetention = DefaultOutputRetention
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Engine{opts: opts, store: opts.Store, log: opts.Logger}

	if err := e.loadPartitionCount(); err != nil {
		return nil, err
	}
	if err := e.loadSchema(); err != nil {
		return nil, err
	}
	e.parts = make([]*partition, e.opts.Partitions)
	for i := range e.parts {
		e.parts[i] = &partition{id: i}
	}
	nsh := e.shardCount()
	e.shards = make([]*shard, nsh)
	for i := range e.shards {
		e.shards[i] = newShard(e, i, opts.MemoryBudget/int64(nsh))
	}
	for _, p := range e.parts {
		sh := e.shards[p.id%nsh]
		p.shard = sh
		sh.parts = append(sh.parts, p)
	}
	next, err := e.store.NextOutputID()
	if err != nil {
		return nil, fmt.Errorf("read output log position: %w", err)
	}
	e.out.init(next)
	if err := e.loadSegmentSizes(); err != nil {
		return nil, err
	}
	last, err := e.store.LastSeq()
	if err != nil {
		return nil, fmt.Errorf("read archive position: %w", err)
	}
	e.seq.Store(last)
	for _, sh := range e.shards {
		go sh.run()
		go sh.syncLoop()
	}
	if err := e.recover(); err != nil {
		e.stopShards()
		return nil, err
	}
	e.stopBG, e.bgDone = make(chan struct{}), make(chan struct{})
	go e.background(e.stopBG, e.bgDone)
	return e, nil
}

func (e *Engine) loadPartitionCount() error {
	v, ok, err := e.store.Meta("partitions")
	if err != nil {
		return fmt.Errorf("read partition count: %w", err)
	}
	if ok {
		n, err := strconv.Atoi(string(v))
		if err != nil || n <= 0 {
			return fmt.Errorf("stored partition count %q is corrupt", v)
		}
		e.opts.Partitions = n
		return nil
	}
	return e.store.SetMeta("partitions", []byte(strconv.Itoa(e.opts.Partitions)))
}

func (e *Engine) loadSchema() error {
	v, src, err := e.store.ActiveSchema()
	if err != nil {
		return fmt.Errorf("read active schema: %w", err)
	}
	if v == 0 {
		sc := e.opts.Schema
		if sc == nil {
			sc = schema.Default()
		}
		sc.Version = 1
		if err := e.store.SaveSchema(1, sc.Source); err != nil {
			return fmt.Errorf("store schema: %w", err)
		}
		e.activate(sc)
		return nil
	}
	sc, err := schema.Parse(src)
	if err != nil {
		return fmt.Errorf("stored schema version %d no longer parses: %w", v, err)
	}
	sc.Version = v
	e.activate(sc)
	return nil
}

// shardCount is how many shards the engine runs; known, unlike
// len(e.shards), before the shards are made.
func (e *Engine) shardCount() int { return min(e.opts.Shards, e.opts.Partitions) }

// activate makes sc the active schema, with fresh segment and rule
// counters. Callers make sure no shard is applying events.
func (e *Engine) activate(sc *schema.Schema) {
	e.sc.Store(sc)
	if active(sc) {
		e.rc.Store(newReaction(sc, e.shardCount()))
	} else {
		e.rc.Store(nil)
	}
}

// Schema returns the active schema version.
func (e *Engine) Schema() *schema.Schema { return e.sc.Load() }

// Now returns the engine's clock: wall time, or with EventClock the newest
// event time applied.
func (e *Engine) Now() time.Time {
	if e.opts.EventClock {
		return time.Unix(0, e.clock.Load()).UTC()
	}
	return e.opts.Now()
}

// WallClock returns the wall time (Options.Now), even with EventClock: the
// receive time of events without one and the reference for max_future.
func (e *Engine) WallClock() time.Time { return e.opts.Now() }

func (e *Engine) nowNS() int64 {
	if e.opts.EventClock {
		return e.clock.Load()
	}
	return e.opts.Now().UnixNano()
}

// Partitions returns the number of key partitions.
func (e *Engine) Partitions() int { return len(e.parts) }

// PartitionOf returns key's partition.
func (e *Engine) PartitionOf(key string) int { return e.partitionOfHash(keyHash(key)) }

// keyHash is the hash of a twin key that chooses its partition and finds it
// in the partition's twin table.
func keyHash(key string) uint64 { return xxhash.Sum64String(key) }

func (e *Engine) partitionOfHash(h uint64) int { return int(h % uint64(len(e.parts))) }

// idHashOf hashes an event id twice, independently: xxhash for the set's
// slot and FNV-1a, written inline, as the check.
func idHashOf(id string) IDHash {
	check := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		check = (check ^ uint32(id[i])) * 16777619
	}
	return IDHash{H: xxhash.Sum64String(id), Check: check}
}

// Ingest archives and applies the events of b, which must have been decoded
// with the engine's active schema, and sets their Results to Accepted or
// Duplicate. It returns once every accepted event is durable and applied.
// A batch is all-or-nothing per shard: on a store error its events are not
// accepted and the error is returned.
func (e *Engine) Ingest(ctx context.Context, b *ingest.Batch, sc *schema.Schema) error {
	if len(b.Events) == 0 {
		return nil
	}
	e.gate.RLock()
	defer e.gate.RUnlock()
	if e.closed {
		return twinhub.Errorf(twinhub.EUNAVAILABLE, "engine is closed")
	}
	if sc != e.sc.Load() {
		return twinhub.Errorf(twinhub.EUNAVAILABLE, "the schema changed while this request was decoded; send it again")
	}
	var wg sync.WaitGroup
	jobs := make([]*job, len(e.shards))
	for i := range b.Events {
		h := keyHash(b.Events[i].Key)
		p := e.partitionOfHash(h)
		s := p % len(e.shards)
		j := jobs[s]
		if j == nil {
			// Sized for an even split, so appends rarely grow them.
			n := len(b.Events)/len(e.shards) + len(b.Events)/8 + 8
			j = &job{b: b, sc: sc, wg: &wg, idx: make([]int32, 0, n), part: make([]int32, 0, n), hash: make([]uint64, 0, n)}
			jobs[s] = j
		}
		j.idx = append(j.idx, int32(i))
		j.part = append(j.part, int32(p))
		j.hash = append(j.hash, h)
	}
	for s, j := range jobs {
		if j == nil {
			continue
		}
		wg.Add(1)
		select {
		case e.shards[s].in <- j:
		case <-ctx.Done():
			wg.Done()
			j.err = ctx.Err()
		}
	}
	wg.Wait()
	for _, j := range jobs {
		if j != nil && j.err != nil {
			return j.err
		}
	}
	return nil
}

// Stats are engine counters since Open.
type Stats struct {
	Accepted   int64
	Duplicates int64
	Replayed   int64
	HotTwins   int64
	Twins      int64
	HotBytes   int64
	LastSeq    uint64
}

// Stats returns current counters.
func (e *Engine) Stats() Stats {
	st := Stats{Accepted: e.accepted.Load(), Duplicates: e.duplicates.Load(), Replayed: e.replayed.Load(), LastSeq: e.seq.Load()}
	for _, sh := range e.shards {
		st.HotTwins += sh.hot.Load()
		st.Twins += sh.twins.Load()
		st.HotBytes += sh.bytesPub.Load()
	}
	return st
}

// Close stops the shards after they finish their queued batches and persists
// every dirty twin, so that the next Open replays nothing.
func (e *Engine) Close() error {
	select {
	case <-e.stopBG:
	default:
		close(e.stopBG)
	}
	<-e.bgDone
	e.swapMu.Lock()
	defer e.swapMu.Unlock()
	e.gate.Lock()
	defer e.gate.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	var first error
	for _, sh := range e.shards {
		if err := sh.control(func() error { return sh.persistAll() }); err != nil && first == nil {
			first = err
		}
	}
	e.stopShards()
	return first
}

// wait waits d, less when the engine is closing; it reports whether the
// engine is still open.
func (e *Engine) wait(d time.Duration) bool {
	select {
	case <-e.stopBG:
		return false
	case <-time.After(d):
		return true
	}
}

func (e *Engine) stopShards() {
	for _, sh := range e.shards {
		close(sh.in)
	}
	for _, sh := range e.shards {
		<-sh.stopped
	}
}
