package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/engine"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/store/pebble"
)

// runInProcess opens a store and an engine in o.DataDir and drives them
// directly, as the HTTP ingest handler would: decode, then Ingest.
func runInProcess(ctx context.Context, o Options, batches []batch) (rep Report, err error) {
	dir, cleanup, err := dataDir(o.DataDir)
	if err != nil {
		return Report{}, err
	}
	defer cleanup()
	db, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		return Report{}, err
	}
	e, err := engine.Open(engine.Options{Store: db, Schema: o.Schema, Logger: o.Logger})
	if err != nil {
		return Report{}, errors.Join(err, db.Close())
	}
	defer func() {
		// Close persists every twin; it is not part of the measurement.
		err = errors.Join(err, e.Close(), db.Close())
	}()

	base := heapInUse()
	out0, cpu0 := e.LastOutputID(), cpuTime()
	rep, err = drive(ctx, o, batches, inProcess{e}, nil)
	if err != nil {
		return rep, err
	}
	if rep.Events > 0 {
		rep.CPUPerEvent = (cpuTime() - cpu0) / time.Duration(rep.Events)
	}
	rep.Twins = e.Stats().Twins
	rep.Outputs = int64(e.LastOutputID() - out0)
	if heap := heapInUse(); rep.Twins > 0 && heap > base {
		rep.HeapPerTwin = float64(heap-base) / float64(rep.Twins)
	}
	if o.MemProfile != "" {
		f, err := os.Create(o.MemProfile)
		if err != nil {
			return rep, err
		}
		defer f.Close()
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			return rep, err
		}
	}
	// The events were in the heap at the baseline: they must still be in it
	// at the second measurement, or their size would be subtracted.
	runtime.KeepAlive(batches)
	runtime.KeepAlive(o.Lines)
	return rep, nil
}

// dataDir returns dir, or a new temporary directory and a cleanup that
// removes it.
func dataDir(dir string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "twinhub-bench-")
	if err != nil {
		return "", nil, fmt.Errorf("data directory: %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// inProcess drives an engine directly.
type inProcess struct{ e *engine.Engine }

func (t inProcess) ingester() func(context.Context, *batch) (counts, error) {
	sc := t.e.Schema()
	dec := ingest.NewDecoder(sc, time.Now, "bench")
	dec.Borrow = true // the lines stay in memory for the whole run, as a request's body does for the request
	var b ingest.Batch
	return func(ctx context.Context, bt *batch) (counts, error) {
		b.Reset()
		dec.BeginBatch() // one receive time per batch, as the HTTP handler has per body
		for _, l := range bt.lines {
			dec.Decode(l, &b)
		}
		dec.EndBatch()
		if err := t.e.Ingest(ctx, &b, sc); err != nil {
			return counts{}, err
		}
		a, d, r := b.Counts()
		return counts{a, d, r}, nil
	}
}

func (t inProcess) reader() func(context.Context, string) (bool, error) {
	return func(_ context.Context, key string) (bool, error) {
		_, err := t.e.Twin(key)
		if twinhub.ErrorCode(err) == twinhub.ENOTFOUND {
			return false, nil
		}
		return err == nil, err
	}
}
