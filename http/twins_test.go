package http_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGetTwin(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.postNDJSON("/v1/events",
		purchase("e-1", "c-1", testNow.Add(-time.Hour), 59.9),
		`{"id":"e-2","type":"profile","customer_id":"c-1","time":"2026-11-19T00:00:00Z","name":"Ada","tier":"gold","source":"crm"}`,
		purchase("e-3", "a/b ü", testNow.Add(-time.Hour), 1),
	)
	var v twinView
	ts.getJSON("/v1/twins/c-1", &v)
	if v.Key != "c-1" || v.Revision != 2 || v.SchemaVersion != 1 {
		t.Errorf("twin key %q revision %d schema_version %d, want c-1, 2, 1", v.Key, v.Revision, v.SchemaVersion)
	}
	if v.AsOf != "2026-11-20T12:00:00Z" {
		t.Errorf("as_of = %q, want the engine's clock in RFC 3339", v.AsOf)
	}
	if a := v.Attributes["tier"]; a.Value != "gold" || a.Source != "crm" || a.EventID != "e-2" || a.Time != "2026-11-19T00:00:00Z" {
		t.Errorf("attribute tier = %+v, want gold from e-2 via crm at 2026-11-19T00:00:00Z", a)
	}
	if v.Aggregates["spend_total"] != 59.9 || v.Aggregates["events_total"] != 2.0 {
		t.Errorf("aggregates %v, want spend_total 59.9 and events_total 2", v.Aggregates)
	}
	if want := testNow.Add(-time.Hour).Format(time.RFC3339Nano); v.Aggregates["last_seen"] != want {
		t.Errorf("last_seen = %v, want %s (the purchase's time, RFC 3339)", v.Aggregates["last_seen"], want)
	}

	// A key with a slash and non-ASCII, escaped in the path.
	var odd twinView
	ts.getJSON("/v1/twins/"+url.PathEscape("a/b ü"), &odd)
	if odd.Key != "a/b ü" {
		t.Errorf("escaped key read twin %q", odd.Key)
	}

	p := wantProblem(t, ts.get("/v1/twins/nobody"), 404, "not_found")
	if !strings.Contains(p.Detail, "nobody") {
		t.Errorf("404 detail %q does not name the key", p.Detail)
	}
}

// TestGetTwinClearedAttribute: change data capture clears attributes with
// nulls; the twin shows a cleared one with a null value and the lineage of
// the event that cleared it, positions included, and the timeline keeps the
// event as sent.
func TestGetTwinClearedAttribute(t *testing.T) {
	ts := newTestServer(t, nil)
	clear := `{"id":"d-7","type":"profile","customer_id":"c-1","time":"2026-11-19T00:00:00Z","position":7,"email":null,"source":"crm"}`
	r := ts.postNDJSON("/v1/events",
		`{"id":"u-5","type":"profile","customer_id":"c-1","time":"2026-11-19T01:00:00Z","position":5,"email":"a@x","name":"Ada","source":"crm"}`,
		clear,
		`{"id":"u-6","type":"profile","customer_id":"c-1","time":"2026-11-19T02:00:00Z","position":6,"email":"b@x","source":"crm"}`,
		`{"id":"x-1","type":"profile","customer_id":"c-1","position":-1,"email":"c@x"}`,
	)
	if r.Accepted != 3 || r.Rejected != 1 {
		t.Fatalf("ingest: %+v, want 3 accepted and the negative position rejected", r)
	}
	resp := ts.get("/v1/twins/c-1")
	if want := `"email":{"value":null,"source":"crm","event_id":"d-7","time":"2026-11-19T00:00:00Z","position":7}`; !strings.Contains(string(resp.body), want) {
		t.Errorf("GET twin = %s\nwant it to contain %s", resp.body, want)
	}
	var v twinView
	ts.getJSON("/v1/twins/c-1", &v)
	if a := v.Attributes["name"]; a.Value != "Ada" || a.EventID != "u-5" || a.Position == nil || *a.Position != 5 {
		t.Errorf("name = %+v, want Ada from u-5 at position 5", a)
	}
	if _, ok := v.Attributes["tier"]; ok {
		t.Errorf("tier, never set, is shown: %+v", v.Attributes["tier"])
	}
	var tl timelinePage
	ts.getJSON("/v1/twins/c-1/events", &tl)
	if len(tl.Events) != 3 || string(tl.Events[0].Event) != clear {
		t.Errorf("timeline %+v, want 3 events, the first (oldest) exactly as sent: %s", tl.Events, clear)
	}
}

type timelinePage struct {
	Key    string `json:"key"`
	Events []struct {
		Seq   uint64          `json:"seq"`
		Time  string          `json:"time"`
		Event json.RawMessage `json:"event"`
	} `json:"events"`
	Next string `json:"next"`
}

