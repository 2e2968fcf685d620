// Command twinhub is Twinhub's single binary: the server (`twinhub serve`)
// and the command-line tools that talk to it or work offline (ingest, get,
// schema, bench, version). `twinhub help` lists them.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"
	_ "time/tzdata" // mappings name zones (time_zone: America/Sao_Paulo); a server may have no zoneinfo

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/twinhub/twinhub/engine"
	twinhttp "github.com/twinhub/twinhub/http"
	"github.com/twinhub/twinhub/schema"
	"github.com/twinhub/twinhub/source"
	"github.com/twinhub/twinhub/store/pebble"
)

func main() {
	// Twins are many small pointer-rich objects: marking them is most of the
	// collector's work, so collect half as often as the default. GOGC still
	// overrides this.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	// On small machines every P can be busy with background work (Pebble
	// compaction, a timeline run, decoding a large batch) that the Go
	// scheduler preempts only after 10ms; a twin read then waits for a P.
	// More Ps than cores let the kernel time-slice instead: on 2 cores this
	// took read p99 under load from 1.8ms to 1.1ms. GOMAXPROCS overrides it.
	if os.Getenv("GOMAXPROCS") == "" && runtime.NumCPU() < 4 {
		runtime.GOMAXPROCS(4)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], env{Getenv: os.Getenv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}

// Defaults of Main's zero values, which are also the serve flags' defaults.
const (
	DefaultDataDir       = "./twinhub-data"
	DefaultListen        = "127.0.0.1:7070" // loopback: there is no authentication yet
	DefaultShutdownGrace = 30 * time.Second
)

// Main is a running Twinhub server: the embedded store, the engine and the
// HTTP API, wired together. Tests start one on port 0.
type Main struct {
	DataDir      string // store directory, created if missing; default DefaultDataDir
	Listen       string // TCP address; default DefaultListen
	MemoryBudget int64  // heap for hot twins; default engine.DefaultMemoryBudget
	Partitions   int    // key partitions of a new store; default engine.DefaultPartitions
	// ReplayLag bounds the archived events a restart replays, per shard;
	// default engine.DefaultReplayLag.
	ReplayLag uint64
	// Schema is the YAML schema a new store starts with; default the
	// built-in retail schema. A store that holds a schema keeps its own.
	Schema []byte
	// EventClock makes windows relative to the newest event time instead of
	// the wall clock: for replaying or exploring historical data.
	EventClock bool
	// SourcesDir, when set, holds source mappings (*.yaml) to load at start.
	SourcesDir string
	// LookupDir is where the lookup files of mappings registered through
	// the API are found; default SourcesDir, else the working directory.
	LookupDir string
	Logger    *slog.Logger
	// Registry receives the metrics served at /metrics; nil means a new
	// registry with the Go runtime and process collectors.
	Registry *prometheus.Registry
	// ShutdownGrace bounds how long Close waits for requests in flight;
	// default DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// Webhooks tunes the webhook dispatcher (timeouts, backoff, attempts);
	// Open sets its Engine, Store, Logger and Metrics.
	Webhooks twinhttp.DispatcherOptions

	// Addr is the address the server listens on, set by Open.
	Addr net.Addr

	db         *pebble.DB
	engine     *engine.Engine
	sources    *source.Registry
	importer   *source.Importer
	dispatcher *twinhttp.Dispatcher
	server     *twinhttp.Server
	stopped    chan struct{} // closed when Serve returns
	serveErr   error         // Serve's result, set before stopped closes
	ready      atomic.Bool
}

// Open opens the store and the engine, which recovers from the archive
// before Open goes on, and then starts the HTTP server; m.Addr is set once
// it listens. If Open fails, what it opened is closed again.
func (m *Main) Open(ctx context.Context) (err error) {
	if m.DataDir == "" {
		m.DataDir = DefaultDataDir
	}
	if m.Listen == "" {
		m.Listen = DefaultListen
	}
	if m.Logger == nil {
		m.Logger = slog.New(slog.DiscardHandler)
	}
	if m.ShutdownGrace <= 0 {
		m.ShutdownGrace = DefaultShutdownGrace
	}
	if m.Registry == nil {
		m.Registry = prometheus.NewRegistry()
		m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, m.Close())
		}
	}()

	if err := os.MkdirAll(m.DataDir, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if m.db, err = pebble.Open(m.DataDir, pebble.Options{}); err != nil {
		return fmt.Errorf("open store %s: %w", m.DataDir, err)
	}
	metrics := twinhttp.NewMetrics(m.Registry)
	t0 := time.Now()
	var initial *schema.Schema
	if m.Schema != nil {
		if initial, err = schema.Parse(m.Schema); err != nil {
			return fmt.Errorf("schema: %w", err)
		}
	}
	m.engine, err = engine.Open(engine.Options{
		Store:        m.db,
		Schema:       initial,
		EventClock:   m.EventClock,
		MemoryBudget: m.MemoryBudget,
		Partitions:   m.Partitions,
		ReplayLag:    m.ReplayLag,
		Logger:       m.Logger,
		OnApply:      metrics.ObserveApply,
		OnSync:       metrics.ObserveSync,
	})
	if err != nil {
		return fmt.Errorf("open engine: %w", err)
	}
	st := m.engine.Stats()
	m.Logger.Info("engine open", "data", m.DataDir, "schema_version", m.engine.Schema().Version,
		"partitions", m.engine.Partitions(), "replayed", st.Replayed, "last_seq", st.LastSeq, "took", time.Since(t0).Round(time.Millisecond))

	if m.sources, err = source.NewRegistry(m.db, m.engine.Schema, cmp.Or(m.LookupDir, m.SourcesDir)); err != nil {
		return err
	}
	if m.SourcesDir != "" {
		if err := m.sources.LoadDir(m.SourcesDir); err != nil {
			return fmt.Errorf("sources: %w", err)
		}
	}
	m.importer = &source.Importer{Sink: m.engine, DeadLetters: m.db, Now: m.engine.WallClock, OnBatch: metrics.ObserveSource}

	wo := m.Webhooks
	wo.Engine, wo.Store, wo.Logger, wo.Metrics = m.engine, m.db, m.Logger, metrics
	webhooks := twinhttp.NewDispatcher(wo)
	if err := webhooks.Start(); err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	m.dispatcher = webhooks

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", m.Listen)
	if err != nil {
		return err
	}
	m.Addr = ln.Addr()
	m.server = twinhttp.NewServer(twinhttp.Options{
		Engine:  m.engine,
		Logger:  m.Logger,
		Metrics: metrics,
		Ready:   m.ready.Load,

		Sources:     m.sources,
		Importer:    m.importer,
		DeadLetters: m.db,
		Webhooks:    m.dispatcher,
	})
	m.stopped = make(chan struct{})
	go func() {
		m.serveErr = m.server.Serve(ln)
		close(m.stopped)
	}()
	m.ready.Store(true)
	m.Logger.Info("listening", "addr", m.Addr.String())
	return nil
}

