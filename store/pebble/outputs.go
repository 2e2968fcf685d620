package pebble

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	cpebble "github.com/cockroachdb/pebble/v2"
	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/engine"
)

// The output log, the action log and segment memberships (see the key
// layout in pebble.go). Outputs and actions are in a compact binary encoding
// (outcodec.go): rules may log one for many of the events ingested.

const metaOutputsNext = "outputs-next"

func outputKey(id uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'o'}, id) }
func actionKey(id uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'n'}, id) }
func pendingKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'p'}, id)
}
func memberKey(segment, key string) []byte {
	k := append([]byte{'j'}, segment...)
	k = append(k, 0)
	return append(k, key...)
}
func historyKey(segment string, t time.Time) []byte {
	k := append([]byte{'h'}, segment...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(t.UnixNano())^(1<<63))
}

// encBufs are buffers for encoding outputs: a batch's block runs to tens of
// kilobytes, which grown from nothing every time cost a tenth of encoding.
var encBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// WriteOutputs implements engine.OutputStore.
func (s *DB) WriteOutputs(w *engine.OutputWrite) error {
	b := s.db.NewBatch()
	defer b.Close()
	// The batch copies what it is given: one buffer serves every value.
	bp := encBufs.Get().(*[]byte)
	enc := (*bp)[:0]
	defer func() {
		if cap(enc) <= 1<<20 {
			*bp = enc[:0]
			encBufs.Put(bp)
		}
	}()
	if len(w.Outputs) > 0 {
		var err error
		if enc, err = appendOutputBlock(enc, w.Outputs); err != nil {
			return fmt.Errorf("encode outputs: %w", err)
		}
		if err := b.Set(outputKey(w.Outputs[0].ID), enc, nil); err != nil {
			return err
		}
	}
	locked := false // s.actMu, taken for writes of whole actions (see TrimOutputs)
	for i := range w.Outputs {
		a := w.Outputs[i].Action
		if a == nil {
			continue
		}
		// A new action is in the output block just written: its key says
		// so with an empty value, and the action is encoded once. An
		// update writes the action as it now is.
		enc = enc[:0]
		if w.Outputs[i].Kind != twinhub.ActionFired {
			if !locked {
				s.actMu.Lock()
				defer s.actMu.Unlock()
				locked = true
			}
			var err error
			if enc, err = appendAction(append(enc, codecBinary), a); err != nil {
				return fmt.Errorf("encode action %d: %w", a.ID, err)
			}
		}
		if err := b.Set(actionKey(a.ID), enc, nil); err != nil {
			return err
		}
		var err error
		switch {
		case a.Status == twinhub.ActionPending:
			err = b.Set(pendingKey(a.ID), nil, nil)
		case w.Outputs[i].Kind == twinhub.ActionUpdated:
			// Only an update can end a wait: a new action that does not
			// wait has no pending key to delete, nor a tombstone to leave.
			err = b.Delete(pendingKey(a.ID), nil)
		}
		if err != nil {
			return err
		}
	}
	if err := setTwins(b, w.Twins, w.Marks); err != nil {
		return err
	}
	if len(w.Logged) > 0 {
		v := binary.AppendUvarint(nil, uint64(len(w.Logged)))
		for _, seq := range w.Logged {
			v = binary.AppendUvarint(v, seq)
		}
		if err := b.Set(loggedKey(w.Shard), v, nil); err != nil {
			return err
		}
	}
	if w.Next > 0 {
		if err := b.Set(append([]byte{'m'}, metaOutputsNext...), binary.AppendUvarint(nil, w.Next), nil); err != nil {
			return err
		}
	}
	// No sync: the process's writes survive its crash in the OS; a power
	// loss is the rebuild's business (see engine's package doc).
	return b.Commit(cpebble.NoSync)
}

func loggedKey(shard int) []byte { return binary.BigEndian.AppendUint16([]byte{'q', 0}, uint16(shard)) }

