package workload

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// At testNow (2026-11-20T12:00Z) the windows start at:
//
//	spend_30d      1d buckets: 2026-10-22T00:00Z (bucket D-29)
//	purchases_90d  3d buckets: 2026-08-23T00:00Z (epoch-aligned; 90d before now is 08-22T12:00Z)
//	complaints_7d  1h buckets: 2026-11-13T13:00Z (bucket H-167)
//
// and have no upper bound: an event after now counts.
var referenceEvents = []string{
	// c-1: five purchases around the 30d and 90d boundaries.
	`{"id":"e-1","type":"purchase","customer_id":"c-1","time":"2026-11-20T11:00:00.000Z","amount":10.5,"product_id":"p-1","category":"shoes","channel":"web"}`,
	`{"id":"e-2","type":"purchase","customer_id":"c-1","time":"2026-10-22T00:00:00.000Z","amount":20,"product_id":"p-2","category":"bags","channel":"app"}`,
	`{"id":"e-3","type":"purchase","customer_id":"c-1","time":"2026-10-21T23:59:59.999Z","amount":30,"product_id":"p-1","category":"shoes","channel":"web"}`,
	`{"id":"e-4","type":"purchase","customer_id":"c-1","time":"2026-08-23T00:00:00.000Z","amount":40,"product_id":"p-3","category":"shoes","channel":"store"}`,
	`{"id":"e-5","type":"purchase","customer_id":"c-1","time":"2026-08-22T23:59:59.999Z","amount":50,"product_id":"p-4","category":"hats","channel":"web"}`,
	`{"id":"e-6","type":"view","customer_id":"c-1","time":"2026-11-01T08:00:00.000Z","product_id":"p-5","category":"hats","channel":"app"}`,
	`{"id":"e-7","type":"view","customer_id":"c-1","time":"2026-11-02T08:00:00.000Z","product_id":"p-1","category":"shoes","channel":"app"}`,
	`{"id":"e-8","type":"view","customer_id":"c-1","time":"2026-11-03T08:00:00.000Z","product_id":"p-6","category":"audio","channel":"web"}`,
	`{"id":"e-9","type":"return","customer_id":"c-1","time":"2026-11-04T08:00:00.000Z","amount":20,"product_id":"p-2"}`,
	// Complaints: in at the 7d boundary, out 1ms before it, in after now.
	`{"id":"e-10","type":"complaint","customer_id":"c-1","time":"2026-11-13T13:00:00.000Z","reason":"billing","channel":"call_centre"}`,
	`{"id":"e-11","type":"complaint","customer_id":"c-1","time":"2026-11-13T12:59:59.999Z","reason":"billing","channel":"call_centre"}`,
	`{"id":"e-12","type":"complaint","customer_id":"c-1","time":"2026-11-20T13:00:00.000Z","reason":"wrong_item","channel":"web"}`,
	// Surveys: a tie at the latest time goes to the one added later; the
	// oldest is outside the 90d window but is the earliest event.
	`{"id":"e-13","type":"survey","customer_id":"c-1","time":"2026-11-10T00:00:00.000Z","score":2}`,
	`{"id":"e-14","type":"survey","customer_id":"c-1","time":"2026-11-15T00:00:00.000Z","score":4}`,
	`{"id":"e-15","type":"survey","customer_id":"c-1","time":"2026-11-15T00:00:00.000Z","score":5}`,
	`{"id":"e-16","type":"survey","customer_id":"c-1","time":"2026-08-01T00:00:00.000Z","score":1}`,
	// Profiles: the latest time wins, not the latest added.
	`{"id":"e-17","type":"profile","customer_id":"c-1","time":"2026-11-01T00:00:00.000Z","name":"Ada Lovelace","email":"ada@example.com","tier":"gold","country":"GB"}`,
	`{"id":"e-18","type":"profile","customer_id":"c-1","time":"2026-10-01T00:00:00.000Z","name":"Ada King","email":"ada.king@example.com","tier":"silver","country":"GB"}`,
	`{"id":"e-19","type":"profile","customer_id":"c-1","time":"2026-11-01T00:00:00.000Z","name":"Ada Lovelace","email":"ada@example.com","tier":"platinum","country":"GB"}` + "\n",
	// c-2: one view, nothing else.
	`{"id":"e-20","type":"view","customer_id":"c-2","time":"2026-11-19T00:00:00.000+01:00","product_id":"p-9","category":"audio","channel":"web"}`,
}