// Done returns a channel that is closed when the HTTP server stops, by Close
// or by an error that Err then returns. It is nil before Open.
func (m *Main) Done() <-chan struct{} { return m.stopped }

// Err returns the error that stopped the HTTP server, once Done is closed.
func (m *Main) Err() error {
	select {
	case <-m.stopped:
		return m.serveErr
	default:
		return nil
	}
}

// Close shuts down gracefully: /readyz turns unready, the server stops
// accepting, ends live streams and finishes the requests in flight (for up
// to ShutdownGrace), the webhook dispatcher stops (deliveries in flight stay
// pending, to be resumed at the next start), then the engine persists every
// twin and the store closes. It is safe to call on a Main that is partly
// open.
func (m *Main) Close() error {
	m.ready.Store(false)
	var errs []error
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.ShutdownGrace)
		if err := m.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop http server: %w", err))
		}
		cancel()
		<-m.stopped // Shutdown closed the listener, so Serve has returned or soon will
		if m.serveErr != nil {
			errs = append(errs, fmt.Errorf("http server: %w", m.serveErr))
		}
		m.server = nil
	}
	if m.dispatcher != nil {
		if err := m.dispatcher.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop webhooks: %w", err))
		}
		m.dispatcher = nil
	}
	if m.engine != nil {
		if err := m.engine.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close engine: %w", err))
		}
		m.engine = nil
	}
	if m.db != nil {
		if err := m.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
		m.db = nil
	}
	return errors.Join(errs...)
}