func TestTimeline(t *testing.T) {
	ts := newTestServer(t, nil)
	base := testNow.Add(-24 * time.Hour)
	// Ten events at these minutes after base, sent out of order; minute 5
	// holds three events, to test that a page never splits a timestamp.
	minutes := []int{9, 2, 5, 0, 5, 7, 1, 5, 3, 8}
	var lines []string
	for i, m := range minutes {
		lines = append(lines, purchase(fmt.Sprintf("e-%d", i), "c-1", base.Add(time.Duration(m)*time.Minute), float64(i)))
	}
	lines = append(lines, purchase("other", "c-2", base, 1))
	if r := ts.postNDJSON("/v1/events", lines...); r.Accepted != len(lines) {
		t.Fatalf("ingest: %+v", r)
	}

	// Every event, oldest first, ties in arrival order, each as received.
	var all timelinePage
	ts.getJSON("/v1/twins/c-1/events", &all)
	var order []string
	for _, e := range all.Events {
		var ev struct {
			ID   string `json:"id"`
			Time string `json:"time"`
		}
		if err := json.Unmarshal(e.Event, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Time != e.Time {
			t.Errorf("event %s: time %q, raw event time %q", ev.ID, e.Time, ev.Time)
		}
		order = append(order, ev.ID)
	}
	want := []string{"e-3", "e-6", "e-1", "e-8", "e-2", "e-4", "e-7", "e-5", "e-9", "e-0"}
	if !slices.Equal(order, want) {
		t.Errorf("timeline order %v, want %v", order, want)
	}
	if all.Key != "c-1" || all.Next != "" {
		t.Errorf("key %q next %q, want c-1 and no next", all.Key, all.Next)
	}
	if !json.Valid(all.Events[0].Event) || !strings.HasPrefix(string(all.Events[0].Event), `{"id":"e-3"`) {
		t.Errorf("event not returned as received: %s", all.Events[0].Event)
	}

	// Pages of every size cover every event exactly once, in order.
	for _, limit := range []int{1, 2, 3, 4, 10, 11} {
		var got []string
		from := ""
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatalf("limit %d: more than 20 pages", limit)
			}
			path := fmt.Sprintf("/v1/twins/c-1/events?limit=%d", limit)
			if from != "" {
				path += "&from=" + url.QueryEscape(from)
			}
			var p timelinePage
			ts.getJSON(path, &p)
			if len(p.Events) > limit && len(p.Events) != 3 {
				t.Errorf("limit %d: page of %d events", limit, len(p.Events))
			}
			for _, e := range p.Events {
				var ev struct{ ID string }
				json.Unmarshal(e.Event, &ev)
				got = append(got, ev.ID)
			}
			if p.Next == "" {
				break
			}
			from = p.Next
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: pages %v, want %v", limit, got, want)
		}
	}

	// from is inclusive, to exclusive.
	var window timelinePage
	ts.getJSON("/v1/twins/c-1/events?from="+base.Add(2*time.Minute).Format(time.RFC3339)+"&to="+base.Add(7*time.Minute).Format(time.RFC3339), &window)
	if n := len(window.Events); n != 5 {
		t.Errorf("events in [2m, 7m) = %d, want 5 (minutes 2, 3, 5, 5, 5)", n)
	}
	var empty timelinePage
	ts.getJSON("/v1/twins/c-1/events?from="+testNow.Format(time.RFC3339), &empty)
	if empty.Events == nil || len(empty.Events) != 0 {
		t.Errorf("future window: %+v, want an empty events array", empty)
	}

	for _, tc := range []struct{ query, param string }{
		{"from=yesterday", "from"},
		{"to=2026-13-01T00:00:00Z", "to"},
		{"from=2026-11-20T00:00:00Z&to=2026-11-19T00:00:00Z", "to"},
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=ten", "limit"},
		{"from=0001-01-01T00:00:00Z", "from"},
	} {
		p := wantProblem(t, ts.get("/v1/twins/c-1/events?"+tc.query), 400, "invalid")
		if p.Parameter != tc.param || !strings.Contains(p.Detail, tc.param) {
			t.Errorf("%s: problem names parameter %q (%s), want %q", tc.query, p.Parameter, p.Detail, tc.param)
		}
	}
	wantProblem(t, ts.get("/v1/twins/nobody/events"), 404, "not_found")
}

func TestListTwins(t *testing.T) {
	ts := newTestServer(t, nil)
	const n = 250
	var lines []string
	for i := range n {
		lines = append(lines, purchase(fmt.Sprintf("e-%d", i), fmt.Sprintf("c-%d", i), testNow.Add(-time.Hour), 1))
	}
	ts.postNDJSON("/v1/events", lines...)

	type page struct {
		Twins      []string `json:"twins"`
		NextCursor *string  `json:"next_cursor"`
	}
	var def page
	ts.getJSON("/v1/twins", &def)
	if len(def.Twins) != 100 || def.NextCursor == nil || *def.NextCursor != def.Twins[99] {
		t.Errorf("default page: %d twins, next_cursor %v; want 100 and the last key", len(def.Twins), def.NextCursor)
	}

	for _, limit := range []int{1, 7, 125, 250, 1000} {
		var keys []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > n+1 {
				t.Fatalf("limit %d: too many pages", limit)
			}
			var p page
			ts.getJSON(fmt.Sprintf("/v1/twins?limit=%d&cursor=%s", limit, url.QueryEscape(cursor)), &p)
			if len(p.Twins) > limit || (p.NextCursor != nil && len(p.Twins) != limit) {
				t.Fatalf("limit %d: page of %d with next_cursor %v", limit, len(p.Twins), p.NextCursor)
			}
			keys = append(keys, p.Twins...)
			if p.NextCursor == nil {
				break
			}
			cursor = *p.NextCursor
		}
		if len(keys) != n || !slices.IsSorted(keys) || len(slices.Compact(slices.Clone(keys))) != n {
			t.Errorf("limit %d: %d keys (sorted %v), want each of %d exactly once in order", limit, len(keys), slices.IsSorted(keys), n)
		}
	}

	var end page
	ts.getJSON("/v1/twins?cursor=zzz", &end)
	if end.Twins == nil || len(end.Twins) != 0 || end.NextCursor != nil {
		t.Errorf("past the end: %+v, want an empty array and no cursor", end)
	}
	for _, q := range []string{"limit=0", "limit=-1", "limit=1001", "limit=x"} {
		p := wantProblem(t, ts.get("/v1/twins?"+q), 400, "invalid")
		if p.Parameter != "limit" {
			t.Errorf("%s: parameter %q, want limit", q, p.Parameter)
		}
	}
}
