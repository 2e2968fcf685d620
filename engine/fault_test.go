package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/bench/workload"
	"github.com/twinhub/twinhub/engine"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/schema"
	"github.com/twinhub/twinhub/store/pebble"
)

// faultyStore is the real store with writes of snapshots and timeline runs
// failing on demand, as a full disk would make them.
type faultyStore struct {
	*pebble.DB
	fail atomic.Bool
}

var errInjected = errors.New("injected write failure")

func (f *faultyStore) SaveTwins(s []engine.Snapshot, m []engine.PartitionMark, ids []engine.SeenIDs, sync bool) error {
	if f.fail.Load() {
		return errInjected
	}
	return f.DB.SaveTwins(s, m, ids, sync)
}

func (f *faultyStore) WriteTimeline(tl *engine.Timeline) error {
	if f.fail.Load() {
		return errInjected
	}
	return f.DB.WriteTimeline(tl)
}

// TestFailedWritesLoseNothing makes snapshot saves (persistence and
// eviction) and timeline runs fail for a while, then lets them succeed:
// every twin and every timeline must still be complete, also after a
// restart.
func TestFailedWritesLoseNothing(t *testing.T) {
	dir := t.TempDir()
	open := func() (*pebble.DB, *faultyStore, *engine.Engine) {
		db, err := pebble.Open(dir, pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		fs := &faultyStore{DB: db}
		e, err := engine.Open(engine.Options{Store: fs, Now: func() time.Time { return testNow }, MemoryBudget: 64 << 10,
			ReplayLag: 200, TimelineRun: 100, MaxBatch: 256, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return db, fs, e
	}
	db, fs, e := open()
	ref := workload.NewReference()
	gen := workload.New(workload.Options{Events: 6000, Customers: 300, Seed: 5, Now: testNow})
	sc := e.Schema()
	dec := ingest.NewDecoder(sc, func() time.Time { return testNow }, "test")
	var b ingest.Batch
	var line []byte
	for n := 0; ; n++ {
		var ok bool
		line, ok = gen.Next(line[:0])
		if !ok {
			break
		}
		ref.Add(line)
		dec.Decode(bytes.TrimSpace(line), &b)
		if len(b.Results) == 200 {
			fs.fail.Store(n > 1000 && n < 4000) // fail in the middle of the load
			if err := e.Ingest(context.Background(), &b, sc); err != nil {
				t.Fatalf("ingest must not fail when only snapshots cannot be written: %v", err)
			}
			b.Reset()
		}
	}
	fs.fail.Store(false)
	check := func(when string) {
		t.Helper()
		compareAll(t, e, ref)
		for _, key := range ref.Customers() {
			want := ref.Aggregates(key, testNow)["events_total"].(int64)
			recs, err := e.Timeline(key, time.Time{}, testNow.Add(time.Hour), 100000)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(recs)) != want {
				t.Errorf("%s: timeline of %s has %d events, want %d", when, key, len(recs), want)
			}
		}
	}
	check("live")
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, _, e = open()
	check("after restart")
	e.Close()
	db.Close()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// outputFaults is the real store with output log writes failing on demand.
type outputFaults struct {
	*pebble.DB
	fail   atomic.Bool
	failed atomic.Int32
}

func (f *outputFaults) WriteOutputs(w *engine.OutputWrite) error {
	if f.fail.Load() {
		f.failed.Add(1)
		return errInjected
	}
	return f.DB.WriteOutputs(w)
}

// TestFailedOutputWriteWaits: outputs are logged before the shard moves
// on. While the output log refuses writes, the batch is not acknowledged;
// once the store takes them again, the outputs are logged, nothing twice.
func TestFailedOutputWriteWaits(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fs := &outputFaults{DB: db}
	e, err := engine.Open(engine.Options{Store: fs, Shards: 1, Now: func() time.Time { return testNow }, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	post := func(lines ...string) {
		t.Helper()
		sc := e.Schema()
		dec := ingest.NewDecoder(sc, func() time.Time { return testNow }, "test")
		var b ingest.Batch
		dec.DecodeNDJSON([]byte(strings.Join(lines, "\n")), &b)
		if err := e.Ingest(context.Background(), &b, sc); err != nil {
			t.Fatal(err)
		}
	}
	fs.fail.Store(true)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		post(purchase("e-1", "c-1", testNow.Add(-time.Hour), 1200)) // vip, new_customer, welcome_vip
	}()
	for fs.failed.Load() < 3 { // three attempts refused, and still waiting
		select {
		case <-acked:
			t.Fatal("the batch was acknowledged while its outputs were not logged")
		case <-time.After(time.Millisecond):
		}
	}
	fs.fail.Store(false)
	<-acked
	post(purchase("e-2", "c-2", testNow.Add(-time.Hour), 1200))

	outs, err := e.ReadOutputs(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, o := range outs {
		name := o.Segment
		if o.Kind == twinhub.ActionFired {
			name = o.Rule
		}
		seen[fmt.Sprintf("%s %s %s", o.Twin, o.Kind, name)]++
	}
	// welcome_vip does two actions: a tag and an offer.
	want := map[string]int{"segment.entered vip": 1, "segment.entered new_customer": 1, "action welcome_vip": 2}
	for _, twin := range []string{"c-1", "c-2"} {
		for what, n := range want {
			if got := seen[twin+" "+what]; got != n {
				t.Errorf("%s %s logged %d times, want %d (outputs: %v)", twin, what, got, n, seen)
			}
		}
	}
}

// heldArchive is the real store whose archive commits wait for release, as
// a slow fsync would make them.
type heldArchive struct {
	*pebble.DB
	release chan struct{}
}

func (h *heldArchive) Append(recs []engine.Record) (engine.Commit, error) {
	c, err := h.DB.Append(recs)
	if err != nil {
		return nil, err
	}
	return heldCommit{c, h.release}, nil
}

type heldCommit struct {
	engine.Commit
	release <-chan struct{}
}

func (c heldCommit) Wait() error {
	<-c.release
	return c.Commit.Wait()
}

// TestOutputsWaitForTheArchive checks that followers see no output of an
// event before the archive holds the event durably: a webhook must not act
// on an event that a power loss could still take back. The outputs are in
// the log by then; only their publication waits.
func TestOutputsWaitForTheArchive(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	hs := &heldArchive{DB: db, release: make(chan struct{})}
	e, err := engine.Open(engine.Options{Store: hs, Now: func() time.Time { return testNow }, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	sc := e.Schema()
	dec := ingest.NewDecoder(sc, func() time.Time { return testNow }, "test")
	var b ingest.Batch
	dec.Decode([]byte(purchase("e-1", "c-1", testNow.Add(-time.Hour), 1200)), &b) // vip, new_customer, welcome_vip
	acked := make(chan error, 1)
	go func() { acked <- e.Ingest(context.Background(), &b, sc) }()

	// Applied (the twin shows it) and logged (the store has the outputs),
	// but not durable: nothing is published.
	logged := 0
	for deadline := time.Now().Add(10 * time.Second); logged == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the outputs were never logged")
		}
		logged = 0
		if err := db.ReadOutputs(0, func(twinhub.Output) bool { logged++; return true }); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if v, err := e.Twin("c-1"); err != nil || v.Revision == 0 {
		t.Fatalf("twin c-1 = %+v, %v; want it applied", v, err)
	}
	notify := e.OutputNotify()
	if last := e.LastOutputID(); last != 0 {
		t.Errorf("LastOutputID = %d before the archive commit, want 0", last)
	}
	if outs, err := e.ReadOutputs(0, 100); err != nil || len(outs) != 0 {
		t.Errorf("ReadOutputs before the archive commit = %d outputs, %v; want none", len(outs), err)
	}
	select {
	case <-acked:
		t.Fatal("the batch was acknowledged before its archive commit")
	default:
	}

	close(hs.release)
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	select {
	case <-notify:
	default:
		t.Error("followers were not woken when the outputs were published")
	}
	outs, err := e.ReadOutputs(0, 100)
	if err != nil || len(outs) != logged || e.LastOutputID() != uint64(logged) {
		t.Fatalf("after the commit: ReadOutputs = %d outputs, %v, LastOutputID %d; want the %d logged", len(outs), err, e.LastOutputID(), logged)
	}
}

// TestDecisionsWaitForTheArchive: an action that needs approval is in the
// action log as soon as its event is applied, but a decision on it waits
// until the event is durable, as its publication does. Approving it before
// would act on an event that a power loss could still take back.
func TestDecisionsWaitForTheArchive(t *testing.T) {
	sc, err := schema.Parse([]byte(workload.InsertEntries(string(schema.DefaultYAML()), "rules", `  big_order_check:
    on: [purchase]
    when: event.amount >= 5000.0
    do:
      - {kind: task, name: check_order, approval: true}
`)))
	if err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open(t.TempDir(), pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	hs := &heldArchive{DB: db, release: make(chan struct{})}
	e, err := engine.Open(engine.Options{Store: hs, Schema: sc, Now: func() time.Time { return testNow }, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	dec := ingest.NewDecoder(e.Schema(), func() time.Time { return testNow }, "test")
	var b ingest.Batch
	dec.Decode([]byte(purchase("e-1", "c-1", testNow.Add(-time.Hour), 9000)), &b)
	acked := make(chan error, 1)
	go func() { acked <- e.Ingest(context.Background(), &b, e.Schema()) }()

	// The pending action is logged while its event's archive write waits.
	var pending twinhub.Action
	for deadline := time.Now().Add(10 * time.Second); pending.ID == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the pending action was never logged")
		}
		if err := db.PendingActions(func(a twinhub.Action) bool { pending = a; return false }); err != nil {
			t.Fatal(err)
		}
	}
	var released atomic.Bool
	decided := make(chan error, 1)
	go func() {
		a, err := e.DecideAction(pending.ID, true, twinhub.Decision{By: "alice"})
		if err == nil && !released.Load() {
			err = fmt.Errorf("action %d was %s before its event was durable", a.ID, a.Status)
		}
		decided <- err
	}()
	if _, err := e.DecideAction(pending.ID+1000, true, twinhub.Decision{By: "alice"}); twinhub.ErrorCode(err) != twinhub.ENOTFOUND {
		t.Errorf("deciding an unknown action: %v, want not found at once", err)
	}
	time.Sleep(50 * time.Millisecond) // give a decision that does not wait the time to be made
	released.Store(true)
	close(hs.release)
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if err := <-decided; err != nil {
		t.Fatal(err)
	}
	if a, err := e.Action(pending.ID); err != nil || a.Status != twinhub.ActionApproved {
		t.Fatalf("Action(%d) = %s, %v; want approved", pending.ID, a.Status, err)
	}
}
