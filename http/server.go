package http

import (
	"context"
	"errors"
	"log/slog"
	"net"
	nethttp "net/http"
	"sync"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/engine"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/source"
)

// Defaults for Options' zero values.
const (
	DefaultMaxBodyBytes = 64 << 20
	DefaultSource       = "api"
)

// Timeouts of the server Serve runs. There is no read or write timeout:
// an ingest body may be large and a schema swap replays the whole archive.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

// Options configure a Server. Zero values mean the documented defaults.
type Options struct {
	Engine *engine.Engine // required
	// Logger receives request failures; default slog.Default().
	Logger *slog.Logger
	// Metrics receives request and ingestion metrics; nil means a private
	// registry. NewServer calls Metrics.Watch(Engine).
	Metrics *Metrics
	// MaxBodyBytes bounds a request body, after gzip decompression.
	// Default 64 MiB; a larger body is answered 413.
	MaxBodyBytes int64
	// Source is the lineage source of events that do not name their own.
	// Default "api".
	Source string
	// Ready reports readiness for /readyz; nil means always ready.
	Ready func() bool
	// Sources, Importer and DeadLetters serve /v1/sources and
	// /v1/deadletters; without all three those routes are absent. Rejected
	// records of POST /v1/events go to DeadLetters when it is set.
	Sources     *source.Registry
	Importer    *source.Importer
	DeadLetters DeadLetterStore
	// Now is the receive clock for events without a time and the reference
	// for the schema's max_future. Default Engine.WallClock.
	Now func() time.Time
	// StreamHeartbeat is how often GET /v1/stream sends a comment to keep
	// an idle connection open; default DefaultStreamHeartbeat.
	StreamHeartbeat time.Duration
	// Webhooks serves /v1/webhooks and /v1/deliveries; without it those
	// routes are absent. The caller starts and closes it.
	Webhooks *Dispatcher
}

// Server serves Twinhub's REST API over an engine. It is safe for
// concurrent use.
type Server struct {
	opts    Options
	e       *engine.Engine
	log     *slog.Logger
	metrics *Metrics
	mux     *nethttp.ServeMux
	handler nethttp.Handler
	routes  []string
	srv     *nethttp.Server
	// closing is closed when Shutdown starts, which ends open streams:
	// nethttp.Server.Shutdown does not wait for them otherwise.
	closing   chan struct{}
	closeOnce sync.Once

	decoders sync.Pool // *ingest.Decoder, dropped when the schema changes
	batches  sync.Pool // *ingest.Batch
	bufs     sync.Pool // *buffer: request bodies and responses
	gzips    sync.Pool // *gzip.Reader
}