// LoadLogged implements engine.OutputStore: the highest of what every
// shard wrote, including shards of an earlier run with another layout.
func (s *DB) LoadLogged(partitions int) ([]uint64, error) {
	out := make([]uint64, partitions)
	err := s.scan([]byte{'q', 0}, []byte{'q', 1}, func(k, v []byte) (bool, error) {
		d := decoder{v: v}
		n := d.uvarint()
		for i := uint64(0); i < n && !d.bad; i++ {
			seq := d.uvarint()
			if i < uint64(partitions) {
				out[i] = max(out[i], seq)
			}
		}
		if d.bad || len(d.v) > 0 {
			return false, fmt.Errorf("corrupt output marks %x", k)
		}
		return true, nil
	})
	return out, err
}

// NextOutputID implements engine.OutputStore.
func (s *DB) NextOutputID() (uint64, error) {
	v, ok, err := s.Meta(metaOutputsNext)
	if err != nil || !ok {
		return 1, err
	}
	n, k := binary.Uvarint(v)
	if k <= 0 {
		return 0, fmt.Errorf("corrupt output log position %x", v)
	}
	return n, nil
}

// ReadOutputs implements engine.OutputStore.
func (s *DB) ReadOutputs(after uint64, fn func(twinhub.Output) bool) error {
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: []byte{'o'}, UpperBound: []byte{'p'}})
	if err != nil {
		return err
	}
	defer it.Close()
	// The block holding after+1 is the last one that starts at or before it.
	ok := it.SeekLT(outputKey(after + 2))
	if !ok {
		ok = it.First()
	}
	for ; ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 9 {
			return fmt.Errorf("corrupt output key %x", k)
		}
		more, err := decodeOutputs(binary.BigEndian.Uint64(k[1:]), v, after, fn)
		if err != nil || !more {
			return err
		}
	}
	return it.Error()
}

// decodeOutputs decodes the value of output key first: a block, or one
// output in JSON as versions before blocks wrote them.
func decodeOutputs(first uint64, v []byte, after uint64, fn func(twinhub.Output) bool) (bool, error) {
	if len(v) == 0 || v[0] != '{' {
		return decodeOutputBlock(first, v, after, fn)
	}
	var o twinhub.Output
	if err := json.Unmarshal(v, &o); err != nil {
		return false, fmt.Errorf("corrupt output %d: %w", first, err)
	}
	if o.ID <= after {
		return true, nil
	}
	return fn(o), nil
}

// trimBlocks is how many output blocks TrimOutputs deletes per batch, and
// so how long at most it holds up updates of actions.
const trimBlocks = 64

// TrimOutputs implements engine.OutputStore. It deletes whole blocks: those
// whose newest output is older than before. Actions outlive the output
// log: a new action's key points into its block (an empty value), so the
// action is first copied to its key, in the batch that deletes the block,
// unless an update has put it there already.
func (s *DB) TrimOutputs(before time.Time) error {
	for {
		done, err := s.trimSome(before)
		if err != nil || done {
			return err
		}
	}
}

// trimSome trims up to trimBlocks blocks and reports whether it is done.
func (s *DB) trimSome(before time.Time) (bool, error) {
	// Updates of actions wait, so that none is overwritten with the action
	// as it was first logged.
	s.actMu.Lock()
	defer s.actMu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	var end []byte
	n, done := 0, true
	err := s.scan([]byte{'o'}, []byte{'p'}, func(k, v []byte) (bool, error) {
		if n == trimBlocks {
			done = false
			return false, nil
		}
		if len(k) != 9 {
			return false, fmt.Errorf("corrupt output key %x", k)
		}
		var newest time.Time
		json1 := len(v) > 0 && v[0] == '{' // one output in JSON, from before blocks: its action has its own key
		if json1 {
			var o struct{ Time time.Time }
			if err := json.Unmarshal(v, &o); err != nil {
				return false, fmt.Errorf("corrupt output %x: %w", k, err)
			}
			newest = o.Time
		} else {
			d := decoder{v: v}
			if _, newest = d.blockHeader(); d.bad {
				return false, fmt.Errorf("corrupt output block %x", k)
			}
		}
		if !newest.Before(before) {
			return false, nil
		}
		if !json1 {
			// Copy the block's new actions out before it goes.
			var keepErr error
			_, err := decodeOutputBlock(binary.BigEndian.Uint64(k[1:]), v, 0, func(o twinhub.Output) bool {
				if o.Kind == twinhub.ActionFired && o.Action != nil {
					keepErr = s.keepAction(b, o.Action)
				}
				return keepErr == nil
			})
			if err = cmp.Or(err, keepErr); err != nil {
				return false, err
			}
		}
		end = prefixEnd(k)
		n++
		return true, nil
	})
	if err != nil || end == nil {
		return true, err
	}
	if err := b.DeleteRange([]byte{'o'}, end, nil); err != nil {
		return false, err
	}
	return done, b.Commit(cpebble.NoSync)
}

