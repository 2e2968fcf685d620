package pebble

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twinhub/twinhub"
)

func delivery(action uint64, webhook string) twinhub.Delivery {
	t := time.Date(2026, 11, 24, 10, 0, int(action), 0, time.UTC)
	return twinhub.Delivery{ActionID: action, ActionKey: "k-" + webhook, Webhook: webhook, URL: "http://127.0.0.1:9/" + webhook,
		Status: twinhub.DeliveryPending, NextAttempt: t, Created: t, Log: []twinhub.Attempt{}}
}

func deliveryIDs(tb testing.TB, db *DB, status twinhub.DeliveryStatus, after uint64) []uint64 {
	tb.Helper()
	out := []uint64{}
	err := db.Deliveries(status, after, func(d twinhub.Delivery) bool {
		if status != "" && d.Status != status {
			tb.Errorf("Deliveries(%q) listed delivery %d in status %q", status, d.ID, d.Status)
		}
		out = append(out, d.ID)
		return true
	})
	if err != nil {
		tb.Fatalf("Deliveries(%q, %d): %v", status, after, err)
	}
	return out
}

func TestDeliveries(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	if c, err := db.DeliveryCursor(); err != nil || c != 0 {
		t.Fatalf("DeliveryCursor of a new store = %d, %v; want 0", c, err)
	}
	first := []twinhub.Delivery{delivery(3, "crm"), delivery(3, "action"), delivery(5, "crm")}
	if err := db.AddDeliveries(7, first); err != nil {
		t.Fatal(err)
	}
	if got := []uint64{first[0].ID, first[1].ID, first[2].ID}; !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("AddDeliveries gave IDs %v, want 1 2 3", got)
	}
	// A batch with nothing to deliver still moves the cursor.
	if err := db.AddDeliveries(9, nil); err != nil {
		t.Fatal(err)
	}
	got, ok, err := db.Delivery(2)
	if err != nil || !ok {
		t.Fatalf("Delivery(2) = %v, %v", ok, err)
	}
	if diff := cmp.Diff(first[1], got); diff != "" {
		t.Errorf("Delivery(2) differs from what was added (-added +read):\n%s", diff)
	}

	// Delivered and dead deliveries leave the pending index.
	d1 := first[0]
	d1.Status, d1.Attempts, d1.Delivered = twinhub.DeliveryDelivered, 2, d1.Created.Add(time.Second)
	d1.Log = append(d1.Log, twinhub.Attempt{At: d1.Created, Status: 500, Error: "500 Internal Server Error", Duration: time.Millisecond},
		twinhub.Attempt{At: d1.Delivered, Status: 204, Duration: 2 * time.Millisecond})
	d3 := first[2]
	d3.Status, d3.Attempts, d3.LastError = twinhub.DeliveryDead, 10, "connection refused"
	for _, d := range []twinhub.Delivery{d1, d3} {
		if err := db.UpdateDelivery(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.UpdateDelivery(twinhub.Delivery{ID: 99, Status: twinhub.DeliveryDead}); twinhub.ErrorCode(err) != twinhub.ENOTFOUND {
		t.Errorf("UpdateDelivery of an unknown delivery: %v, want not_found", err)
	}

	// Everything survives a reopen, and IDs go on after the last.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir)
	defer db.Close()
	if c, err := db.DeliveryCursor(); err != nil || c != 9 {
		t.Errorf("DeliveryCursor after reopen = %d, %v; want 9", c, err)
	}
	more := []twinhub.Delivery{delivery(11, "crm")}
	if err := db.AddDeliveries(12, more); err != nil {
		t.Fatal(err)
	}
	if more[0].ID != 4 {
		t.Errorf("first delivery after reopen has ID %d, want 4", more[0].ID)
	}
	for _, c := range []struct {
		status twinhub.DeliveryStatus
		after  uint64
		want   []uint64
	}{
		{"", 0, []uint64{1, 2, 3, 4}},
		{"", 2, []uint64{3, 4}},
		{twinhub.DeliveryPending, 0, []uint64{2, 4}},
		{twinhub.DeliveryPending, 2, []uint64{4}},
		{twinhub.DeliveryDelivered, 0, []uint64{1}},
		{twinhub.DeliveryDead, 0, []uint64{3}},
	} {
		if got := deliveryIDs(t, db, c.status, c.after); !slices.Equal(got, c.want) {
			t.Errorf("Deliveries(%q, after %d) = %v, want %v", c.status, c.after, got, c.want)
		}
	}
	if got, _, _ := db.Delivery(1); !cmp.Equal(got, d1) {
		t.Errorf("Delivery(1) after reopen:\n%s", cmp.Diff(d1, got))
	}
	if err := db.Deliveries("lost", 0, func(twinhub.Delivery) bool { return true }); twinhub.ErrorCode(err) != twinhub.EINVALID {
		t.Errorf("Deliveries of an unknown status: %v, want invalid", err)
	}

	counts, err := db.DeliveryCounts()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[twinhub.DeliveryStatus]int64{
		"crm":    {twinhub.DeliveryDelivered: 1, twinhub.DeliveryDead: 1, twinhub.DeliveryPending: 1},
		"action": {twinhub.DeliveryPending: 1},
	}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("DeliveryCounts (-want +got):\n%s", diff)
	}

	// A retried dead delivery is pending again.
	d3.Status, d3.Attempts = twinhub.DeliveryPending, 0
	if err := db.UpdateDelivery(d3); err != nil {
		t.Fatal(err)
	}
	if got := deliveryIDs(t, db, twinhub.DeliveryDead, 0); len(got) != 0 {
		t.Errorf("dead after retry: %v, want none", got)
	}
	if got := deliveryIDs(t, db, twinhub.DeliveryPending, 0); !slices.Equal(got, []uint64{2, 3, 4}) {
		t.Errorf("pending after retry: %v, want 2 3 4", got)
	}
}

