package http

import (
	nethttp "net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twinhub/twinhub/engine"
)

// Metrics are Twinhub's Prometheus collectors: ingestion counters, engine
// timings and gauges, and per-route HTTP request counts and latencies.
// Its methods are safe for concurrent use.
type Metrics struct {
	reg      prometheus.Registerer
	gatherer prometheus.Gatherer

	accepted   prometheus.Counter
	duplicates prometheus.Counter
	rejected   prometheus.Counter

	apply       prometheus.Histogram
	fsync       prometheus.Histogram
	batchEvents prometheus.Histogram

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	records  *prometheus.CounterVec

	streamClients prometheus.Gauge
	deliveries    *prometheus.CounterVec
	actions       *prometheus.CounterVec

	watchOnce sync.Once
	deadOnce  sync.Once
}

// NewMetrics creates Twinhub's collectors and registers them with reg. A nil
// reg means a private registry that also carries the Go runtime and process
// collectors. Metrics.Handler serves reg when it is also a
// prometheus.Gatherer (a *prometheus.Registry is), else the default gatherer.
// It panics if a collector is already registered with reg, like MustRegister.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	var gatherer prometheus.Gatherer = prometheus.DefaultGatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg, gatherer = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		gatherer = g
	}
	// Engine timings start at 50µs: an apply of a small batch takes tens of
	// microseconds, an fsync on a slow disk tens of milliseconds.
	timing := prometheus.ExponentialBuckets(50e-6, 2, 18) // 50µs .. 6.5s
	m := &Metrics{
		reg:      reg,
		gatherer: gatherer,
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twinhub_events_accepted_total",
			Help: "Events accepted through the HTTP API: validated, archived durably and applied.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twinhub_events_duplicate_total",
			Help: "Events received through the HTTP API whose id had already been accepted.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twinhub_events_rejected_total",
			Help: "Events received through the HTTP API that failed validation.",
		}),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "twinhub_apply_seconds",
			Help:    "Time a shard takes to archive and apply one batch of events.",
			Buckets: timing,
		}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "twinhub_fsync_seconds",
			Help:    "Time a shard waits for the archive to be durable after a batch.",
			Buckets: timing,
		}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "twinhub_apply_batch_events",
			Help:    "Events per shard batch applied.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15), // 1 .. 16384
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twinhub_http_requests_total",
			Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "twinhub_http_request_seconds",
			Help:    "HTTP request latency, by route pattern.",
			Buckets: prometheus.ExponentialBuckets(100e-6, 2, 18), // 100µs .. 13s
		}, []string{"route"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twinhub_source_records_total",
			Help: "Records of named sources, by source and outcome: read, skipped (mapped to no event), rejected (kept as dead letters).",
		}, []string{"source", "outcome"}),
		streamClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "twinhub_stream_clients",
			Help: "Clients connected to the live stream (GET /v1/stream).",
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twinhub_webhook_deliveries_total",
			Help: "Webhook delivery attempts, by webhook and outcome: delivered, failed (to be retried) or dead (no attempts left).",
		}, []string{"webhook", "outcome"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twinhub_actions_total",
			Help: "Actions logged since the process started, by kind and status (fired or pending when decided by a rule; approved, rejected or expired when changed later), as the webhook dispatcher reads them.",
		}, []string{"kind", "status"}),
	}
	reg.MustRegister(m.accepted, m.duplicates, m.rejected, m.apply, m.fsync, m.batchEvents, m.requests, m.latency, m.records,
		m.streamClients, m.deliveries, m.actions)
	return m
}

// Watch registers gauges that read e.Stats at every scrape: hot and cold
// twins, bytes held by hot twins and the archive's last sequence number.
// Only the first call has an effect; NewServer calls it with its engine.
func (m *Metrics) Watch(e *engine.Engine) {
	m.watchOnce.Do(func() {
		gauge := func(name, help string, f func(engine.Stats) float64) prometheus.Collector {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(e.Stats()) })
		}
		m.reg.MustRegister(
			gauge("twinhub_twins_hot", "Twins held in memory.", func(s engine.Stats) float64 { return float64(s.HotTwins) }),
			gauge("twinhub_twins_cold", "Twins held only in the store.", func(s engine.Stats) float64 { return float64(s.Twins - s.HotTwins) }),
			gauge("twinhub_twins_hot_bytes", "Approximate heap held by hot twins, in bytes.", func(s engine.Stats) float64 { return float64(s.HotBytes) }),
			gauge("twinhub_archive_last_seq", "Sequence number of the newest archived event.", func(s engine.Stats) float64 { return float64(s.LastSeq) }),
		)
	})
}

// ObserveSource counts the records of one imported batch; pass it as
// source.Importer.OnBatch.
func (m *Metrics) ObserveSource(source string, records, skipped, rejected int) {
	m.records.WithLabelValues(source, "read").Add(float64(records))
	if skipped > 0 {
		m.records.WithLabelValues(source, "skipped").Add(float64(skipped))
	}
	if rejected > 0 {
		m.records.WithLabelValues(source, "rejected").Add(float64(rejected))
	}
}

// WatchDeadLetters registers a gauge of the dead letters each source holds,
// read from counts at every scrape. Only the first call has an effect.
func (m *Metrics) WatchDeadLetters(counts func() map[string]int64) {
	m.deadOnce.Do(func() { m.reg.MustRegister(deadLetterGauge{counts: counts}) })
}

var deadLetterDesc = prometheus.NewDesc("twinhub_deadletters", "Rejected records kept as dead letters, by source.", []string{"source"}, nil)

type deadLetterGauge struct{ counts func() map[string]int64 }

func (g deadLetterGauge) Describe(ch chan<- *prometheus.Desc) { ch <- deadLetterDesc }

func (g deadLetterGauge) Collect(ch chan<- prometheus.Metric) {
	for src, n := range g.counts() {
		ch <- prometheus.MustNewConstMetric(deadLetterDesc, prometheus.GaugeValue, float64(n), src)
	}
}

// ObserveApply records one shard batch; pass it as engine.Options.OnApply.
func (m *Metrics) ObserveApply(events int, d time.Duration) {
	m.apply.Observe(d.Seconds())
	m.batchEvents.Observe(float64(events))
}

// ObserveSync records one fsync wait; pass it as engine.Options.OnSync.
func (m *Metrics) ObserveSync(d time.Duration) { m.fsync.Observe(d.Seconds()) }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() nethttp.Handler {
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{})
}

// observeIngest counts the outcome of one ingested batch.
func (m *Metrics) observeIngest(accepted, duplicates, rejected int) {
	if accepted > 0 {
		m.accepted.Add(float64(accepted))
	}
	if duplicates > 0 {
		m.duplicates.Add(float64(duplicates))
	}
	if rejected > 0 {
		m.rejected.Add(float64(rejected))
	}
}