// NewServer returns a Server for opts.Engine. It panics if opts.Engine is nil.
func NewServer(opts Options) *Server {
	if opts.Engine == nil {
		panic("http: NewServer without an engine")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Source == "" {
		opts.Source = DefaultSource
	}
	if opts.Now == nil {
		opts.Now = opts.Engine.WallClock
	}
	if opts.StreamHeartbeat <= 0 {
		opts.StreamHeartbeat = DefaultStreamHeartbeat
	}
	opts.Metrics.Watch(opts.Engine)
	if opts.DeadLetters != nil {
		opts.Metrics.WatchDeadLetters(opts.DeadLetters.DeadLetterCounts)
	}
	s := &Server{opts: opts, e: opts.Engine, log: opts.Logger, metrics: opts.Metrics, mux: nethttp.NewServeMux(), closing: make(chan struct{})}

	s.route("POST /v1/events", s.handleIngest)
	s.route("GET /v1/twins", s.handleListTwins)
	s.route("GET /v1/twins/{key}", s.handleTwin)
	s.route("GET /v1/twins/{key}/events", s.handleTimeline)
	s.route("GET /v1/schema", s.handleGetSchema)
	s.route("PUT /v1/schema", s.handlePutSchema)
	s.sourceRoutes()
	s.actionRoutes()
	s.route("GET /v1/stream", s.handleStream)
	s.webhookRoutes()
	s.route("GET /healthz", s.handleHealthz)
	s.route("GET /readyz", s.handleReadyz)
	s.route("GET /openapi.json", s.handleOpenAPI)
	s.routes = append(s.routes, "GET /metrics")
	s.mux.Handle("GET /metrics", opts.Metrics.Handler())

	s.handler = s.instrument(s.mux)
	s.srv = &nethttp.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	s.srv.RegisterOnShutdown(func() { s.closeOnce.Do(func() { close(s.closing) }) })
	return s
}

// route registers a handler that reports failure by returning an error,
// which is answered as a problem.
func (s *Server) route(pattern string, h func(nethttp.ResponseWriter, *nethttp.Request) error) {
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// Handler returns the API's handler: every route, with metrics, panic
// recovery and problem answers for unknown routes and methods.
func (s *Server) Handler() nethttp.Handler { return s.handler }

// Serve accepts connections on ln until Shutdown. It returns nil after
// Shutdown, else the error that stopped it.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); !errors.Is(err, nethttp.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting connections, ends open streams and waits, until
// ctx ends, for the requests in flight to finish.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// instrument counts and times every request by route pattern, recovers
// panics as 500 problems and turns the mux's plain-text 404 and 405 answers
// into problems.
func (s *Server) instrument(next nethttp.Handler) nethttp.Handler {
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		t0 := time.Now()
		sw := &statusWriter{ResponseWriter: w, r: r}
		defer func() {
			if v := recover(); v != nil {
				if v == nethttp.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(r.Context(), "handler panic", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("panic", v))
				if !sw.wrote {
					writeProblem(sw, newProblem(twinhub.EINTERNAL, "internal error; the server log has the details"))
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			s.metrics.requests.WithLabelValues(route, statusText(sw.status())).Inc()
			s.metrics.latency.WithLabelValues(route).Observe(time.Since(t0).Seconds())
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter records the status code. When the mux answers a request no
// pattern matched (r.Pattern is empty) with 404 or 405, it writes a problem
// instead and discards the mux's plain-text body.
type statusWriter struct {
	nethttp.ResponseWriter
	r       *nethttp.Request
	code    int
	wrote   bool
	discard bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	if w.r.Pattern == "" && (code == nethttp.StatusNotFound || code == nethttp.StatusMethodNotAllowed) {
		w.discard = true
		w.Header().Del("X-Content-Type-Options")
		p := newProblem(twinhub.ENOTFOUND, "no route for "+w.r.URL.Path+"; /openapi.json lists the API")
		if code == nethttp.StatusMethodNotAllowed {
			p = newProblem(eMethodNotAllowed, "method "+w.r.Method+" is not allowed on "+w.r.URL.Path+"; allowed: "+w.Header().Get("Allow"))
		}
		w.wrote, w.code = true, p.Status
		writeProblem(w.ResponseWriter, p)
		return
	}
	w.wrote, w.code = true, code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(nethttp.StatusOK)
	}
	if w.discard {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() nethttp.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher for handlers that stream.
func (w *statusWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(nethttp.StatusOK)
	}
	if f, ok := w.ResponseWriter.(nethttp.Flusher); ok && !w.discard {
		f.Flush()
	}
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return nethttp.StatusOK
	}
	return w.code
}

// statusText returns code in decimal without allocating for common codes.
func statusText(code int) string {
	switch code {
	case 200:
		return "200"
	case 400:
		return "400"
	case 404:
		return "404"
	case 405:
		return "405"
	case 413:
		return "413"
	case 500:
		return "500"
	case 503:
		return "503"
	}
	return itoa(code)
}

func itoa(n int) string {
	var b [20]byte
	return string(appendInt(b[:0], int64(n)))
}

// getDecoder returns a pooled decoder for the engine's active schema.
func (s *Server) getDecoder() *ingest.Decoder {
	sc := s.e.Schema()
	for {
		d, _ := s.decoders.Get().(*ingest.Decoder)
		if d == nil {
			d = ingest.NewDecoder(sc, s.opts.Now, s.opts.Source)
			d.Borrow = true // the body outlives the batch: handleIngest puts the batch back first
			return d
		}
		if d.Schema() == sc {
			return d
		}
		// Bound to an earlier schema version: drop it.
	}
}

func (s *Server) putDecoder(d *ingest.Decoder) { s.decoders.Put(d) }

func (s *Server) getBatch() *ingest.Batch {
	if b, ok := s.batches.Get().(*ingest.Batch); ok {
		return b
	}
	return new(ingest.Batch)
}

func (s *Server) putBatch(b *ingest.Batch) {
	b.Reset()
	s.batches.Put(b)
}
