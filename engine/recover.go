package engine

import (
	"fmt"
	"sync"
	"time"

	"github.com/twinhub/twinhub/ingest"
)

// recover loads the partition marks and seen ids, then replays the archive
// above the lowest watermark through the shards.
func (e *Engine) recover() error {
	t0 := time.Now()
	marks, err := e.store.LoadMarks()
	if err != nil {
		return fmt.Errorf("load checkpoint: %w", err)
	}
	for _, m := range marks {
		if m.Partition < 0 || m.Partition >= len(e.parts) {
			return fmt.Errorf("checkpoint names partition %d of %d", m.Partition, len(e.parts))
		}
		p := e.parts[m.Partition]
		p.wm, p.applied, p.stored = m.Watermark, m.Watermark, m.Stored
		p.shard.twins.Add(m.Stored)
	}
	ids := 0
	err = e.store.LoadIDs(func(s SeenIDs) error {
		if s.Partition < 0 || s.Partition >= len(e.parts) {
			return fmt.Errorf("seen ids name partition %d of %d", s.Partition, len(e.parts))
		}
		seen := e.parts[s.Partition].seen
		for _, id := range s.IDs {
			seen[id.H] = id.Check
		}
		ids += len(s.IDs)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load seen ids: %w", err)
	}
	for _, sh := range e.shards {
		for _, p := range sh.parts {
			sh.applied = max(sh.applied, p.applied)
		}
	}
	from := ^uint64(0)
	for _, p := range e.parts {
		from = min(from, p.wm)
	}
	n, skipped, err := e.replay(from)
	if err != nil {
		return err
	}
	e.log.Info("recovered", "seen_ids", ids, "replayed", n, "invalid_now", skipped, "from_seq", from,
		"last_seq", e.seq.Load(), "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// replay feeds archived events with seq > from (and above their partition's
// watermark) to the shards. It returns how many it applied and how many no
// longer decode under the active schema; those stay in the archive.
func (e *Engine) replay(from uint64) (applied, invalid int, err error) {
	e.replaying.Store(true)
	defer e.replaying.Store(false)
	// The shards move their watermarks as they persist; the filter uses the
	// ones replay started from (reading the live ones would race).
	wms := make([]uint64, len(e.parts))
	for i, p := range e.parts {
		p.shard.mu.RLock()
		wms[i] = p.wm
		p.shard.mu.RUnlock()
	}
	sc := e.sc.Load()
	dec := ingest.NewDecoder(sc, e.opts.Now, "")
	dec.Replay = true
	const chunk = 4096
	// Several chunks in flight keep both the decoder and the shards busy.
	type slot struct {
		b    ingest.Batch
		seqs []uint64
		wg   sync.WaitGroup
		jobs []*job
	}
	var slots [4]slot
	cur := 0
	wait := func(sl *slot) error {
		sl.wg.Wait()
		for _, j := range sl.jobs {
			if j.err != nil {
				return j.err
			}
		}
		sl.jobs = sl.jobs[:0]
		return nil
	}
	flush := func() error {
		sl := &slots[cur]
		jobs := make([]*job, len(e.shards))
		for i := range sl.b.Events {
			p := e.PartitionOf(sl.b.Events[i].Key)
			s := p % len(e.shards)
			if jobs[s] == nil {
				jobs[s] = &job{b: &sl.b, replay: true, wg: &sl.wg}
			}
			jobs[s].idx = append(jobs[s].idx, int32(i))
			jobs[s].part = append(jobs[s].part, int32(p))
			jobs[s].seqs = append(jobs[s].seqs, sl.seqs[i])
		}
		for s, j := range jobs {
			if j != nil {
				sl.wg.Add(1)
				sl.jobs = append(sl.jobs, j)
				e.shards[s].in <- j
			}
		}
		applied += len(sl.b.Events)
		cur = (cur + 1) % len(slots)
		next := &slots[cur]
		if err := wait(next); err != nil {
			return err
		}
		next.b.Reset()
		next.seqs = next.seqs[:0]
		return nil
	}
	err = e.store.Replay(from, func(r Record) error {
		if r.Partition >= len(e.parts) || r.Seq <= wms[r.Partition] {
			return nil
		}
		sl := &slots[cur]
		if !dec.Decode(r.Raw, &sl.b) {
			res := sl.b.Results[len(sl.b.Results)-1]
			invalid++
			if invalid <= 10 {
				e.log.Warn("archived event no longer valid under the active schema; it stays archived but is not applied",
					"seq", r.Seq, "field", res.Field, "reason", res.Reason)
			}
			return nil
		}
		sl.seqs = append(sl.seqs, r.Seq)
		if len(sl.b.Events) >= chunk {
			return flush()
		}
		return nil
	})
	if err != nil {
		return applied, invalid, fmt.Errorf("replay archive: %w", err)
	}
	if len(slots[cur].b.Events) > 0 {
		if err := flush(); err != nil {
			return applied, invalid, err
		}
	}
	for i := range slots {
		if err := wait(&slots[i]); err != nil {
			return applied, invalid, err
		}
	}
	return applied, invalid, nil
}
