package engine

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/twinhub/twinhub"
)

// OutputWrite is one atomic write to the output log: logged outputs with
// their ids (an output that carries an action also writes the action's
// current state), the snapshots of twins a sweep changed, and up to which
// event each partition's outputs are logged.
type OutputWrite struct {
	Outputs []twinhub.Output
	// Twins are snapshots written with the outputs: a sweep's change is
	// not in the archive for a replay to derive again, so the twin's state
	// after it is saved with its outputs, or neither is. Marks go with them
	// (the partitions' stored counts).
	Twins []Snapshot
	Marks []PartitionMark
	// Logged, when not nil, is by partition the highest seq whose outputs
	// are logged, as shard Shard knows it: exact for its own partitions,
	// maybe behind for the others'. A replay after a crash logs outputs
	// only for events above it; those of the events at or below it are in
	// the log already.
	Shard  int
	Logged []uint64
	Next   uint64 // the next output id to hand out
}

// Membership is one twin entering (In) or leaving a segment.
type Membership struct {
	Segment string
	Key     string
	In      bool
}

// OutputStore keeps the output log, the action log and segment memberships.
// store/pebble implements it as part of Store.
type OutputStore interface {
	// WriteOutputs writes w in one batch. It returns once the write is
	// visible and survives a crash of the process (not a power loss).
	WriteOutputs(w *OutputWrite) error
	// NextOutputID returns the next output id to hand out (1 when none was).
	NextOutputID() (uint64, error)
	// LoadLogged returns by partition the highest Logged seq any shard
	// wrote (0 for none), for partitions partitions.
	LoadLogged(partitions int) ([]uint64, error)
	// ReadOutputs calls fn for logged outputs with ID > after in ID order
	// until fn returns false.
	ReadOutputs(after uint64, fn func(twinhub.Output) bool) error
	// TrimOutputs deletes logged outputs older than before; actions keep
	// their own log.
	TrimOutputs(before time.Time) error
	// Action returns the action with id.
	Action(id uint64) (twinhub.Action, bool, error)
	// Actions calls fn for actions with ID > after in ID order until fn
	// returns false.
	Actions(after uint64, fn func(twinhub.Action) bool) error
	// PendingActions calls fn for every action waiting for approval.
	PendingActions(fn func(twinhub.Action) bool) error
	// Members calls fn with segment's member keys after the key after in key
	// order until fn returns false: the members as of the twins' snapshots.
	Members(segment, after string, fn func(key string) bool) error
	// SegmentSizes counts every segment's members.
	SegmentSizes() (map[string]int64, error)
	// ResetSegments deletes every membership, before a rebuild recomputes
	// them.
	ResetSegments() error
	// SaveSegmentSizes records the segments' sizes at t.
	SaveSegmentSizes(t time.Time, sizes map[string]int64) error
	// SegmentHistory calls fn with segment's recorded sizes with from <= t <
	// to, in time order, until fn returns false.
	SegmentHistory(segment string, from, to time.Time, fn func(t time.Time, size int64) bool) error
}

// outputRing is how many recent logged outputs the engine keeps in memory
// for stream followers; older ones are read from the store.
const outputRing = 1 << 14

// outputLog hands out output ids, writes outputs to the store in id order
// and publishes them to followers. Its lock is taken by shards only for
// batches that produced outputs.
type outputLog struct {
	mu     sync.Mutex
	next   uint64 // next id
	ring   []twinhub.Output
	head   int // index of the oldest entry in ring when full
	notify chan struct{}
	last   atomic.Uint64 // last published id
	// held are the id ranges written but not published, in id order: the
	// outputs of events whose archive write is not yet durable. Followers
	// see an output once every output before it is published, so never one
	// whose event a power loss could still take back.
	held []heldRange

	// live TwinChanged watchers
	wmu      sync.Mutex
	watchers map[chan twinhub.Output]struct{}
	watching atomic.Bool
	dropped  atomic.Int64
}

func (o *outputLog) init(next uint64) {
	o.next = max(next, 1)
	o.last.Store(o.next - 1)
	o.notify = make(chan struct{})
	o.watchers = map[chan twinhub.Output]struct{}{}
}

// heldRange is the outputs with ids below end written since the previous
// range; done when they may be published.
type heldRange struct {
	end  uint64
	done bool
}

