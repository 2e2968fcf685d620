package engine

import (
	"cmp"
	"context"
	"fmt"
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
// returns how many twins changed. Cold twins are SweepCold's. The
// background loop calls it every SweepInterval.
func (e *Engine) Sweep(ctx context.Context) (int, error) {
	return e.sweeping(func(rc *reaction) (int, error) { return e.sweepHot(ctx, rc) })
}

// sweeping runs a sweep with the active reaction, holding the gate shared
// for the whole sweep (Close and schema swaps wait for it); nothing when no
// segment depends on time.
func (e *Engine) sweeping(sweep func(*reaction) (int, error)) (int, error) {
	rc := e.rc.Load()
	if rc == nil || len(rc.sc.TimedSegments) == 0 {
		return 0, nil
	}
	e.gate.RLock()
	defer e.gate.RUnlock()
	if e.closed {
		return 0, twinhub.Errorf(twinhub.EUNAVAILABLE, "engine is closed")
	}
	return sweep(rc)
}

// sweepHot runs the shards' sweeps of their hot twins side by side.
func (e *Engine) sweepHot(ctx context.Context, rc *reaction) (int, error) {
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
		done := false
		err := s.pacedStep(ctx, func() error {
			if s.e.rc.Load() != rc || pos >= len(s.ring) {
				done = true // the schema changed, or the walk is over
				return nil
			}
			changed += s.sweepChunk(rc, pos)
			return nil
		})
		if err != nil || done {
			return changed, err
		}
	}
}

// pacedStep runs fn on the shard goroutine between batches, as a step, and
// then, when batches were waiting, waits three times as long as fn took:
// a sweep takes sweepShare of a busy shard's time.
func (s *shard) pacedStep(ctx context.Context, fn func() error) error {
	var took time.Duration
	busy := false
	err := s.step(func() error {
		t0 := time.Now()
		err := fn()
		took, busy = time.Since(t0), len(s.in) > 0
		return err
	})
	if err == nil && busy {
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(float64(took) * (1 - sweepShare) / sweepShare)):
		}
	}
	return err
}

// SweepCold does what Sweep does for cold twins: it reads the snapshot of
// every twin not in memory, evaluates the segments time alone can change,
// and loads and reacts on only those twins whose membership time changed.
// It returns how many twins changed. The background loop calls it every
// ColdSweepInterval.
func (e *Engine) SweepCold(ctx context.Context) (int, error) {
	return e.sweeping(func(rc *reaction) (int, error) { return e.sweepColdKeys(ctx, rc) })
}

