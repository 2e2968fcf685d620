package http_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twinhub/twinhub"
	twhttp "github.com/twinhub/twinhub/http"
)

// putReactions activates testdata/reactions.yaml, whose webhook crm posts
// to receiverURL.
func (ts *testServer) putReactions(receiverURL string) {
	ts.tb.Helper()
	src, err := os.ReadFile("testdata/reactions.yaml")
	if err != nil {
		ts.tb.Fatal(err)
	}
	src = []byte(strings.ReplaceAll(string(src), "RECEIVER", receiverURL))
	if r := ts.do("PUT", "/v1/schema", src); r.status != 200 {
		ts.tb.Fatalf("PUT /v1/schema = %v", r)
	}
}

func complaint(id, key string, at time.Time, reason string) string {
	return fmt.Sprintf(`{"id":%q,"type":"complaint","customer_id":%q,"time":%q,"reason":%q}`, id, key, at.Format(time.RFC3339Nano), reason)
}

// ingest posts events and fails unless all are accepted.
func (ts *testServer) ingest(lines ...string) {
	ts.tb.Helper()
	if br := ts.postNDJSON("/v1/events", lines...); br.Accepted != len(lines) {
		ts.tb.Fatalf("accepted %d of %d events: %+v", br.Accepted, len(lines), br.Results)
	}
}

// logged returns every logged output, as the engine reads them.
func (ts *testServer) logged() []twinhub.Output {
	ts.tb.Helper()
	outs, err := ts.e.ReadOutputs(0, 1<<20)
	if err != nil {
		ts.tb.Fatal(err)
	}
	return outs
}

// eventually polls cond until it holds or fails the test after 10 s with
// what cond last said.
func eventually(tb testing.TB, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not within 10s: %s", why)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// receiver is a webhook endpoint on 127.0.0.1 that verifies signatures and
// deduplicates by Idempotency-Key, as a careful receiver would.
type receiver struct {
	srv *httptest.Server

	mu        sync.Mutex
	failFirst int  // answer 500 to this many requests first
	down      bool // answer 503 to every request
	requests  []received
	processed map[string]int // idempotency key -> times processed: once, as it deduplicates
	dups      int            // requests acknowledged as duplicates, not processed again
}

type received struct {
	key, delivery string
	signed, valid bool // carried a signature; it verified
	fresh         bool // the timestamp is within a minute of now
	status        int  // what the receiver answered
	action        twinhub.Action
}

func newReceiver(tb testing.TB, secret string) *receiver {
	rc := &receiver{processed: map[string]int{}}
	rc.srv = httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		body, _ := io.ReadAll(r.Body)
		rq := received{key: r.Header.Get("Idempotency-Key"), delivery: r.Header.Get("Twinhub-Delivery")}
		ts := r.Header.Get("Twinhub-Timestamp")
		if sig := r.Header.Get("Twinhub-Signature"); sig != "" {
			m := hmac.New(sha256.New, []byte(secret))
			m.Write([]byte(ts + "." + string(body)))
			rq.signed, rq.valid = true, hmac.Equal([]byte(sig), []byte("sha256="+hex.EncodeToString(m.Sum(nil))))
		}
		if sec, err := strconv.ParseInt(ts, 10, 64); err == nil {
			rq.fresh = time.Since(time.Unix(sec, 0)).Abs() < time.Minute
		}
		if err := json.Unmarshal(body, &rq.action); err != nil || r.Header.Get("Content-Type") != "application/json" {
			rq.action = twinhub.Action{}
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		switch {
		case rc.down:
			rq.status = 503
		case rc.failFirst > 0:
			rc.failFirst--
			rq.status = 500
		default:
			rq.status = 204
			if rc.processed[rq.key] > 0 {
				rc.dups++
			} else {
				rc.processed[rq.key]++
			}
		}
		rc.requests = append(rc.requests, rq)
		w.WriteHeader(rq.status)
		if rq.status >= 300 {
			fmt.Fprint(w, "try again later")
		}
	}))
	tb.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) set(failFirst int, down bool) {
	rc.mu.Lock()
	rc.failFirst, rc.down = failFirst, down
	rc.mu.Unlock()
}

func (rc *receiver) snapshot() ([]received, map[string]int, int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	p := map[string]int{}
	for k, v := range rc.processed {
		p[k] = v
	}
	return slices.Clone(rc.requests), p, rc.dups
}