// keepAction adds to b the action a as logged, when its key still points
// into the output log.
func (s *DB) keepAction(b *cpebble.Batch, a *twinhub.Action) error {
	v, ok, err := s.get(actionKey(a.ID))
	if err != nil || !ok || len(v) > 0 {
		return err
	}
	enc, err := appendAction([]byte{codecBinary}, a)
	if err != nil {
		return fmt.Errorf("encode action %d: %w", a.ID, err)
	}
	return b.Set(actionKey(a.ID), enc, nil)
}

// Action implements engine.OutputStore.
func (s *DB) Action(id uint64) (twinhub.Action, bool, error) {
	snap := s.db.NewSnapshot()
	defer snap.Close()
	var a twinhub.Action
	v, closer, err := snap.Get(actionKey(id))
	if errors.Is(err, cpebble.ErrNotFound) {
		return a, false, nil
	}
	if err != nil {
		return a, false, err
	}
	defer closer.Close()
	logged := loggedActions{r: snap}
	defer logged.close()
	if a, err = logged.action(id, v); err != nil {
		return a, false, err
	}
	return a, true, nil
}

// loggedActions decodes the values of action keys, reading the actions
// whose value is empty from their output blocks in r. It keeps the block
// it read last, so that ids asked for in increasing order read each block
// once.
type loggedActions struct {
	r     cpebble.Reader
	it    *cpebble.Iterator
	first uint64
	outs  []twinhub.Output
}

func (l *loggedActions) close() {
	if l.it != nil {
		l.it.Close()
	}
}

func (l *loggedActions) action(id uint64, v []byte) (twinhub.Action, error) {
	if len(v) > 0 {
		return decodeActionValue(id, v)
	}
	if len(l.outs) == 0 || id < l.first || id-l.first >= uint64(len(l.outs)) {
		if err := l.load(id); err != nil {
			return twinhub.Action{}, err
		}
	}
	if id >= l.first && id-l.first < uint64(len(l.outs)) {
		if o := l.outs[id-l.first]; o.Kind == twinhub.ActionFired && o.Action != nil {
			return *o.Action, nil
		}
	}
	return twinhub.Action{}, fmt.Errorf("corrupt action %d: not in the output log", id)
}

// load decodes the block that holds output id.
func (l *loggedActions) load(id uint64) error {
	if l.it == nil {
		it, err := l.r.NewIter(&cpebble.IterOptions{LowerBound: []byte{'o'}, UpperBound: []byte{'p'}})
		if err != nil {
			return err
		}
		l.it = it
	}
	l.outs = l.outs[:0]
	if !l.it.SeekLT(outputKey(id + 1)) {
		return l.it.Error()
	}
	k := l.it.Key()
	if len(k) != 9 {
		return fmt.Errorf("corrupt output key %x", k)
	}
	l.first = binary.BigEndian.Uint64(k[1:])
	_, err := decodeOutputs(l.first, l.it.Value(), 0, func(o twinhub.Output) bool {
		l.outs = append(l.outs, o)
		return true
	})
	return err
}

// decodeActionValue decodes the value of action key id: binary, or JSON as
// versions before the binary encoding wrote it.
func decodeActionValue(id uint64, v []byte) (twinhub.Action, error) {
	var a twinhub.Action
	var err error
	if len(v) > 0 && v[0] == '{' {
		err = json.Unmarshal(v, &a)
	} else {
		a, err = decodeAction(v)
		a.ID = id
	}
	if err != nil {
		return a, fmt.Errorf("corrupt action %d: %w", id, err)
	}
	return a, nil
}

