package http_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twinhub/twinhub/engine"
	twhttp "github.com/twinhub/twinhub/http"
	"github.com/twinhub/twinhub/source"
	"github.com/twinhub/twinhub/store/pebble"
)

var testNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// testServer is a real server on 127.0.0.1:0 over a real engine on Pebble,
// with sources and dead letters kept in the same store.
type testServer struct {
	tb     testing.TB
	url    string
	srv    *twhttp.Server
	e      *engine.Engine
	db     *pebble.DB
	client *nethttp.Client
	// lookupDir is where the lookup files of mappings put over HTTP are
	// read from.
	lookupDir string
}

// newTestServer starts a server; opt, if not nil, adjusts its options.
func newTestServer(tb testing.TB, opt func(*twhttp.Options)) *testServer {
	tb.Helper()
	db, err := pebble.Open(tb.TempDir(), pebble.Options{CacheSize: 16 << 20, MemTableSize: 8 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	m := twhttp.NewMetrics(prometheus.NewRegistry())
	e, err := engine.Open(engine.Options{
		Store:   db,
		Now:     func() time.Time { return testNow },
		OnApply: m.ObserveApply,
		OnSync:  m.ObserveSync,
		Shards:  4,
	})
	if err != nil {
		db.Close()
		tb.Fatal(err)
	}
	lookupDir := tb.TempDir()
	reg, err := source.NewRegistry(db, e.Schema, lookupDir)
	if err != nil {
		e.Close()
		db.Close()
		tb.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := twhttp.Options{
		Engine:      e,
		Metrics:     m,
		Logger:      logger,
		Sources:     reg,
		Importer:    &source.Importer{Sink: e, DeadLetters: db, Now: e.WallClock, OnBatch: m.ObserveSource},
		DeadLetters: db,
		// Short waits, so that retries and dead deliveries happen within a
		// test.
		Webhooks: twhttp.NewDispatcher(twhttp.DispatcherOptions{Engine: e, Store: db, Logger: logger, Metrics: m,
			Timeout: 5 * time.Second, BackoffBase: 5 * time.Millisecond, BackoffMax: 40 * time.Millisecond, MaxAttempts: 4}),
	}
	if opt != nil {
		opt(&opts)
	}
	if opts.Webhooks != nil {
		if err := opts.Webhooks.Start(); err != nil {
			tb.Fatal(err)
		}
	}
	srv := twhttp.NewServer(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ts := &testServer{tb: tb, url: "http://" + ln.Addr().String(), srv: srv, e: e, db: db, client: &nethttp.Client{Timeout: time.Minute}, lookupDir: lookupDir}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			tb.Errorf("Serve returned %v after Shutdown, want nil", err)
		}
		if opts.Webhooks != nil {
			opts.Webhooks.Close()
		}
		if err := e.Close(); err != nil {
			tb.Errorf("close engine: %v", err)
		}
		if err := db.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return ts
}

// tbWriter sends the server's log to the test log.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// response is an answer read in full.
type response struct {
	status int
	header nethttp.Header
	body   []byte
}

func (r *response) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// do sends a request; headers are name, value pairs.
func (ts *testServer) do(method, path string, body []byte, headers ...string) *response {
	ts.tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := nethttp.NewRequest(method, ts.url+path, rd)
	if err != nil {
		ts.tb.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		ts.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.tb.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (ts *testServer) get(path string) *response { return ts.do("GET", path, nil) }

// getJSON GETs path, expects 200 and decodes the body into v.
func (ts *testServer) getJSON(path string, v any) {
	ts.tb.Helper()
	r := ts.get(path)
	if r.status != nethttp.StatusOK {
		ts.tb.Fatalf("GET %s = %v, want 200", path, r)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		ts.tb.Fatalf("GET %s: Content-Type %q, want application/json", path, ct)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		ts.tb.Fatalf("GET %s: %v in %s", path, err, r.body)
	}
}

// postNDJSON posts lines as an NDJSON batch and decodes the batch answer.
func (ts *testServer) postNDJSON(path string, lines ...string) batchResult {
	ts.tb.Helper()
	r := ts.do("POST", path, []byte(strings.Join(lines, "\n")+"\n"), "Content-Type", "application/x-ndjson")
	return decodeBatch(ts.tb, r)
}

type recordResult struct {
	Index  int    `json:"index"`
	ID     string `json:"id"`
	Status string `json:"status"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

type batchResult struct {
	Accepted   int            `json:"accepted"`
	Duplicates int            `json:"duplicates"`
	Rejected   int            `json:"rejected"`
	Results    []recordResult `json:"results"`
}

func decodeBatch(tb testing.TB, r *response) batchResult {
	tb.Helper()
	if r.status != nethttp.StatusOK {
		tb.Fatalf("batch answered %v, want 200", r)
	}
	var br batchResult
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&br); err != nil {
		tb.Fatalf("batch answer %s: %v", r.body, err)
	}
	if br.Results == nil {
		tb.Fatalf("batch answer %s has no results array", r.body)
	}
	return br
}

type problem struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Status     int    `json:"status"`
	Detail     string `json:"detail"`
	Code       string `json:"code"`
	Field      string `json:"field"`
	Reason     string `json:"reason"`
	Index      *int   `json:"index"`
	ID         string `json:"id"`
	Parameter  string `json:"parameter"`
	LimitBytes int64  `json:"limit_bytes"`
	Problems   []struct {
		Line    int    `json:"line"`
		Column  int    `json:"column"`
		Path    string `json:"path"`
		Message string `json:"message"`
		Hint    string `json:"hint"`
	} `json:"problems"`
}

// wantProblem checks that r is an RFC 9457 problem with status and code.
func wantProblem(tb testing.TB, r *response, status int, code string) problem {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("status %v, want %d", r, status)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		tb.Fatalf("Content-Type %q, want application/problem+json (body %s)", ct, r.body)
	}
	var p problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		tb.Fatalf("problem %s: %v", r.body, err)
	}
	if p.Status != status || p.Code != code || p.Type != "https://twinhub.dev/problems/"+code || p.Title != nethttp.StatusText(status) || p.Detail == "" {
		tb.Fatalf("problem %s, want status %d, code %q, its type URI, title %q and a detail", r.body, status, code, nethttp.StatusText(status))
	}
	return p
}

func gzipBytes(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func purchase(id, key string, at time.Time, amount float64) string {
	return fmt.Sprintf(`{"id":%q,"type":"purchase","customer_id":%q,"time":%q,"amount":%v,"product_id":"p-1","category":"shoes"}`,
		id, key, at.Format(time.RFC3339Nano), amount)
}

type twinView struct {
	Key           string         `json:"key"`
	Revision      uint64         `json:"revision"`
	SchemaVersion int            `json:"schema_version"`
	AsOf          string         `json:"as_of"`
	Aggregates    map[string]any `json:"aggregates"`
	Attributes    map[string]struct {
		Value    any    `json:"value"`
		Source   string `json:"source"`
		EventID  string `json:"event_id"`
		Time     string `json:"time"`
		Position *int64 `json:"position"`
	} `json:"attributes"`
}

func TestHealthAndReadiness(t *testing.T) {
	var ready atomic.Bool
	ts := newTestServer(t, func(o *twhttp.Options) { o.Ready = ready.Load })
	if r := ts.get("/healthz"); r.status != 200 || string(r.body) != "ok\n" {
		t.Errorf("GET /healthz = %v, want 200 ok", r)
	}
	p := wantProblem(t, ts.get("/readyz"), 503, "unavailable")
	if p.Detail != "not ready" {
		t.Errorf("readyz problem detail %q", p.Detail)
	}
	ready.Store(true)
	if r := ts.get("/readyz"); r.status != 200 {
		t.Errorf("GET /readyz when ready = %v, want 200", r)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	ts := newTestServer(t, nil)
	wantProblem(t, ts.get("/v2/nothing"), 404, "not_found")
	wantProblem(t, ts.get("/"), 404, "not_found")
	r := ts.do("DELETE", "/v1/events", nil)
	p := wantProblem(t, r, 405, "method_not_allowed")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "POST") {
		t.Errorf("405 Allow header %q, want POST", allow)
	}
	if !strings.Contains(p.Detail, "POST") {
		t.Errorf("405 detail %q does not name the allowed method", p.Detail)
	}
	wantProblem(t, ts.do("POST", "/v1/twins/c-1", []byte("{}")), 405, "method_not_allowed")
	wantProblem(t, ts.do("GET", "/v1/events", nil), 405, "method_not_allowed")
}
