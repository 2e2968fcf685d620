package engine

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twinhub/twinhub/ingest"
)

// recover loads the partition marks and seen ids, then replays the archive
// above the lowest watermark through the shards.
func (e *Engine) recover() (err error) {
	t0 := time.Now()
	marks, err := e.store.LoadMarks()
	if err != nil {
		return fmt.Errorf("load checkpoint: %w", err)
	}
	// Twin state is saved without waiting for the archive's fsync. A crash
	// of the process loses neither, but after a power loss the saved state
	// may reflect events the archive never made durable (and were never
	// acknowledged). Then everything derived is rebuilt from the archive.
	last := e.seq.Load()
	for _, m := range marks {
		if m.Watermark > last || m.Reflects > last {
			e.log.Warn("saved twin state is ahead of the archive (the machine lost writes); rebuilding every twin from the archive",
				"partition", m.Partition, "watermark", m.Watermark, "reflects", m.Reflects, "archive_last_seq", last)
			if err := e.store.ResetDerived(); err != nil {
				return fmt.Errorf("reset derived state: %w", err)
			}
			if err := e.store.SetMeta(metaRebuild, []byte{1}); err != nil {
				return fmt.Errorf("mark rebuild: %w", err)
			}
			marks = nil
			break
		}
	}
	// A rebuild (a schema swap, or the reset above) that a crash interrupted
	// finishes here, as quietly as it would have: rules do not fire again
	// for history.
	if v, _, err := e.store.Meta(metaRebuild); err != nil {
		return fmt.Errorf("read rebuild mark: %w", err)
	} else if len(v) > 0 {
		e.log.Warn("finishing an interrupted rebuild of every twin from the archive")
		if err := e.store.ResetTwins(); err != nil {
			return fmt.Errorf("reset twins: %w", err)
		}
		if err := e.store.ResetSegments(); err != nil {
			return fmt.Errorf("reset segments: %w", err)
		}
		if err := e.loadSegmentSizes(); err != nil {
			return err
		}
		marks = nil
		e.quiet.Store(true)
		defer func() {
			e.quiet.Store(false)
			if err == nil {
				err = e.store.SetMeta(metaRebuild, nil)
			}
		}()
	}
	for _, m := range marks {
		if m.Partition < 0 || m.Partition >= len(e.parts) {
			return fmt.Errorf("checkpoint names partition %d of %d", m.Partition, len(e.parts))
		}
		p := e.parts[m.Partition]
		p.wm, p.stored = m.Watermark, m.Stored
		p.shard.twins.Add(m.Stored)
	}
	logged, err := e.store.LoadLogged(len(e.parts))
	if err != nil {
		return fmt.Errorf("load output marks: %w", err)
	}
	for i, p := range e.parts {
		// Never above the archive's end: after a power loss took its tail,
		// new events reuse those seqs, and their outputs are not logged.
		p.logged.Store(min(logged[i], last))
	}
	ids := 0
	err = e.store.LoadIDs(func(s SeenIDs) error {
		if s.Partition < 0 || s.Partition >= len(e.parts) {
			return fmt.Errorf("seen ids name partition %d of %d", s.Partition, len(e.parts))
		}
		seen := &e.parts[s.Partition].seen
		for _, id := range s.IDs {
			seen.add(id)
		}
		ids += len(s.IDs)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load seen ids: %w", err)
	}
	for _, sh := range e.shards {
		for _, p := range sh.parts {
			sh.applied = max(sh.applied, p.wm)
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
	if n > 0 {
		// Persist what the replay rebuilt, so that another crash soon after
		// does not replay it all again.
		for _, sh := range e.shards {
			if err := sh.control(sh.persistAll); err != nil {
				return fmt.Errorf("persist after replay: %w", err)
			}
		}
	}
	e.log.Info("recovered", "seen_ids", ids, "replayed", n, "invalid_now", skipped, "from_seq", from,
		"last_seq", e.seq.Load(), "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// replay feeds archived events with seq > from (and above their partition's
// watermark) to the shards. It returns how many it applied and how many no
// longer decode under the active schema; those stay in the archive.
//
// Reading, decoding and applying overlap: the store is read on this
// goroutine, chunks are decoded by two workers, and a dispatcher hands them
// to the shards strictly in archive order, because a shard must see each
// twin's events in seq order (a twin skips seqs at or below its last).
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

	type chunk struct {
		raw     []byte   // the records, back to back
		ends    []int    // end offset of each record in raw
		seqs    []uint64 // their seqs
		sources []string // their lineage sources
		b       ingest.Batch
		invalid int
		decoded chan struct{}
		wg      sync.WaitGroup
		jobs    []*job
	}
	const chunkEvents = 4096
	const decoders = 2
	decodeQ := make(chan *chunk, 2*decoders)
	orderQ := make(chan *chunk, 4*decoders)
	var decWG sync.WaitGroup
	var logged atomic.Int32
	for range decoders {
		decWG.Add(1)
		go func() {
			defer decWG.Done()
			dec := ingest.NewDecoder(sc, e.opts.Now, "")
			dec.Replay = true
			for c := range decodeQ {
				start := 0
				kept := c.seqs[:0]
				for i, end := range c.ends {
					dec.SetSource(c.sources[i]) // lineage as it was when the event arrived
					if !dec.Decode(c.raw[start:end], &c.b) {
						c.invalid++
						if logged.Add(1) <= 10 {
							res := c.b.Results[len(c.b.Results)-1]
							e.log.Warn("archived event no longer valid under the active schema; it stays archived but is not applied",
								"seq", c.seqs[i], "field", res.Field, "reason", res.Reason)
						}
					} else {
						kept = append(kept, c.seqs[i])
					}
					start = end
				}
				c.seqs = kept
				close(c.decoded)
			}
		}()
	}

	// The dispatcher keeps a few chunks in the shards at once.
	dispatchErr := make(chan error, 1)
	go func() {
		var inflight []*chunk
		wait := func(c *chunk) error {
			c.wg.Wait()
			for _, j := range c.jobs {
				if j.err != nil {
					return j.err
				}
			}
			return nil
		}
		var firstErr error
		for c := range orderQ {
			<-c.decoded
			jobs := make([]*job, len(e.shards))
			for i := range c.b.Events {
				h := keyHash(c.b.Events[i].Key)
				p := e.partitionOfHash(h)
				s := p % len(e.shards)
				if jobs[s] == nil {
					jobs[s] = &job{b: &c.b, replay: true, wg: &c.wg}
				}
				jobs[s].idx = append(jobs[s].idx, int32(i))
				jobs[s].part = append(jobs[s].part, int32(p))
				jobs[s].hash = append(jobs[s].hash, h)
				jobs[s].seqs = append(jobs[s].seqs, c.seqs[i])
			}
			for s, j := range jobs {
				if j != nil {
					c.wg.Add(1)
					c.jobs = append(c.jobs, j)
					e.shards[s].in <- j
				}
			}
			inflight = append(inflight, c)
			if len(inflight) > 4 {
				if err := wait(inflight[0]); err != nil && firstErr == nil {
					firstErr = err
				}
				inflight = inflight[1:]
			}
		}
		for _, c := range inflight {
			if err := wait(c); err != nil && firstErr == nil {
				firstErr = err
			}
		}
		dispatchErr <- firstErr
	}()

	var all []*chunk
	sources := map[string]string{} // few distinct values; one copy each
	cur := &chunk{decoded: make(chan struct{})}
	send := func() {
		all = append(all, cur)
		orderQ <- cur
		decodeQ <- cur
		cur = &chunk{decoded: make(chan struct{})}
	}
	err = e.store.Replay(from, func(r Record) error {
		if r.Partition >= len(e.parts) || r.Seq <= wms[r.Partition] {
			return nil
		}
		cur.raw = append(cur.raw, r.Raw...) // Raw is only valid during the call
		cur.ends = append(cur.ends, len(cur.raw))
		cur.seqs = append(cur.seqs, r.Seq)
		cur.sources = append(cur.sources, internSource(sources, r.Source))
		if len(cur.ends) >= chunkEvents {
			send()
		}
		return nil
	})
	if len(cur.ends) > 0 {
		send()
	}
	close(decodeQ)
	close(orderQ)
	decWG.Wait()
	derr := <-dispatchErr
	for _, c := range all {
		applied += len(c.b.Events)
		invalid += c.invalid
	}
	if err != nil {
		return applied, invalid, fmt.Errorf("replay archive: %w", err)
	}
	return applied, invalid, derr
}

func internSource(m map[string]string, s string) string {
	if c, ok := m[s]; ok {
		return c
	}
	m[s] = s
	return s
}
