package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/twinhub/twinhub/bench/workload"
	"github.com/twinhub/twinhub/engine"
	"github.com/twinhub/twinhub/ingest"
)

// genBatches returns the standard workload as NDJSON batches of size n.
func genBatches(tb testing.TB, events, customers, n int) [][]byte {
	tb.Helper()
	g := workload.New(workload.Options{Events: events, Customers: customers, Now: time.Now().UTC()})
	var out [][]byte
	var cur []byte
	k := 0
	for {
		var ok bool
		cur, ok = g.Next(cur)
		if ok {
			k++
		}
		if (k == n || !ok) && len(cur) > 0 {
			out = append(out, cur)
			cur, k = nil, 0
		}
		if !ok {
			return out
		}
	}
}

// BenchmarkIngest measures in-process ingestion with the archive on: decode
// in parallel, then archive (fsync group commit) and apply. One op is one event.
func BenchmarkIngest(b *testing.B) {
	for _, size := range []struct{ events, customers int }{{1_000_000, 100_000}} {
		b.Run(fmt.Sprintf("events=%d/twins=%d", size.events, size.customers), func(b *testing.B) {
			batches := genBatches(b, size.events, size.customers, 1000)
			b.ReportAllocs()
			b.ResetTimer()
			var total int
			var elapsed time.Duration
			for range b.N {
				b.StopTimer()
				h := openHarness(b, b.TempDir(), engine.Options{Now: time.Now})
				b.StartTimer()
				t0 := time.Now()
				ingestAll(b, h.e, batches, 2*runtime.GOMAXPROCS(0))
				elapsed += time.Since(t0)
				total += size.events
				b.StopTimer()
				h.close()
				b.StartTimer()
			}
			b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(total), "ns/event")
		})
	}
}

func ingestAll(tb testing.TB, e *engine.Engine, batches [][]byte, workers int) {
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := e.Schema()
			dec := ingest.NewDecoder(sc, time.Now, "bench")
			var b ingest.Batch
			for {
				next.Lock()
				if i >= len(batches) {
					next.Unlock()
					return
				}
				body := batches[i]
				i++
				next.Unlock()
				b.Reset()
				dec.DecodeNDJSON(bytes.TrimSpace(body), &b)
				if err := e.Ingest(context.Background(), &b, sc); err != nil {
					tb.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkApply measures the engine alone: batches are decoded before the
// timer starts, so one op is one event deduped, archived (fsync group
// commit included) and applied.
func BenchmarkApply(b *testing.B) {
	const events, customers = 1_000_000, 100_000
	bodies := genBatches(b, events, customers, 1000)
	b.ReportAllocs()
	var elapsed time.Duration
	for range b.N {
		b.StopTimer()
		h := openHarness(b, b.TempDir(), engine.Options{Now: time.Now})
		sc := h.e.Schema()
		dec := ingest.NewDecoder(sc, time.Now, "bench")
		batches := make([]*ingest.Batch, len(bodies))
		for i, body := range bodies {
			batches[i] = new(ingest.Batch)
			dec.DecodeNDJSON(bytes.TrimSpace(body), batches[i])
		}
		b.StartTimer()
		t0 := time.Now()
		var wg sync.WaitGroup
		next := make(chan *ingest.Batch)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for bt := range next {
					if err := h.e.Ingest(context.Background(), bt, sc); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for _, bt := range batches {
			next <- bt
		}
		close(next)
		wg.Wait()
		elapsed += time.Since(t0)
		b.StopTimer()
		h.close()
		b.StartTimer()
	}
	b.ReportMetric(float64(events*b.N)/elapsed.Seconds(), "events/s")
}