type deliveryList struct {
	Deliveries []twinhub.Delivery `json:"deliveries"`
	NextCursor string             `json:"next_cursor"`
}

func (ts *testServer) deliveries(query string) []twinhub.Delivery {
	ts.tb.Helper()
	var l deliveryList
	ts.getJSON("/v1/deliveries?"+query, &l)
	return l.Deliveries
}

type actionList struct {
	Actions    []twinhub.Action `json:"actions"`
	NextCursor string           `json:"next_cursor"`
}

func (ts *testServer) actions(query string) []twinhub.Action {
	ts.tb.Helper()
	var l actionList
	ts.getJSON("/v1/actions?"+query, &l)
	return l.Actions
}

// TestStreamResume reads part of the stream, disconnects, misses some
// outputs and resumes with Last-Event-ID: it gets exactly the missed ones,
// in order, then follows live.
func TestStreamResume(t *testing.T) {
	rc := newReceiver(t, "s3cret")
	ts := newTestServer(t, nil)
	ts.putReactions(rc.srv.URL)
	at := testNow.Add(-time.Hour)
	ts.ingest(purchase("e-1", "c-1", at, 60), purchase("e-2", "c-1", at, 50), purchase("e-3", "c-2", at, 150), complaint("e-4", "c-3", at, "late"))
	first := ts.logged()
	if len(first) < 6 {
		t.Fatalf("only %d outputs logged: %+v", len(first), first)
	}

	s := ts.openStream("after=0")
	var got []twinhub.Output
	for range 3 {
		got = append(got, s.next(5*time.Second).output(t))
	}
	s.close()
	// Missed while disconnected: outputs of new events and of a decision.
	ts.ingest(purchase("e-5", "c-4", at, 500), complaint("e-6", "c-1", at, "rude"))
	if r := ts.do("POST", fmt.Sprintf("/v1/actions/%d/approve", ts.actions("status=pending")[0].ID), []byte(`{"by":"alice"}`)); r.status != 200 {
		t.Fatalf("approve: %v", r)
	}
	want := ts.logged()
	if len(want) <= len(first) {
		t.Fatalf("no outputs logged while disconnected")
	}
	s = ts.openStream("", "Last-Event-ID", strconv.FormatUint(got[2].ID, 10))
	for len(got) < len(want) {
		got = append(got, s.next(5*time.Second).output(t))
	}
	for i := range want {
		g, _ := json.Marshal(got[i])
		w, _ := json.Marshal(want[i])
		if string(g) != string(w) {
			t.Fatalf("entry %d of the stream:\n got %s\nwant %s", i, g, w)
		}
	}
	// Then live, without a gap: a new output arrives once.
	ts.ingest(purchase("e-7", "c-5", at, 100))
	live := s.next(5 * time.Second).output(t)
	if live.ID != want[len(want)-1].ID+1 || live.Twin != "c-5" {
		t.Errorf("first live entry %+v, want id %d of c-5", live, want[len(want)-1].ID+1)
	}
	// ?after= does the same for clients that cannot send the header.
	s2 := ts.openStream("after=" + strconv.FormatUint(want[len(want)-2].ID, 10))
	if o := s2.next(5 * time.Second).output(t); o.ID != want[len(want)-1].ID {
		t.Errorf("after=%d: first entry %d, want %d", want[len(want)-2].ID, o.ID, want[len(want)-1].ID)
	}
}