// writeOutputs assigns ids to w.Outputs (and to the actions they carry),
// writes w and publishes the outputs, or, when held, keeps them back until
// outputsDurable(w.Next-1). Holding the lock across the write keeps ids,
// the log and publication in one order.
func (e *Engine) writeOutputs(w *OutputWrite, held bool) error {
	o := &e.out
	o.mu.Lock()
	defer o.mu.Unlock()
	id := o.next
	for i := range w.Outputs {
		out := &w.Outputs[i]
		out.ID = id
		if out.Action != nil && out.Kind == twinhub.ActionFired {
			out.Action.ID = id
		}
		id++
	}
	w.Next = id
	if err := e.store.WriteOutputs(w); err != nil {
		return err
	}
	o.next = id
	for _, out := range w.Outputs {
		if len(o.ring) < outputRing {
			o.ring = append(o.ring, out)
		} else {
			o.ring[o.head] = out
			o.head = (o.head + 1) % outputRing
		}
	}
	if len(w.Outputs) > 0 {
		o.held = append(o.held, heldRange{end: id, done: !held})
		o.publish()
	}
	return nil
}

// outputsDurable publishes the outputs held by writeOutputs up to id last,
// once the archive holds their events durably.
func (e *Engine) outputsDurable(last uint64) {
	o := &e.out
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range o.held {
		if o.held[i].end == last+1 {
			o.held[i].done = true
			break
		}
	}
	o.publish()
}

// publish moves the published id past the leading ranges that are done and
// wakes the followers. The caller holds o.mu.
func (o *outputLog) publish() {
	k := 0
	for k < len(o.held) && o.held[k].done {
		k++
	}
	if k == 0 {
		return
	}
	o.last.Store(o.held[k-1].end - 1)
	o.held = append(o.held[:0], o.held[k:]...)
	close(o.notify)
	o.notify = make(chan struct{})
}

// LastOutputID returns the id of the newest published output, 0 when none.
func (e *Engine) LastOutputID() uint64 { return e.out.last.Load() }

// OutputNotify returns a channel that is closed when outputs newer than
// LastOutputID at the time of the call are published.
func (e *Engine) OutputNotify() <-chan struct{} {
	e.out.mu.Lock()
	defer e.out.mu.Unlock()
	return e.out.notify
}

// ReadOutputs returns up to limit published outputs with ID > after, in
// ID order: from memory when they are recent, else from the store.
func (e *Engine) ReadOutputs(after uint64, limit int) ([]twinhub.Output, error) {
	o := &e.out
	o.mu.Lock()
	last := o.last.Load()
	n := len(o.ring)
	if n > 0 {
		oldest := o.ring[o.head].ID
		if after+1 >= oldest {
			var out []twinhub.Output
			for i := 0; i < n && len(out) < limit; i++ {
				x := o.ring[(o.head+i)%n]
				if x.ID > last {
					break
				}
				if x.ID > after {
					out = append(out, x)
				}
			}
			o.mu.Unlock()
			return out, nil
		}
	}
	o.mu.Unlock()
	var out []twinhub.Output
	err := e.store.ReadOutputs(after, func(x twinhub.Output) bool {
		if x.ID > last {
			return false
		}
		out = append(out, x)
		return len(out) < limit
	})
	return out, err
}

// WatchChanges returns a channel of live TwinChanged outputs, buffered for
// n; when a watcher falls that far behind, changes are dropped for it and
// counted in DroppedChanges. cancel stops the watch.
func (e *Engine) WatchChanges(n int) (<-chan twinhub.Output, func()) {
	o := &e.out
	ch := make(chan twinhub.Output, n)
	o.wmu.Lock()
	o.watchers[ch] = struct{}{}
	o.watching.Store(true)
	o.wmu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			o.wmu.Lock()
			delete(o.watchers, ch)
			o.watching.Store(len(o.watchers) > 0)
			o.wmu.Unlock()
		})
	}
}

// DroppedChanges counts TwinChanged outputs dropped for slow watchers.
func (e *Engine) DroppedChanges() int64 { return e.out.dropped.Load() }

// publishChanges hands TwinChanged outputs to the watchers without waiting.
func (o *outputLog) publishChanges(changes []twinhub.Output) {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	for ch := range o.watchers {
		for _, c := range changes {
			select {
			case ch <- c:
			default:
				o.dropped.Add(1)
			}
		}
	}
}
