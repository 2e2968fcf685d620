package engine_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/engine"
)

// TestPowerLossBeforeArchiveSync: twin state is saved without waiting for
// the archive's fsync, so after a power loss the store may hold twins,
// ids and timelines reflecting events whose archive bytes never reached
// the disk (and which were never acknowledged). Simulated here by cutting
// the archive's last chunk after a clean run: on reopening, twins must
// count only what the archive holds, a retry of a lost event must be
// accepted again, and timelines must not point at lost events.
func TestPowerLossBeforeArchiveSync(t *testing.T) {
	dir := t.TempDir()
	opts := engine.Options{Shards: 1}
	h := openHarness(t, dir, opts)
	// Lineage must survive the rebuild: the profile's source is the
	// ingestion channel's ("test"), not a field of the event.
	h.ingest(`{"id":"p-1","type":"profile","customer_id":"c-0","time":"2026-11-01T00:00:00Z","name":"Ada"}`)
	for batch := range 3 {
		var lines []string
		for i := range 50 {
			n := batch*50 + i + 1
			lines = append(lines, purchase(fmt.Sprintf("e-%d", n), fmt.Sprintf("c-%d", n%5), testNow.Add(-time.Duration(n)*time.Minute), 1))
		}
		h.ingest(lines...)
	}
	h.close() // everything saved: marks and snapshots reflect all 150 events

	// Lose the last chunk (events e-101..e-150) as a power loss before its
	// fsync would. A chunk on disk is length(4) crc(4) payload.
	seg := filepath.Join(dir, "archive", "00000001.seg")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	var starts []int
	for off := 0; off < len(b); off += 8 + int(binary.BigEndian.Uint32(b[off:])) {
		starts = append(starts, off)
	}
	if len(starts) != 4 {
		t.Fatalf("archive has %d chunks, want 4 (the profile, then one per batch)", len(starts))
	}
	if err := os.Truncate(seg, int64(starts[3])); err != nil {
		t.Fatal(err)
	}

	h = openHarness(t, dir, opts)
	defer h.close()
	for k := range 5 {
		key := fmt.Sprintf("c-%d", k)
		if got := h.twin(key).Aggregates["purchases_total"]; got != int64(20) {
			t.Errorf("%s purchases_total = %v, want 20 (only the 100 events the archive kept)", key, got)
		}
		want := 20
		if k == 0 {
			want++ // the profile
		}
		recs, err := h.e.Timeline(key, time.Time{}, testNow.Add(time.Hour), 1000)
		if err != nil || len(recs) != want {
			t.Errorf("%s timeline: %d events, %v; want %d", key, len(recs), err, want)
		}
	}
	if a := h.twin("c-0").Attributes["name"]; a.Value != "Ada" || a.Source != "test" || a.EventID != "p-1" {
		t.Errorf("after the rebuild name = %+v, want Ada from p-1 via test (lineage as ingested)", a)
	}
	res := h.ingest(
		purchase("e-120", "c-0", testNow.Add(-120*time.Minute), 1), // lost: must count again
		purchase("e-10", "c-0", testNow.Add(-10*time.Minute), 1),   // kept: a duplicate
	)
	if res[0].Status != twinhub.Accepted || res[1].Status != twinhub.Duplicate {
		t.Errorf("after the rebuild: lost event %v, kept event %v; want accepted, duplicate", res[0].Status, res[1].Status)
	}
	if got := h.twin("c-0").Aggregates["purchases_total"]; got != int64(21) {
		t.Errorf("c-0 purchases_total after the retry = %v, want 21", got)
	}
}
