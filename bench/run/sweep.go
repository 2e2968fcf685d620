package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twinhub/twinhub/bench/workload"
	"github.com/twinhub/twinhub/engine"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/schema"
	"github.com/twinhub/twinhub/store/pebble"
)

// SweepOptions configure RunSweep. Zero values mean the documented defaults.
type SweepOptions struct {
	// Twins is how many twins the sweep turns over. Default 1,000,000.
	Twins int
	// Lines is the load ingested while the sweep runs (and before it, for the
	// baseline), one NDJSON event each; it is sent again as needed, under
	// fresh ids.
	Lines [][]byte
	// Connections ingesting concurrently. Default 4.
	Connections int
	// DataDir as in Options.
	DataDir string
	// Cold reopens the engine before the load, so that every twin is cold,
	// and runs the cold sweep (Engine.SweepCold).
	Cold   bool
	Logger *slog.Logger
}

// SweepReport is what RunSweep measured.
type SweepReport struct {
	Twins       int
	Changed     int           // twins whose memberships the sweep changed
	Outputs     uint64        // outputs the sweep logged
	SweepTook   time.Duration // the sweep's duration under load
	Before      float64       // median ingest events/s per 100 ms before the sweep
	During      float64       // median ingest events/s per 100 ms while it ran
	MinDuring   float64       // the worst 100 ms while it ran
	AckP99Befor time.Duration // ack p99 before the sweep
	AckP99Durin time.Duration // ack p99 while it ran
}

func (r SweepReport) String() string {
	return fmt.Sprintf("sweep over %s twins: %s changed, %s outputs in %s; ingest %s events/s before, %s during (worst 100 ms %s); ack p99 %s before, %s during",
		group(int64(r.Twins)), group(int64(r.Changed)), group(int64(r.Outputs)), formatDuration(r.SweepTook, 3),
		group(int64(r.Before)), group(int64(r.During)), group(int64(r.MinDuring)),
		formatDuration(r.AckP99Befor, 2), formatDuration(r.AckP99Durin, 2))
}

// sweepSegment is time-dependent: every twin with one purchase is in it
// for 30 days, then leaves it at the next sweep, without any event.
const sweepSegment = `  bench_recent_buyer:
    when: has(twin.days_since_purchase) && twin.days_since_purchase < 30.0
`

// RunSweep measures a time-driven segment sweep under load: it gives
// o.Twins twins one purchase each (all enter a time-dependent segment),
// moves the engine's clock 31 days on, and ingests o.Lines while a sweep
// takes every twin out of the segment, reporting ingestion before and
// during the sweep.
func RunSweep(ctx context.Context, o SweepOptions) (rep SweepReport, err error) {
	if o.Twins <= 0 {
		o.Twins = 1_000_000
	}
	if o.Connections <= 0 {
		o.Connections = DefaultConnections
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(o.Lines) == 0 {
		return rep, errors.New("no events to ingest during the sweep")
	}
	rep.Twins = o.Twins
	sc, err := schema.Parse([]byte(workload.InsertEntries(string(schema.DefaultYAML()), "segments", sweepSegment)))
	if err != nil {
		return rep, err
	}
	dir, cleanup, err := dataDir(o.DataDir)
	if err != nil {
		return rep, err
	}
	defer cleanup()
	db, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		return rep, err
	}
	var skew atomic.Int64 // how far the engine's clock is ahead of the wall
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	eopts := engine.Options{Store: db, Schema: sc, Logger: o.Logger, Now: now, SweepInterval: -1}
	e, err := engine.Open(eopts)
	if err != nil {
		return rep, errors.Join(err, db.Close())
	}
	defer func() {
		if e != nil {
			err = errors.Join(err, e.Close())
		}
		err = errors.Join(err, db.Close())
	}()

	// One purchase per twin, an hour ago.
	dec := ingest.NewDecoder(sc, now, "bench")
	var b ingest.Batch
	at := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for i := 0; i < o.Twins; {
		b.Reset()
		for ; i < o.Twins && len(b.Events) < 4096; i++ {
			line := `{"id":"s-` + strconv.Itoa(i) + `","type":"purchase","customer_id":"sweep-` + strconv.Itoa(i) +
				`","time":"` + at + `","amount":10,"product_id":"p-1"}`
			dec.Decode([]byte(line), &b)
		}
		if err := e.Ingest(ctx, &b, sc); err != nil {
			return rep, err
		}
	}

	sweep := e.Sweep
	if o.Cold {
		// Closing saves every twin; the engine opened again loads none.
		err := e.Close()
		e = nil
		if err != nil {
			return rep, err
		}
		if e, err = engine.Open(eopts); err != nil {
			return rep, err
		}
		sc, sweep = e.Schema(), e.SweepCold
	}

	// Ingest the load throughout; sample its rate every 100 ms.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var ingested atomic.Int64
	var phase atomic.Int32 // 0 before the sweep, 1 during, 2 after
	hists := [2][]time.Duration{}
	var hmu sync.Mutex
	var wg sync.WaitGroup
	var loadErr atomic.Pointer[error]
	var round atomic.Int64
	for c := range o.Connections {
		wg.Go(func() {
			dec := ingest.NewDecoder(sc, now, "bench")
			var b ingest.Batch
			for n := c; loadCtx.Err() == nil; n += o.Connections {
				b.Reset()
				// A fresh id prefix per send, so repeats are not duplicates.
				prefix := `{"id":"r` + strconv.FormatInt(round.Add(1), 10) + "-"
				for k := range 1000 {
					l := o.Lines[(n*1000+k)%len(o.Lines)]
					rest, ok := bytes.CutPrefix(l, []byte(`{"id":"`))
					if !ok {
						continue
					}
					dec.Decode(append([]byte(prefix), rest...), &b)
				}
				p := phase.Load()
				t0 := time.Now()
				if err := e.Ingest(loadCtx, &b, sc); err != nil {
					if loadCtx.Err() == nil {
						loadErr.Store(&err)
					}
					return
				}
				d := time.Since(t0)
				ingested.Add(int64(len(b.Events)))
				if p < 2 {
					hmu.Lock()
					hists[p] = append(hists[p], d)
					hmu.Unlock()
				}
			}
		})
	}
	sample := func(d time.Duration) []float64 {
		var rates []float64
		for end := time.Now().Add(d); time.Now().Before(end); {
			n0 := ingested.Load()
			time.Sleep(100 * time.Millisecond)
			rates = append(rates, float64(ingested.Load()-n0)*10)
		}
		return rates
	}
	before := sample(3 * time.Second)

	skew.Store(int64(31 * 24 * time.Hour))
	phase.Store(1)
	first := e.LastOutputID()
	t0 := time.Now()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := sweep(ctx)
		done <- result{n, err}
	}()
	var during []float64
	var res result
sampling:
	for {
		n0 := ingested.Load()
		select {
		case res = <-done:
			break sampling
		case <-time.After(100 * time.Millisecond):
			during = append(during, float64(ingested.Load()-n0)*10)
		}
	}
	rep.SweepTook = time.Since(t0)
	phase.Store(2)
	stopLoad()
	wg.Wait()
	if p := loadErr.Load(); p != nil {
		return rep, *p
	}
	if res.err != nil {
		return rep, fmt.Errorf("sweep: %w", res.err)
	}
	rep.Changed = res.n
	rep.Outputs = e.LastOutputID() - first
	rep.Before = median(before)
	rep.During = median(during)
	if len(during) > 0 {
		rep.MinDuring = slices.Min(during)
	}
	rep.AckP99Befor = p99(hists[0])
	rep.AckP99Durin = p99(hists[1])
	return rep, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*99/100)]
}