// Actions implements engine.OutputStore.
func (s *DB) Actions(after uint64, fn func(twinhub.Action) bool) error {
	// One snapshot for the keys and the blocks: a trim in between moves an
	// action from one to the other.
	snap := s.db.NewSnapshot()
	defer snap.Close()
	logged := loggedActions{r: snap}
	defer logged.close()
	it, err := snap.NewIter(&cpebble.IterOptions{LowerBound: actionKey(after + 1), UpperBound: []byte{'o'}})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 9 {
			return fmt.Errorf("corrupt action key %x", k)
		}
		a, err := logged.action(binary.BigEndian.Uint64(k[1:]), it.Value())
		if err != nil {
			return err
		}
		if !fn(a) {
			return nil
		}
	}
	return it.Error()
}

// PendingActions implements engine.OutputStore.
func (s *DB) PendingActions(fn func(twinhub.Action) bool) error {
	var ids []uint64
	err := s.scan([]byte{'p'}, []byte{'q'}, func(k, _ []byte) (bool, error) {
		if len(k) != 9 {
			return false, fmt.Errorf("corrupt pending action key %x", k)
		}
		ids = append(ids, binary.BigEndian.Uint64(k[1:]))
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		a, ok, err := s.Action(id)
		if err != nil {
			return err
		}
		if ok && !fn(a) {
			return nil
		}
	}
	return nil
}

// Members implements engine.OutputStore.
func (s *DB) Members(segment, after string, fn func(string) bool) error {
	prefix := memberKey(segment, "")
	lo := memberKey(segment, after)
	if after != "" {
		lo = append(lo, 0) // keys never hold 0x00: this is the next key
	}
	return s.scan(lo, prefixEnd(prefix), func(k, _ []byte) (bool, error) {
		return fn(string(k[len(prefix):])), nil
	})
}

// SegmentSizes implements engine.OutputStore.
func (s *DB) SegmentSizes() (map[string]int64, error) {
	sizes := map[string]int64{}
	err := s.scan([]byte{'j'}, []byte{'k'}, func(k, _ []byte) (bool, error) {
		i := bytes.IndexByte(k, 0)
		if i < 0 {
			return false, fmt.Errorf("corrupt membership key %q", k)
		}
		sizes[string(k[1:i])]++
		return true, nil
	})
	return sizes, err
}

// ResetSegments implements engine.OutputStore.
func (s *DB) ResetSegments() error {
	b := s.db.NewBatch()
	defer b.Close()
	// 'q' then a twin key held per-twin output revisions in versions
	// before the Logged seqs ('q' 0x00); deleting them clears what such a
	// version left.
	for _, r := range [][2][]byte{{{'j'}, {'k'}}, {{'q', 0x20}, {'r'}}} {
		if err := b.DeleteRange(r[0], r[1], nil); err != nil {
			return err
		}
	}
	return b.Commit(cpebble.Sync)
}

// SaveSegmentSizes implements engine.OutputStore.
func (s *DB) SaveSegmentSizes(t time.Time, sizes map[string]int64) error {
	b := s.db.NewBatch()
	defer b.Close()
	for name, n := range sizes {
		if err := b.Set(historyKey(name, t), binary.AppendVarint(nil, n), nil); err != nil {
			return err
		}
	}
	return b.Commit(cpebble.NoSync)
}

// SegmentHistory implements engine.OutputStore.
func (s *DB) SegmentHistory(segment string, from, to time.Time, fn func(time.Time, int64) bool) error {
	return s.scan(historyKey(segment, from), historyKey(segment, to), func(k, v []byte) (bool, error) {
		if len(k) < 8 {
			return false, fmt.Errorf("corrupt segment history key %q", k)
		}
		t := int64(binary.BigEndian.Uint64(k[len(k)-8:]) ^ (1 << 63))
		n, m := binary.Varint(v)
		if m <= 0 {
			return false, fmt.Errorf("corrupt segment history value at %q", k)
		}
		return fn(time.Unix(0, t).UTC(), n), nil
	})
}

// scan calls fn for every key in [lo, hi) until fn returns false or fails.
func (s *DB) scan(lo, hi []byte, fn func(k, v []byte) (bool, error)) error {
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		more, err := fn(it.Key(), it.Value())
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	return it.Error()
}

// prefixEnd returns the smallest key greater than every key with prefix.
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
