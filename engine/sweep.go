package engine

import (
	"context"
	"sync"
	"time"

	"github.com/twinhub/twinhub"
)

// sweepChunk is how many twins a shard re-evaluates per step of a sweep.
// Steps queue behind ingestion batches, so a sweep over a million twins
// interleaves with ingestion instead of stalling it.
const sweepChunk = 2048

// sweepShare is the share of a busy shard's time a sweep takes: after a
// step, when batches are waiting, the next step waits three times as long
// as this one took. A sweep that turns over a million twins then runs for
// seconds longer, and ingestion keeps three quarters of its pace instead of
// half; an idle shard sweeps at full speed.
const sweepShare = 0.25

// Sweep re-evaluates the segments that time alone can change (windows
// emptying, days passing) on every hot twin, logging the entries and exits
// it finds and firing the rules they trigger, as if an event had come. It
// returns how many twins changed. Cold twins are re-evaluated when next
// loaded by an event. The background loop calls it every SweepInterval.
func (e *Engine) Sweep(ctx context.Context) (int, error) {
	rc := e.rc.Load()
	if rc == nil || len(rc.sc.TimedSegments) == 0 {
		return 0, nil
	}
	// Held shared for the whole sweep: Close and schema swaps wait for it.
	e.gate.RLock()
	defer e.gate.RUnlock()
	if e.closed {
		return 0, twinhub.Errorf(twinhub.EUNAVAILABLE, "engine is closed")
	}
	var wg sync.WaitGroup
	counts := make([]int, len(e.shards))
	errs := make([]error, len(e.shards))
	for i, sh := range e.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[i], errs[i] = sh.sweep(ctx, rc)
		}()
	}
	wg.Wait()
	n := 0
	for i := range counts {
		n += counts[i]
		if errs[i] != nil {
			return n, errs[i]
		}
	}
	return n, nil
}

// sweep walks the shard's hot twins in chunks, each run on the shard
// goroutine between batches.
func (s *shard) sweep(ctx context.Context, rc *reaction) (int, error) {
	changed := 0
	for pos := 0; ; pos += sweepChunk {
		if err := ctx.Err(); err != nil {
			return changed, err
		}
		done, busy := false, false
		var took time.Duration
		err := s.step(func() error {
			if s.e.rc.Load() != rc || pos >= len(s.ring) {
				done = true // the schema changed, or the walk is over
				return nil
			}
			t0 := time.Now()
			changed += s.sweepChunk(rc, pos)
			took, busy = time.Since(t0), len(s.in) > 0
			return nil
		})
		if err != nil || done {
			return changed, err
		}
		if busy {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(float64(took) * (1 - sweepShare) / sweepShare)):
			}
		}
	}
}

// sweepChunk re-evaluates the timed segments of ring[pos:pos+sweepChunk].
func (s *shard) sweepChunk(rc *reaction, pos int) int {
	now := s.e.nowNS()
	end := min(pos+sweepChunk, len(s.ring))
	changed := 0
	sc, w := rc.sc, &s.outW
	buf := s.snapBuf[:0]
	var written []writtenTwin
	emit := !s.e.quiet.Load()
	s.mu.Lock()
	for _, t := range s.ring[pos:end] {
		if !s.react(rc, t, nil, nil, sc.TimedSegments, now, emit) {
			continue
		}
		changed++
		// No event caused this change, so no replay would derive it again:
		// the twin is saved with its outputs.
		start := len(buf)
		buf = appendSnapshot(buf, t, sc.Version, sc.Layout)
		w.Twins = append(w.Twins, Snapshot{Key: t.key, Data: buf[start:len(buf):len(buf)]})
		written = s.markWritten(written, t)
	}
	s.mu.Unlock()
	if err := s.flushOutputs(); err != nil {
		s.undoWritten(written)
	}
	rc.publish(s.id)
	s.snapBuf = buf[:0]
	return changed
}

// step runs fn on the shard goroutine between batches, without waiting for
// the acknowledgement of earlier batches as control does.
func (s *shard) step(fn func() error) error {
	var wg sync.WaitGroup
	wg.Add(1)
	j := &job{ctl: fn, wg: &wg, step: true}
	s.in <- j
	wg.Wait()
	return j.err
}

// background runs the periodic work: sweeps, expiry of pending actions,
// segment size history and output log retention. It exits when stop is
// closed.
func (e *Engine) background(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	interval := e.opts.SweepInterval
	if interval <= 0 {
		<-stop
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-stop; cancel() }()
	lastTrim := time.Time{}
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if _, err := e.Sweep(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("segment sweep", "err", err)
		}
		if _, err := e.ExpireActions(); err != nil {
			e.log.Error("expire pending actions", "err", err)
		}
		if err := e.RecordSegmentSizes(); err != nil {
			e.log.Error("record segment sizes", "err", err)
		}
		if now := e.WallClock(); now.Sub(lastTrim) > time.Hour {
			lastTrim = now
			if err := e.store.TrimOutputs(now.Add(-e.opts.OutputRetention)); err != nil {
				e.log.Error("trim output log", "err", err)
			}
		}
	}
}
