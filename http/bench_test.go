package http_test

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twinhub/twinhub/bench/workload"
	"github.com/twinhub/twinhub/engine"
	twhttp "github.com/twinhub/twinhub/http"
	"github.com/twinhub/twinhub/store/pebble"
)

// BenchmarkIngestHandler posts NDJSON batches of 1000 generated retail
// events through the handler, without a network, and reports events/s.
func BenchmarkIngestHandler(b *testing.B) {
	const batch = 1000
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	db, err := pebble.Open(b.TempDir(), pebble.Options{})
	if err != nil {
		b.Fatal(err)
	}
	e, err := engine.Open(engine.Options{Store: db, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		e.Close()
		db.Close()
	})
	srv := twhttp.NewServer(twhttp.Options{Engine: e, Logger: slog.New(slog.DiscardHandler)})
	h := srv.Handler()
	gen := workload.New(workload.Options{Events: 1 << 62, Customers: 100_000, Now: now})
	body := make([]byte, 0, 256*batch)
	rd := bytes.NewReader(nil)

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		body = body[:0]
		for range batch {
			body, _ = gen.Next(body)
		}
		rd.Reset(body)
		req := httptest.NewRequest("POST", "/v1/events", rd)
		req.Header.Set("Content-Type", "application/x-ndjson")
		w := httptest.NewRecorder()
		b.SetBytes(int64(len(body)))
		b.StartTimer()
		h.ServeHTTP(w, req)
		if w.Code != 200 || !bytes.HasPrefix(w.Body.Bytes(), []byte(`{"accepted":1000,`)) {
			b.Fatalf("answer %d %s", w.Code, w.Body.Bytes())
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}