// TestStreamFilters checks each filter against the log it selects from.
func TestStreamFilters(t *testing.T) {
	rc := newReceiver(t, "s3cret")
	ts := newTestServer(t, nil)
	ts.putReactions(rc.srv.URL)
	at := testNow.Add(-time.Hour)
	ts.ingest(purchase("e-1", "c-1", at, 60), purchase("e-2", "c-1", at, 50), purchase("e-3", "c-2", at, 150),
		complaint("e-4", "c-3", at, "late"), complaint("e-5", "c-2", at, "rude"))
	all := ts.logged()
	for _, c := range []struct {
		query string
		match func(o twinhub.Output) bool
	}{
		{"", func(twinhub.Output) bool { return true }},
		{"kind=segment.entered", func(o twinhub.Output) bool { return o.Kind == twinhub.SegmentEntered }},
		{"kind=action&rule=welcome_big,care", func(o twinhub.Output) bool {
			return o.Kind == twinhub.ActionFired && (o.Rule == "welcome_big" || o.Rule == "care")
		}},
		{"segment=big&twin=c-2", func(o twinhub.Output) bool { return o.Segment == "big" && o.Twin == "c-2" }},
		{"twin=c-2&twin=c-3", func(o twinhub.Output) bool { return o.Twin == "c-2" || o.Twin == "c-3" }},
		// An action carries the segment whose entry or exit triggered it.
		{"rule=tag_big&segment=big", func(o twinhub.Output) bool { return o.Rule == "tag_big" }},
		{"rule=care&segment=big", func(twinhub.Output) bool { return false }}, // care reacts to complaints
	} {
		var want []uint64
		for _, o := range all {
			if c.match(o) {
				want = append(want, o.ID)
			}
		}
		if len(want) == 0 && c.query == "kind=segment.entered" {
			t.Fatalf("no segment entries in %d outputs", len(all))
		}
		s := ts.openStream("after=0&" + c.query)
		var got []uint64
		for range want {
			got = append(got, s.next(5*time.Second).output(t).ID)
		}
		s.quiet(50 * time.Millisecond)
		s.close()
		if !slices.Equal(got, want) {
			t.Errorf("?%s: got ids %v, want %v", c.query, got, want)
		}
	}
}

