package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/schema"
)

// Targets a Run can drive.
const (
	TargetInProcess = "inprocess"
	TargetHTTP      = "http"
)

// Defaults for Options' zero values.
const (
	DefaultConnections = 4
	DefaultBatch       = 1000
)

// keysPerBatch is how many twin keys of each batch the readers may pick from.
const keysPerBatch = 8

// Latencies are recorded in nanoseconds up to 60s, to 3 significant digits.
// A lowest value of 1ns rather than 1µs keeps reads of a few microseconds
// precise: HDR's resolution below 2048 units is one unit.
const (
	histMin    = 1
	histMax    = int64(60 * time.Second)
	histDigits = 3
)

// Options configure a Run. Zero values mean the documented defaults.
type Options struct {
	// Target is TargetInProcess (default) or TargetHTTP.
	Target string
	// URL is the base URL of the server for TargetHTTP, e.g.
	// "http://127.0.0.1:7070". Empty starts a server in process on a
	// loopback port, with its data in DataDir.
	URL string
	// Connections is the number of concurrent ingesting goroutines (HTTP
	// connections). Default 4.
	Connections int
	// Batch is the number of lines per ingested batch. Default 1000.
	Batch int
	// Rate limits the total ingestion rate in events per second; 0 means
	// unlimited. The limit is a token bucket over whole batches.
	Rate float64
	// Readers is the number of goroutines reading random twins during the
	// load; 0 means none.
	Readers int
	// DataDir holds the store of an in-process engine or server. Empty means
	// a temporary directory, removed when Run returns.
	DataDir string
	// Lines are the events, one NDJSON record each (a trailing newline is
	// allowed). Run does not modify them.
	Lines [][]byte
	// MemProfile, in process only, names a file to write a heap profile to
	// after the load, while the engine still holds every twin.
	MemProfile string
	// Stream, over HTTP, follows the server's /v1/stream during the load and
	// reports how long after a batch's acknowledgement the outputs its
	// events caused (segment changes, actions) arrive.
	Stream bool
	// Schema is the twin model of an in-process engine or server; nil means
	// the built-in default. Ignored with URL.
	Schema *schema.Schema
	// Logger receives the engine's and server's logs. Default: discarded.
	Logger *slog.Logger
}

// Report is what a Run measured.
type Report struct {
	Events       int           // lines sent
	Elapsed      time.Duration // from the first batch sent to the last acknowledged
	EventsPerSec float64

	// Ack latencies of batches: decode + archive (fsync) + apply in process,
	// the request's round trip over HTTP.
	AckP50, AckP99, AckP999 time.Duration

	// Twin reads made during the load and their latencies.
	Reads                      int
	ReadErrors                 int // reads that failed, not counting twins not found
	ReadP50, ReadP99, ReadP999 time.Duration

	Accepted, Duplicates, Rejected int

	// Outputs received on the stream (Options.Stream) and their latency
	// from their event's acknowledgement.
	StreamOutputs                    int
	StreamP50, StreamP99, StreamP999 time.Duration

	// HeapPerTwin is, in process only, the Go heap in use after a GC beyond
	// what was in use before the engine opened, divided by Twins.
	HeapPerTwin float64
	Twins       int64 // twins the engine holds; in process only
	// Outputs is how many outputs (segment changes and actions) the engine
	// logged during the load; in process only.
	Outputs int64
	// CPUPerEvent is the process's CPU time (user and system, every core)
	// during the load divided by the events; in process only. On a shared
	// machine it moves less than events/s when other work takes the cores.
	CPUPerEvent time.Duration
}

// batch is one unit of ingestion, prepared before the clock starts.
type batch struct {
	lines [][]byte // without trailing newlines
	body  []byte   // the lines joined, for HTTP
	keys  []string // a sample of the batch's twin keys, for the readers
}

// counts are per-record outcomes of one batch.
type counts struct{ accepted, duplicates, rejected int }