// TestResetKeepsDeliveries checks that rebuilding twins, as a schema swap
// does, leaves the delivery log and its cursor alone: they describe what
// went out, which a rebuild does not undo.
func TestResetKeepsDeliveries(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	if err := db.AddDeliveries(5, []twinhub.Delivery{delivery(1, "crm")}); err != nil {
		t.Fatal(err)
	}
	for _, reset := range []func() error{db.ResetDerived, db.ResetTwins, db.ResetSegments} {
		if err := reset(); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := db.DeliveryCursor(); c != 5 {
		t.Errorf("cursor after reset = %d, want 5", c)
	}
	if got := deliveryIDs(t, db, twinhub.DeliveryPending, 0); !slices.Equal(got, []uint64{1}) {
		t.Errorf("pending deliveries after reset: %v, want 1", got)
	}
}

// Pruning deletes deliveries delivered before a time, in chunks, and keeps
// pending and dead ones and those delivered later (whatever their IDs).
func TestPruneDeliveries(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	const n = 2500 // more than a chunk
	var ds []twinhub.Delivery
	for i := range n {
		ds = append(ds, delivery(uint64(i+1), "crm"))
	}
	if err := db.AddDeliveries(1, ds); err != nil {
		t.Fatal(err)
	}
	for i, d := range ds {
		switch {
		case i%10 == 9:
			continue // pending
		case i%10 == 8:
			d.Status = twinhub.DeliveryDead
		default:
			d.Status, d.Delivered = twinhub.DeliveryDelivered, t0
			if i%3 == 0 || i < 1200 && i%2 == 0 { // delivered late, some of them early in ID order
				d.Delivered = t0.Add(48 * time.Hour)
			}
		}
		if err := db.UpdateDelivery(d); err != nil {
			t.Fatal(err)
		}
	}
	var wantKept []uint64
	for i, d := range ds {
		if i%10 >= 8 || i%3 == 0 || i < 1200 && i%2 == 0 {
			wantKept = append(wantKept, d.ID)
		}
	}
	pruned, err := db.PruneDeliveries(t0.Add(24 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := deliveryIDs(t, db, "", 0); !slices.Equal(got, wantKept) {
		t.Fatalf("kept %d deliveries, want %d", len(got), len(wantKept))
	}
	if pruned != n-len(wantKept) {
		t.Errorf("PruneDeliveries = %d, want %d", pruned, n-len(wantKept))
	}
	counts, err := db.DeliveryCounts()
	if err != nil {
		t.Fatal(err)
	}
	if got := counts["crm"][twinhub.DeliveryPending] + counts["crm"][twinhub.DeliveryDead] + counts["crm"][twinhub.DeliveryDelivered]; got != int64(len(wantKept)) {
		t.Errorf("the status index counts %d, want %d", got, len(wantKept))
	}
}