// sweepColdKeys reads the key directory, in key order, and gives each
// shard its cold keys in steps of sweepChunk, run between its batches like
// a sweep's.
func (e *Engine) sweepColdKeys(ctx context.Context, rc *reaction) (int, error) {
	// Which partitions have cold twins, as their shards know (the counts
	// are the shard goroutine's); one going cold during the walk waits for
	// the next cold sweep.
	cold := make([]bool, len(e.parts))
	for _, sh := range e.shards {
		err := sh.step(func() error {
			for _, p := range sh.parts {
				cold[p.id] = p.stored > p.hotStored
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	changed := 0
	batches := make([][]string, len(e.shards))
	flush := func(i int) error {
		if len(batches[i]) == 0 {
			return nil
		}
		keys := batches[i]
		err := e.shards[i].pacedStep(ctx, func() error {
			if e.rc.Load() != rc {
				return nil // the schema changed
			}
			n, err := e.shards[i].sweepCold(rc, keys)
			changed += n
			return err
		})
		batches[i] = batches[i][:0]
		return err
	}
	var err error
	scanErr := e.store.Keys("", func(key string) bool {
		p := e.parts[e.PartitionOf(key)]
		if !cold[p.id] {
			return true
		}
		i := p.shard.id
		batches[i] = append(batches[i], key)
		if len(batches[i]) == sweepChunk {
			err = flush(i)
		}
		return err == nil && ctx.Err() == nil
	})
	for i := range batches {
		if err == nil {
			err = flush(i)
		}
	}
	if err == nil {
		err = cmp.Or(scanErr, ctx.Err())
	}
	return changed, err
}

// sweepCold re-evaluates the timed segments of the cold twins among keys.
// A twin whose membership time changed is loaded, as an event would load
// it, and goes through the hot path: its outputs are logged and it is
// saved with them.
func (s *shard) sweepCold(rc *reaction, keys []string) (int, error) {
	now := s.e.nowNS()
	sc := rc.sc
	var load []string
	for _, key := range keys {
		// No lock: this goroutine is the only one that changes the twin tables.
		kh := keyHash(key)
		if s.e.parts[s.e.partitionOfHash(kh)].twins.get(kh, key) != nil {
			continue // the hot sweep's
		}
		data, ok, err := s.e.store.LoadTwin(key)
		if err != nil {
			return 0, fmt.Errorf("load twin %q: %w", key, err)
		}
		if !ok {
			continue
		}
		// A look, not a load: nothing of it is kept, so nothing is interned.
		t, err := decodeSnapshot(key, data, sc.Version, sc.Layout, func(v string) string { return v })
		if err != nil {
			return 0, fmt.Errorf("load twin %q: %w", key, err)
		}
		s.vars.reset(t, sc.Layout, now)
		for _, si := range sc.TimedSegments {
			if sc.Segments[si].Match(&s.vars, now) != t.inSegment(si) {
				load = append(load, key)
				break
			}
		}
	}
	if len(load) == 0 {
		return 0, nil
	}
	var twins []*twin
	s.mu.Lock()
	for _, key := range load {
		kh := keyHash(key)
		t, err := s.twinFor(sc, s.e.parts[s.e.partitionOfHash(kh)], key, kh, false)
		if err != nil {
			s.mu.Unlock()
			return 0, err
		}
		if t != nil {
			twins = append(twins, t)
		}
	}
	s.mu.Unlock()
	return s.sweepTwins(rc, twins, now), nil
}

// sweepChunk re-evaluates the timed segments of ring[pos:pos+sweepChunk].
func (s *shard) sweepChunk(rc *reaction, pos int) int {
	end := min(pos+sweepChunk, len(s.ring))
	return s.sweepTwins(rc, s.ring[pos:end], s.e.nowNS())
}

// sweepTwins re-evaluates the timed segments of hot twins, logs what
// changed and saves the twins it changed with those outputs.
func (s *shard) sweepTwins(rc *reaction, twins []*twin, now int64) int {
	changed := 0
	sc, w := rc.sc, &s.outW
	buf := s.snapBuf[:0]
	var written []writtenTwin
	emit := !s.e.quiet.Load()
	s.mu.Lock()
	for _, t := range twins {
		if !s.react(rc, t, nil, nil, sc.TimedSegments, now, emit) {
			continue
		}
		changed++
		// No event caused this change, so no replay would derive it again:
		// the twin is saved with its outputs.
		var sn Snapshot
		buf, sn = s.snapshot(buf, t, sc)
		w.Twins = append(w.Twins, sn)
		written = s.markWritten(written, t)
	}
	s.mu.Unlock()
	// A sweep's outputs have no event: published at once.
	if _, err := s.flushOutputs(false); err != nil {
		s.undoWritten(written)
	} else {
		s.markSaved(written)
	}
	rc.publish(s.id)
	s.keepSnapBuf(buf)
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
	lastTrim, lastCold := time.Time{}, time.Now()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if _, err := e.Sweep(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("segment sweep", "err", err)
		}
		if cold := e.opts.ColdSweepInterval; cold > 0 && time.Since(lastCold) >= cold {
			lastCold = time.Now()
			if _, err := e.SweepCold(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("cold segment sweep", "err", err)
			}
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