// target is what Run drives: in process or over HTTP.
type target interface {
	// ingester returns a function that ingests one batch, for use by one
	// goroutine at a time.
	ingester() func(ctx context.Context, b *batch) (counts, error)
	// reader returns a function that reads one twin, for use by one
	// goroutine at a time; found is false when the twin does not exist.
	reader() func(ctx context.Context, key string) (found bool, err error)
}

// Run loads o.Lines into the target described by o and reports what it
// measured. It returns an error if the target cannot be opened or a batch
// cannot be ingested; records rejected by validation are counted, not errors.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.Target == "" {
		o.Target = TargetInProcess
	}
	if o.Connections <= 0 {
		o.Connections = DefaultConnections
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Rate < 0 {
		return Report{}, fmt.Errorf("rate %g: must not be negative", o.Rate)
	}
	if len(o.Lines) == 0 {
		return Report{}, errors.New("no events to send")
	}
	batches := prepare(o.Lines, o.Batch, o.Target == TargetHTTP)
	switch o.Target {
	case TargetInProcess:
		return runInProcess(ctx, o, batches)
	case TargetHTTP:
		return runHTTP(ctx, o, batches)
	}
	return Report{}, fmt.Errorf("target %q: want %q or %q", o.Target, TargetInProcess, TargetHTTP)
}

// prepare splits lines into batches of n non-blank lines, joins their bodies
// when join is set, and samples each batch's twin keys.
func prepare(lines [][]byte, n int, join bool) []batch {
	sc := schema.Default()
	dec := ingest.NewDecoder(sc, time.Now, "bench")
	var scratch ingest.Batch
	var out []batch
	cur := batch{lines: make([][]byte, 0, n)}
	flush := func() {
		if len(cur.lines) == 0 {
			return
		}
		step := max(1, len(cur.lines)/keysPerBatch)
		for i := 0; i < len(cur.lines) && len(cur.keys) < keysPerBatch; i += step {
			scratch.Reset()
			if dec.Decode(cur.lines[i], &scratch) {
				cur.keys = append(cur.keys, strings.Clone(scratch.Events[0].Key)) // out of the arena
			}
		}
		if join {
			size := 0
			for _, l := range cur.lines {
				size += len(l) + 1
			}
			cur.body = make([]byte, 0, size)
			for _, l := range cur.lines {
				cur.body = append(append(cur.body, l...), '\n')
			}
		}
		out = append(out, cur)
		cur = batch{lines: make([][]byte, 0, n)}
	}
	for _, l := range lines {
		l = bytes.TrimRight(l, "\r\n")
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		cur.lines = append(cur.lines, l)
		if len(cur.lines) == n {
			flush()
		}
	}
	flush()
	return out
}