func TestReferenceAggregates(t *testing.T) {
	r := NewReference()
	for _, line := range referenceEvents {
		if err := r.Add([]byte(line)); err != nil {
			t.Fatalf("Add(%s): %v", line, err)
		}
	}
	if got, want := r.Customers(), []string{"c-1", "c-2"}; !slices.Equal(got, want) {
		t.Errorf("Customers() = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		key  string
		now  time.Time
		want map[string]any
	}{
		{"c-1", testNow, map[string]any{
			"events_total":         int64(19),
			"purchases_total":      int64(5),
			"purchases_90d":        int64(4),
			"complaints_7d":        int64(2),
			"returns_total":        int64(1),
			"distinct_products":    int64(4), // purchases only: p-1, p-2, p-3, p-4
			"spend_total":          150.5,
			"spend_30d":            30.5,
			"avg_basket":           30.1,
			"satisfaction_last":    5.0,
			"satisfaction_avg_90d": 11.0 / 3,
			"days_since_purchase":  1.0 / 24,
			"top_categories":       []TopCount{{"shoes", 3}, {"bags", 1}, {"hats", 1}},
			"first_seen":           time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC),
			"last_seen":            time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC),
			"attr.name":            "Ada Lovelace",
			"attr.email":           "ada@example.com",
			"attr.tier":            "platinum",
			"attr.country":         "GB",
		}},
		// One millisecond before a window's next bucket nothing moves; at the
		// bucket start the boundary events drop out. The 3d bucket holding
		// now is [11-18, 11-21).
		{"c-1", time.Date(2026, 11, 20, 12, 59, 59, 999_000_000, time.UTC), map[string]any{
			"complaints_7d": int64(2), "spend_30d": 30.5, "purchases_90d": int64(4),
		}},
		{"c-1", time.Date(2026, 11, 20, 13, 0, 0, 0, time.UTC), map[string]any{
			"complaints_7d": int64(1), "spend_30d": 30.5, "purchases_90d": int64(4),
		}},
		{"c-1", time.Date(2026, 11, 20, 23, 59, 59, 999_000_000, time.UTC), map[string]any{
			"complaints_7d": int64(1), "spend_30d": 30.5, "purchases_90d": int64(4),
		}},
		{"c-1", time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC), map[string]any{
			"spend_30d": 10.5, "purchases_90d": int64(3), "satisfaction_avg_90d": 11.0 / 3,
			"days_since_purchase": 13.0 / 24, "spend_total": 150.5,
		}},
		{"c-2", testNow, map[string]any{
			"events_total":         int64(1),
			"purchases_total":      int64(0),
			"purchases_90d":        int64(0),
			"complaints_7d":        int64(0),
			"returns_total":        int64(0),
			"distinct_products":    int64(0), // views do not count
			"spend_total":          0.0,
			"spend_30d":            0.0,
			"avg_basket":           nil,
			"satisfaction_last":    nil,
			"satisfaction_avg_90d": nil,
			"days_since_purchase":  nil,
			"top_categories":       []TopCount{},
			"first_seen":           time.Date(2026, 11, 18, 23, 0, 0, 0, time.UTC),
			"last_seen":            time.Date(2026, 11, 18, 23, 0, 0, 0, time.UTC),
		}},
	} {
		t.Run(fmt.Sprintf("%s@%s", tc.key, tc.now.Format(time.RFC3339Nano)), func(t *testing.T) {
			got := r.Aggregates(tc.key, tc.now)
			full := len(tc.want) > 10 // a full expectation also checks for extra keys
			for k, want := range tc.want {
				g, ok := got[k]
				if !ok {
					t.Errorf("Aggregates(%s) %s missing, want %v", tc.key, k, want)
				} else if !reflect.DeepEqual(g, want) {
					t.Errorf("Aggregates(%s) %s = %#v, want %#v", tc.key, k, g, want)
				}
			}
			for k, g := range got {
				if _, ok := tc.want[k]; full && !ok {
					t.Errorf("Aggregates(%s) has unexpected %s = %#v", tc.key, k, g)
				}
			}
		})
	}
	if got := r.Aggregates("c-3", testNow); got != nil {
		t.Errorf("Aggregates(c-3) = %v, want nil for an unknown customer", got)
	}
}

func TestReferenceAddErrors(t *testing.T) {
	for _, tc := range []struct {
		name, line, want string
	}{
		{"not json", `{"id":`, "decode"},
		{"no customer", `{"id":"e-1","type":"view","time":"2026-11-20T10:00:00Z"}`, "customer_id"},
		{"bad time", `{"id":"e-1","type":"view","customer_id":"c-1","time":"yesterday"}`, "time"},
		{"unknown type", `{"id":"e-1","type":"refund","customer_id":"c-1","time":"2026-11-20T10:00:00Z"}`, "type"},
		{"purchase without amount", `{"id":"e-1","type":"purchase","customer_id":"c-1","time":"2026-11-20T10:00:00Z"}`, "amount"},
		{"fractional score", `{"id":"e-1","type":"survey","customer_id":"c-1","time":"2026-11-20T10:00:00Z","score":4.5}`, "decode"},
		{"survey without score", `{"id":"e-1","type":"survey","customer_id":"c-1","time":"2026-11-20T10:00:00Z"}`, "score"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReference()
			err := r.Add([]byte(tc.line))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Add(%s) = %v, want an error mentioning %q", tc.line, err, tc.want)
			}
			if len(r.Customers()) != 0 {
				t.Errorf("Add(%s) failed but recorded customers %v", tc.line, r.Customers())
			}
		})
	}
}

func FuzzReferenceAdd(f *testing.F) {
	for _, line := range referenceEvents {
		f.Add([]byte(line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r := NewReference()
		if err := r.Add(line); err != nil {
			return
		}
		keys := r.Customers()
		if len(keys) != 1 {
			t.Fatalf("Add(%q) succeeded but Customers() = %v", line, keys)
		}
		m := r.Aggregates(keys[0], testNow)
		if m["events_total"] != int64(1) {
			t.Fatalf("Add(%q): events_total = %v, want 1", line, m["events_total"])
		}
	})
}
