package engine

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/schema"
)

// metaRebuild is set while a schema swap rebuilds every twin.
const metaRebuild = "rebuild"

// SwapReport says what activating a schema version did.
type SwapReport struct {
	Version  int           `json:"version"`
	Replayed int           `json:"replayed_events"`
	Invalid  int           `json:"invalid_events"`
	Took     time.Duration `json:"-"`
}

// SetSchema validates src and, if it is valid, activates it as the next
// version. Every twin is then rebuilt by replaying the whole archive under
// the new version, so aggregates added or changed by it are backfilled from
// history rather than starting empty. Ingestion waits during the rebuild.
// An invalid schema is rejected with a *schema.ValidationError and the
// running version stays active.
func (e *Engine) SetSchema(src []byte) (*schema.Schema, SwapReport, error) {
	sc, err := schema.Parse(src)
	if err != nil {
		return nil, SwapReport{}, err
	}
	e.swapMu.Lock()
	defer e.swapMu.Unlock()
	// Events ingested during the replay would reach twins before their own
	// history does, so ingestion waits for the whole rebuild.
	e.gate.Lock()
	defer e.gate.Unlock()
	if e.closed {
		return nil, SwapReport{}, twinhub.Errorf(twinhub.EUNAVAILABLE, "engine is closed")
	}
	t0 := time.Now()
	// Persist first: seen ids and timeline entries must survive the reset.
	release, err := e.pause(func(sh *shard) error { return sh.persistAll() })
	if err != nil {
		release()
		return nil, SwapReport{}, err
	}
	sc.Version = e.sc.Load().Version + 1
	if err := e.store.SaveSchema(sc.Version, src); err != nil {
		release()
		return nil, SwapReport{}, fmt.Errorf("store schema version %d: %w", sc.Version, err)
	}
	// A crash before the rebuild ends must finish it silently on restart.
	if err := e.store.SetMeta(metaRebuild, []byte{1}); err != nil {
		release()
		return nil, SwapReport{}, fmt.Errorf("mark rebuild: %w", err)
	}
	if err := e.store.ResetTwins(); err != nil {
		release()
		return nil, SwapReport{}, fmt.Errorf("reset twins: %w", err)
	}
	// Memberships are recomputed by the rebuild, silently: history does not
	// fire rules again.
	if err := e.store.ResetSegments(); err != nil {
		release()
		return nil, SwapReport{}, fmt.Errorf("reset segments: %w", err)
	}
	for _, sh := range e.shards {
		sh.mu.Lock()
		sh.ring, sh.hand, sh.bytes, sh.dirty, sh.ids, sh.applied = nil, 0, 0, nil, idQueue{}, 0
		sh.unsaved, sh.unsavedStale = nil, 0
		sh.hot.Store(0)
		sh.twins.Store(0)
		for _, p := range sh.parts {
			p.twins = twinTable{}
			p.stored, p.hotStored, p.wm = 0, 0, 0
		}
		sh.mu.Unlock()
	}
	e.activate(sc)
	release()
	e.rebuilding.Store(true)
	e.quiet.Store(true)
	n, invalid, err := e.replay(0)
	// Persist the rebuilt twins while the archive's timeline and ids are
	// known to be covered, so a restart replays nothing twice.
	for _, sh := range e.shards {
		if perr := sh.control(func() error { return sh.persistAll() }); perr != nil && err == nil {
			err = perr
		}
	}
	e.rebuilding.Store(false)
	e.quiet.Store(false)
	if err != nil {
		return nil, SwapReport{}, err
	}
	if err := e.store.SetMeta(metaRebuild, nil); err != nil {
		return nil, SwapReport{}, fmt.Errorf("unmark rebuild: %w", err)
	}
	return sc, SwapReport{Version: sc.Version, Replayed: n, Invalid: invalid, Took: time.Since(t0)}, nil
}

// pause parks every shard between batches after running first on it; the
// returned func resumes them.
func (e *Engine) pause(first func(*shard) error) (release func(), err error) {
	resume := make(chan struct{})
	var parked sync.WaitGroup
	errs := make([]error, len(e.shards))
	for i, sh := range e.shards {
		parked.Add(1)
		go sh.control(func() error {
			errs[i] = first(sh)
			parked.Done()
			<-resume
			return nil
		})
	}
	parked.Wait()
	return func() { close(resume) }, errors.Join(errs...)
}