// drive runs the load against t and fills in the measured fields of a Report.
// onAck, when set, is called with each batch's index once it is acknowledged.
func drive(ctx context.Context, o Options, batches []batch, t target, onAck func(i int)) (Report, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		rep     Report
		mu      sync.Mutex // guards rep's counts, ackHist and firstErr
		ackHist = newHist()
		firstEr error
		next    atomic.Int64
		keys    keyPool
		lim     = newLimiter(o.Rate)
	)
	for _, b := range batches {
		rep.Events += len(b.lines)
	}

	readCtx, stopReaders := context.WithCancel(ctx)
	defer stopReaders()
	readHists := make([]*hdrhistogram.Histogram, o.Readers)
	readErrs := make([]int, o.Readers)
	var readers sync.WaitGroup
	for i := range o.Readers {
		readHists[i] = newHist()
		readers.Go(func() {
			read := t.reader()
			rng := rand.New(rand.NewPCG(uint64(i), 0x7477696e))
			for readCtx.Err() == nil {
				key, ok := keys.random(rng)
				if !ok { // nothing acknowledged yet
					time.Sleep(100 * time.Microsecond)
					continue
				}
				t0 := time.Now()
				_, err := read(readCtx, key)
				d := time.Since(t0)
				if readCtx.Err() != nil {
					return // the load is over; this read may have been cut short
				}
				if err != nil {
					readErrs[i]++
					if readErrs[i] == 1 {
						o.Logger.Warn("read failed", "key", key, "err", err)
					}
					continue
				}
				record(readHists[i], d)
			}
		})
	}

	start := time.Now()
	var writers sync.WaitGroup
	for range o.Connections {
		writers.Go(func() {
			ingest := t.ingester()
			hist := newHist()
			var sum counts
			defer func() {
				mu.Lock()
				ackHist.Merge(hist)
				rep.Accepted += sum.accepted
				rep.Duplicates += sum.duplicates
				rep.Rejected += sum.rejected
				mu.Unlock()
			}()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(batches) {
					return
				}
				b := &batches[i]
				if err := lim.wait(ctx, len(b.lines)); err != nil {
					return
				}
				t0 := time.Now()
				c, err := ingest(ctx, b)
				d := time.Since(t0)
				if err != nil {
					mu.Lock()
					if firstEr == nil {
						firstEr = fmt.Errorf("batch %d: %w", i, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				record(hist, d)
				if onAck != nil {
					onAck(i)
				}
				sum.accepted += c.accepted
				sum.duplicates += c.duplicates
				sum.rejected += c.rejected
				keys.add(b.keys)
			}
		})
	}
	writers.Wait()
	rep.Elapsed = time.Since(start)
	stopReaders()
	readers.Wait()

	if firstEr != nil {
		return rep, firstEr
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	rep.EventsPerSec = float64(rep.Events) / rep.Elapsed.Seconds()
	rep.AckP50, rep.AckP99, rep.AckP999 = quantiles(ackHist)
	readHist := newHist()
	for i, h := range readHists {
		readHist.Merge(h)
		rep.ReadErrors += readErrs[i]
	}
	rep.Reads = int(readHist.TotalCount())
	rep.ReadP50, rep.ReadP99, rep.ReadP999 = quantiles(readHist)
	return rep, nil
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

func record(h *hdrhistogram.Histogram, d time.Duration) {
	_ = h.RecordValue(min(max(int64(d), histMin), histMax)) // in range by construction
}

func quantiles(h *hdrhistogram.Histogram) (p50, p99, p999 time.Duration) {
	if h.TotalCount() == 0 {
		return 0, 0, 0
	}
	q := func(p float64) time.Duration { return time.Duration(h.ValueAtQuantile(p)) }
	return q(50), q(99), q(99.9)
}

// keyPool holds the twin keys of acknowledged batches. It is safe for
// concurrent use.
type keyPool struct {
	mu   sync.RWMutex
	keys []string
}

func (p *keyPool) add(keys []string) {
	if len(keys) == 0 {
		return
	}
	p.mu.Lock()
	p.keys = append(p.keys, keys...)
	p.mu.Unlock()
}

func (p *keyPool) random(rng *rand.Rand) (string, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if len(p.keys) == 0 {
		return "", false
	}
	return p.keys[rng.IntN(len(p.keys))], true
}

// limiter spaces batches so that the total rate stays at most rate events
// per second: each batch reserves the next free slot, as long as its size
// takes at that rate. Idle time is not saved up, so the burst is one batch
// per goroutine. A nil limiter does not limit. It is safe for concurrent use.
type limiter struct {
	mu       sync.Mutex
	perEvent float64 // seconds
	next     time.Time
}

func newLimiter(rate float64) *limiter {
	if rate <= 0 {
		return nil
	}
	return &limiter{perEvent: 1 / rate}
}

// wait blocks until n events may be sent or ctx is done.
func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	at := l.next
	l.next = at.Add(time.Duration(float64(n) * l.perEvent * float64(time.Second)))
	l.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// heapInUse returns the Go heap in use after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
