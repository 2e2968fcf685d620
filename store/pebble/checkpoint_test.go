package pebble

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/twinhub/twinhub/engine"
)

// A checkpoint taken while the store is open holds the archive and the
// database as they were, and nothing written after it.
func TestCheckpointWhileOpen(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	var recs []engine.Record
	for i := range 300 {
		recs = append(recs, engine.Record{Seq: uint64(i + 1), Key: fmt.Sprintf("c-%d", i%7), Raw: []byte(fmt.Sprintf(`{"id":"e-%d"}`, i+1))})
	}
	c, err := db.Append(recs)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := db.SetMeta("before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "copy")
	if err := db.Checkpoint(dir); err != nil {
		t.Fatal(err)
	}
	if err := db.SetMeta("after", []byte("1")); err != nil {
		t.Fatal(err)
	}

	cp := openTest(t, dir)
	defer cp.Close()
	if last, err := cp.LastSeq(); err != nil || last != 300 {
		t.Fatalf("LastSeq = %d, %v; want 300", last, err)
	}
	n := 0
	if err := cp.Replay(0, func(engine.Record) error { n++; return nil }); err != nil || n != 300 {
		t.Fatalf("replayed %d, %v; want 300", n, err)
	}
	if _, ok, _ := cp.Meta("before"); !ok {
		t.Error("a write before the checkpoint is missing")
	}
	if _, ok, _ := cp.Meta("after"); ok {
		t.Error("a write after the checkpoint is in it")
	}
}