// TestSegmentsRulesAndActionsAPI reads segments, their members and
// history, rules with their counters and the action log with its filters.
func TestSegmentsRulesAndActionsAPI(t *testing.T) {
	rc := newReceiver(t, "s3cret")
	ts := newTestServer(t, nil)
	ts.putReactions(rc.srv.URL)
	at := testNow.Add(-time.Hour)
	ts.ingest(purchase("e-1", "c-1", at, 60), purchase("e-2", "c-1", at, 50), purchase("e-3", "c-2", at, 150),
		purchase("e-4", "c-3", at, 100), purchase("e-5", "c-4", at, 5), complaint("e-6", "c-4", at, "late"))

	var segs struct {
		SchemaVersion int `json:"schema_version"`
		Segments      []struct {
			Name, Description, When string
			Size                    int64
			TimeDependent           bool `json:"time_dependent"`
		} `json:"segments"`
	}
	ts.getJSON("/v1/segments", &segs)
	if len(segs.Segments) != 2 || segs.Segments[0].Name != "big" || segs.Segments[0].Size != 3 || segs.Segments[0].When != "twin.spend_total >= 100.0" ||
		segs.Segments[0].Description != "Spent 100 or more in total." || segs.Segments[1].Name != "unhappy" || segs.Segments[1].Size != 1 || !segs.Segments[1].TimeDependent {
		t.Errorf("GET /v1/segments = %+v, want big with 3 members and the time-dependent unhappy with 1", segs)
	}
	var one struct{ Name string }
	ts.getJSON("/v1/segments/unhappy", &one)
	if one.Name != "unhappy" {
		t.Errorf("GET /v1/segments/unhappy = %+v", one)
	}
	p := wantProblem(t, ts.get("/v1/segments/bigg"), 404, "not_found")
	if !strings.Contains(p.Detail, `"bigg"`) || !strings.Contains(p.Detail, "big, unhappy") {
		t.Errorf("unknown segment: %q, want the name and the known ones", p.Detail)
	}

	// Members, a page at a time.
	var members []string
	cursor := ""
	for range 5 {
		var page struct {
			Size       int64    `json:"size"`
			Members    []string `json:"members"`
			NextCursor string   `json:"next_cursor"`
		}
		ts.getJSON("/v1/segments/big/members?limit=2&cursor="+cursor, &page)
		members = append(members, page.Members...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(members, []string{"c-1", "c-2", "c-3"}) {
		t.Errorf("big's members, by pages of 2: %v", members)
	}
	wantProblem(t, ts.get("/v1/segments/big/members?limit=0"), 400, "invalid")

	// History: sizes as recorded.
	if err := ts.e.RecordSegmentSizes(); err != nil {
		t.Fatal(err)
	}
	var hist struct {
		History []struct {
			Time time.Time
			Size int64
		} `json:"history"`
	}
	ts.getJSON("/v1/segments/big/history?from=2026-01-01T00:00:00Z", &hist)
	if len(hist.History) != 1 || hist.History[0].Size != 3 || !hist.History[0].Time.Equal(testNow) {
		t.Errorf("big's history = %+v, want one point of 3 at %s", hist.History, testNow)
	}
	wantProblem(t, ts.get("/v1/segments/big/history?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z"), 400, "invalid")

	var rules struct {
		Rules []struct {
			Name             string
			On               []string
			Actions          []string
			Evaluated, Fired int64
		} `json:"rules"`
	}
	ts.getJSON("/v1/rules", &rules)
	fired := map[string]int64{}
	for _, r := range rules.Rules {
		fired[r.Name] = r.Fired
	}
	if want := map[string]int64{"welcome_big": 3, "care": 1, "tag_big": 3}; !maps(fired, want) {
		t.Errorf("rules fired %v, want %v", fired, want)
	}

	// The action log and its filters.
	all := ts.actions("")
	if len(all) != 7 {
		t.Fatalf("%d actions, want 7 (3 offers, 3 tags, 1 alert): %+v", len(all), all)
	}
	for _, c := range []struct {
		query string
		want  func(twinhub.Action) bool
	}{
		{"status=pending", func(a twinhub.Action) bool { return a.Status == twinhub.ActionPending }},
		{"rule=welcome_big", func(a twinhub.Action) bool { return a.Rule == "welcome_big" }},
		{"twin=c-1&status=fired", func(a twinhub.Action) bool { return a.Twin == "c-1" && a.Status == twinhub.ActionFiredStatus }},
		{"since=" + testNow.Format(time.RFC3339), func(twinhub.Action) bool { return true }},
		{"since=" + testNow.Add(time.Second).Format(time.RFC3339), func(twinhub.Action) bool { return false }},
	} {
		var want []uint64
		for _, a := range all {
			if c.want(a) {
				want = append(want, a.ID)
			}
		}
		var got []uint64
		for _, a := range ts.actions(c.query) {
			got = append(got, a.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("GET /v1/actions?%s: ids %v, want %v", c.query, got, want)
		}
	}
	var paged []uint64
	cursor = ""
	for range 10 {
		var page actionList
		ts.getJSON("/v1/actions?limit=3&cursor="+cursor, &page)
		for _, a := range page.Actions {
			paged = append(paged, a.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(paged) != len(all) || paged[0] != all[0].ID || paged[len(paged)-1] != all[len(all)-1].ID {
		t.Errorf("actions by pages of 3: %v", paged)
	}
	p = wantProblem(t, ts.get("/v1/actions?status=done"), 400, "invalid")
	if p.Parameter != "status" || !strings.Contains(p.Detail, "fired, pending, approved, rejected, expired") {
		t.Errorf("bad status: %+v", p)
	}
	wantProblem(t, ts.get("/v1/actions?since=yesterday"), 400, "invalid")
	var a twinhub.Action
	ts.getJSON(fmt.Sprintf("/v1/actions/%d", all[0].ID), &a)
	if a.ID != all[0].ID || a.Key == "" || a.Receipt.Rule != a.Rule {
		t.Errorf("GET /v1/actions/%d = %+v", all[0].ID, a)
	}
	wantProblem(t, ts.get("/v1/actions/999999"), 404, "not_found")
	wantProblem(t, ts.get("/v1/actions/first"), 400, "invalid")

	// The twin shows its segments and tags.
	var tw struct {
		Segments []string `json:"segments"`
		Tags     []string `json:"tags"`
	}
	ts.getJSON("/v1/twins/c-1", &tw)
	if !slices.Equal(tw.Segments, []string{"big"}) || !slices.Equal(tw.Tags, []string{"big_spender"}) {
		t.Errorf("twin c-1: segments %v tags %v, want [big] [big_spender]", tw.Segments, tw.Tags)
	}
}

func maps[K, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestWebhookDelivery sends actions to a receiver that fails at first: each
// action arrives exactly once as the receiver sees it, signed, with the
// retries in the delivery log. Pending actions wait for approval; rejected
// ones never go.
func TestWebhookDelivery(t *testing.T) {
	rc := newReceiver(t, "s3cret")
	rc.set(3, false)
	ts := newTestServer(t, nil)
	ts.putReactions(rc.srv.URL)
	at := testNow.Add(-time.Hour)
	ts.ingest(purchase("e-1", "c-1", at, 60), purchase("e-2", "c-1", at, 50), purchase("e-3", "c-2", at, 150),
		complaint("e-4", "c-3", at, "late"), complaint("e-5", "c-4", at, "rude"))

	offers := ts.actions("rule=welcome_big")
	pending := ts.actions("status=pending")
	if len(offers) != 2 || len(pending) != 2 {
		t.Fatalf("%d offers and %d pending alerts, want 2 and 2", len(offers), len(pending))
	}
	// Tags do not go to crm (kinds: offer, alert); pending alerts wait.
	eventually(t, func() (bool, string) {
		d := ts.deliveries("status=delivered")
		return len(d) == 2, fmt.Sprintf("%d deliveries delivered, want 2: %+v", len(d), ts.deliveries(""))
	})
	attempts := 0
	for _, d := range ts.deliveries("") {
		if d.Webhook != "crm" || d.Status != twinhub.DeliveryDelivered || d.Attempts != len(d.Log) || d.Delivered.IsZero() || d.LastStatus != 204 {
			t.Errorf("delivery %+v, want delivered to crm with its attempts logged", d)
		}
		for i, a := range d.Log {
			if (i < len(d.Log)-1) != (a.Status == 500 && a.Error == "500 Internal Server Error: try again later") {
				t.Errorf("delivery %d attempt %d: %+v", d.ID, i, a)
			}
		}
		attempts += d.Attempts
	}
	if attempts != 5 {
		t.Errorf("%d attempts in the delivery log, want 5 (3 failed, 2 delivered)", attempts)
	}

	// Approve one alert, reject the other.
	approve := fmt.Sprintf("/v1/actions/%d/approve", pending[0].ID)
	reject := fmt.Sprintf("/v1/actions/%d/reject", pending[1].ID)
	p := wantProblem(t, ts.do("POST", approve, []byte(`{"note":"who am I"}`)), 400, "invalid")
	if p.Field != "by" {
		t.Errorf("approval without by: %+v, want field by", p)
	}
	wantProblem(t, ts.do("POST", approve, nil), 400, "invalid")
	wantProblem(t, ts.do("POST", approve, []byte(`{"by":"alice","why":"typo"}`)), 400, "invalid")
	wantProblem(t, ts.do("POST", "/v1/actions/999999/approve", []byte(`{"by":"alice"}`)), 404, "not_found")
	r := ts.do("POST", approve, []byte(`{"by":"alice","note":"call her"}`))
	var decided twinhub.Action
	if r.status != 200 || json.Unmarshal(r.body, &decided) != nil || decided.Status != twinhub.ActionApproved ||
		decided.Decision == nil || decided.Decision.By != "alice" || decided.Decision.Note != "call her" {
		t.Fatalf("approve = %v", r)
	}
	wantProblem(t, ts.do("POST", approve, []byte(`{"by":"bob"}`)), 409, "conflict")
	wantProblem(t, ts.do("POST", approve[:len(approve)-len("approve")]+"reject", []byte(`{"by":"bob"}`)), 409, "conflict")
	if r := ts.do("POST", reject, []byte(`{"by":"bob"}`)); r.status != 200 {
		t.Fatalf("reject = %v", r)
	}
	// A later offer: once it is delivered, the dispatcher has read the
	// decisions logged before it.
	ts.ingest(purchase("e-6", "c-5", at, 200))
	later := ts.actions("rule=welcome_big&twin=c-5")
	if len(later) != 1 {
		t.Fatalf("c-5's offers: %+v", later)
	}
	for _, a := range []twinhub.Action{pending[0], later[0]} {
		eventually(t, func() (bool, string) {
			d := ts.deliveries(fmt.Sprintf("action=%d", a.ID))
			return len(d) == 1 && d[0].Status == twinhub.DeliveryDelivered, fmt.Sprintf("deliveries of action %d: %+v", a.ID, d)
		})
	}
	if d := ts.deliveries(fmt.Sprintf("action=%d", pending[1].ID)); len(d) != 0 {
		t.Errorf("the rejected alert was delivered: %+v", d)
	}

	reqs, processed, dups := rc.snapshot()
	want := map[string]int{offers[0].Key: 1, offers[1].Key: 1, pending[0].Key: 1, later[0].Key: 1}
	if !maps(processed, want) {
		t.Errorf("the receiver processed %v, want each of %v once", processed, want)
	}
	if dups != 0 {
		t.Errorf("%d actions were sent again after a 2xx answer", dups)
	}
	for _, rq := range reqs {
		if !rq.signed || !rq.valid || !rq.fresh || rq.key == "" || rq.key != rq.action.Key || rq.delivery == "" {
			t.Errorf("request %+v: want a valid, fresh signature and the action's key as Idempotency-Key", rq)
		}
		if rq.status == 204 && rq.action.Status != twinhub.ActionFiredStatus && rq.action.Status != twinhub.ActionApproved {
			t.Errorf("delivered an action in status %s", rq.action.Status)
		}
	}

	var hooks struct {
		Webhooks []struct {
			Name       string
			URL        string
			Kinds      []string
			Signed     bool
			Secret     string
			Deliveries map[string]int64
		} `json:"webhooks"`
	}
	ts.getJSON("/v1/webhooks", &hooks)
	if len(hooks.Webhooks) != 1 || hooks.Webhooks[0].Name != "crm" || hooks.Webhooks[0].URL != rc.srv.URL || !hooks.Webhooks[0].Signed ||
		hooks.Webhooks[0].Deliveries["delivered"] != 4 || hooks.Webhooks[0].Deliveries["dead"] != 0 {
		t.Errorf("GET /v1/webhooks = %+v", hooks)
	}
	if r := ts.get("/v1/webhooks"); strings.Contains(string(r.body), "s3cret") {
		t.Errorf("GET /v1/webhooks shows the secret: %s", r.body)
	}
	metrics := string(ts.get("/metrics").body)
	for _, want := range []string{
		`twinhub_webhook_deliveries_total{outcome="delivered",webhook="crm"} 4`,
		`twinhub_webhook_deliveries_total{outcome="failed",webhook="crm"} 3`,
		`twinhub_actions_total{kind="alert",status="approved"} 1`,
		`twinhub_actions_total{kind="offer",status="fired"} 3`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestWebhookDeadAndRetry checks that a receiver that never recovers makes
// deliveries dead after the last attempt, listed as dead, and that a retry
// by hand delivers them once it is back.
func TestWebhookDeadAndRetry(t *testing.T) {
	rc := newReceiver(t, "s3cret")
	rc.set(0, true)
	ts := newTestServer(t, nil)
	ts.putReactions(rc.srv.URL)
	ts.ingest(purchase("e-1", "c-1", testNow.Add(-time.Hour), 150))
	var dead []twinhub.Delivery
	eventually(t, func() (bool, string) {
		dead = ts.deliveries("status=dead")
		return len(dead) == 1, fmt.Sprintf("dead deliveries: %+v", ts.deliveries(""))
	})
	d := dead[0]
	if d.Attempts != 4 || len(d.Log) != 4 || d.LastStatus != 503 || !strings.HasPrefix(d.LastError, "503 Service Unavailable") || !d.NextAttempt.IsZero() {
		t.Errorf("dead delivery %+v, want 4 attempts answered 503", d)
	}
	for i := 1; i < len(d.Log); i++ {
		if d.Log[i].At.Before(d.Log[i-1].At.Add(2 * time.Millisecond)) {
			t.Errorf("attempt %d at %s, too soon after %s: no backoff", i, d.Log[i].At, d.Log[i-1].At)
		}
	}
	wantProblem(t, ts.do("POST", "/v1/deliveries/999/retry", nil), 404, "not_found")

	rc.set(0, false)
	r := ts.do("POST", fmt.Sprintf("/v1/deliveries/%d/retry", d.ID), nil)
	var retried twinhub.Delivery
	if r.status != 202 || json.Unmarshal(r.body, &retried) != nil || retried.Status != twinhub.DeliveryPending || retried.Attempts != 0 {
		t.Fatalf("retry = %v, want 202 and the delivery pending with its attempts reset", r)
	}
	eventually(t, func() (bool, string) {
		var got twinhub.Delivery
		ts.getJSON(fmt.Sprintf("/v1/deliveries/%d", d.ID), &got)
		return got.Status == twinhub.DeliveryDelivered && got.Attempts == 1 && len(got.Log) == 5, fmt.Sprintf("after retry: %+v", got)
	})
	if dead := ts.deliveries("status=dead"); len(dead) != 0 {
		t.Errorf("still dead after retry: %+v", dead)
	}
	wantProblem(t, ts.do("POST", fmt.Sprintf("/v1/deliveries/%d/retry", d.ID), nil), 409, "conflict")
	if _, processed, dups := rc.snapshot(); len(processed) != 1 || processed[d.ActionKey] != 1 || dups != 0 {
		t.Errorf("the receiver processed %v, want %s once", processed, d.ActionKey)
	}
	wantProblem(t, ts.get("/v1/deliveries?status=lost"), 400, "invalid")
}

// TestDispatcherRestart stops a dispatcher while its deliveries are
// pending and starts another on the same store: it resumes them, does not
// derive them again, follows on from where the first stopped, and every
// action reaches the receiver once.
func TestDispatcherRestart(t *testing.T) {
	rc := newReceiver(t, "s3cret")
	rc.set(0, true) // down while the first dispatcher runs
	ts := newTestServer(t, func(o *twhttp.Options) { o.Webhooks = nil })
	start := func() *twhttp.Dispatcher {
		d := twhttp.NewDispatcher(twhttp.DispatcherOptions{Engine: ts.e, Store: ts.db, BackoffBase: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
			MaxAttempts: 1000, Logger: slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	stored := func(status twinhub.DeliveryStatus) []twinhub.Delivery {
		var out []twinhub.Delivery
		if err := ts.db.Deliveries(status, 0, func(d twinhub.Delivery) bool { out = append(out, d); return true }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := start()
	ts.putReactions(rc.srv.URL)
	at := testNow.Add(-time.Hour)
	for i := range 5 {
		ts.ingest(purchase(fmt.Sprintf("e-%d", i), fmt.Sprintf("c-%d", i), at, 100))
	}
	eventually(t, func() (bool, string) {
		ds := stored("")
		tried := 0
		for _, d := range ds {
			if d.Attempts > 0 {
				tried++
			}
		}
		return len(ds) == 5 && tried == 5, fmt.Sprintf("%d deliveries, %d tried", len(ds), tried)
	})
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	before := stored("")
	time.Sleep(30 * time.Millisecond)
	if after := stored(""); !slices.EqualFunc(before, after, func(a, b twinhub.Delivery) bool { return a.Attempts == b.Attempts }) {
		t.Fatalf("deliveries were attempted after Close")
	}

	rc.set(0, false)
	second := start()
	ts.ingest(purchase("e-5", "c-5", at, 100)) // followed on from the cursor
	eventually(t, func() (bool, string) {
		d := stored(twinhub.DeliveryDelivered)
		return len(d) == 6, fmt.Sprintf("%d of 6 delivered", len(d))
	})
	if all := stored(""); len(all) != 6 {
		t.Errorf("%d deliveries after the restart, want 6: the log was derived again", len(all))
	}
	// An attempt that Close cut short may have reached the receiver, which
	// then sees it again: at least once, deduplicated by its key.
	_, processed, _ := rc.snapshot()
	offers := ts.actions("rule=welcome_big")
	if len(processed) != 6 || len(offers) != 6 {
		t.Fatalf("the receiver processed %v; %d offers", processed, len(offers))
	}
	for _, a := range offers {
		if processed[a.Key] != 1 {
			t.Errorf("action %s processed %d times, want once", a.Key, processed[a.Key])
		}
	}

	// Eight days on, a dispatcher that starts prunes what was delivered
	// (the retention is a week) and resends nothing.
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	later := twhttp.NewDispatcher(twhttp.DispatcherOptions{Engine: ts.e, Store: ts.db,
		Now: func() time.Time { return time.Now().Add(8 * 24 * time.Hour) }})
	if err := later.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { later.Close() })
	eventually(t, func() (bool, string) {
		n := len(stored(""))
		return n == 0, fmt.Sprintf("%d deliveries left", n)
	})
	if _, processed, _ := rc.snapshot(); len(processed) != 6 {
		t.Errorf("the receiver processed %d actions after the prune, want still 6", len(processed))
	}
}
