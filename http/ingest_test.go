package http_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	twhttp "github.com/twinhub/twinhub/http"
)

func TestIngestSingle(t *testing.T) {
	ts := newTestServer(t, nil)
	ev := purchase("e-1", "c-1", testNow.Add(-time.Hour), 59.9)

	for _, tc := range []struct {
		name    string
		headers []string
		body    string
		want    string
	}{
		{"json", []string{"Content-Type", "application/json"}, ev, `{"status":"accepted","id":"e-1"}`},
		{"retry is a duplicate", []string{"Content-Type", "application/json; charset=utf-8"}, ev, `{"status":"duplicate","id":"e-1"}`},
		{"one line without a content type", nil, purchase("e-2", "c-1", testNow.Add(-2*time.Hour), 10) + "\n", `{"status":"accepted","id":"e-2"}`},
		{"pretty-printed json", []string{"Content-Type", "application/json"},
			"{\n  \"id\": \"e-3\",\n  \"type\": \"profile\",\n  \"customer_id\": \"c-1\",\n  \"name\": \"Ada\"\n}\n", `{"status":"accepted","id":"e-3"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do("POST", "/v1/events", []byte(tc.body), tc.headers...)
			if r.status != 200 || strings.TrimSpace(string(r.body)) != tc.want {
				t.Fatalf("POST = %v, want 200 %s", r, tc.want)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}

	t.Run("rejected", func(t *testing.T) {
		r := ts.do("POST", "/v1/events", []byte(`{"id":"e-8","type":"purchase","customer_id":"c-1","amount":"12","product_id":"p-1"}`), "Content-Type", "application/json")
		p := wantProblem(t, r, 400, "invalid")
		if p.Field != "amount" || p.Reason != `expected number, found string "12"` || p.Index == nil || *p.Index != 0 || p.ID != "e-8" {
			t.Errorf("problem %s, want field amount, reason about the string \"12\", index 0, id e-8", r.body)
		}
		if !strings.Contains(p.Detail, "amount") {
			t.Errorf("detail %q does not name the field", p.Detail)
		}
	})

	var v twinView
	ts.getJSON("/v1/twins/c-1", &v)
	if got := v.Aggregates["spend_total"]; got != 69.9 {
		t.Errorf("spend_total = %v, want 69.9 (e-1 once, e-2; the duplicate and the rejection not counted)", got)
	}
	if a := v.Attributes["name"]; a.Value != "Ada" || a.Source != twhttp.DefaultSource || a.EventID != "e-3" {
		t.Errorf("attribute name = %+v, want Ada from e-3 with source %q", a, twhttp.DefaultSource)
	}
}

// TestIngestBatch sends one batch of good and bad records and checks every
// record's outcome, and that the good ones were applied despite the bad.
func TestIngestBatch(t *testing.T) {
	ts := newTestServer(t, nil)
	if r := ts.postNDJSON("/v1/events", purchase("e-0", "c-1", testNow.Add(-48*time.Hour), 5)); r.Accepted != 1 {
		t.Fatalf("first batch: %+v", r)
	}

	type rec struct {
		line   string
		id     string // the id the answer reports; "" when unreadable
		status string // "" means accepted
		field  string
		reason string // a substring of the reason
	}
	recs := []rec{
		{line: purchase("e-1", "c-1", testNow.Add(-time.Hour), 10), id: "e-1"},
		{line: purchase("e-0", "c-1", testNow.Add(-48*time.Hour), 5), id: "e-0", status: "duplicate"},
		{line: `{"id":"e-2","type":"purchase","customer_id":"c-1","amount":`, status: "rejected", reason: "malformed JSON"},
		{line: `{"id":"e-3","type":"purchase","customer_id":"c-1","amount":"12","product_id":"p-1"}`, id: "e-3", status: "rejected", field: "amount", reason: `expected number, found string "12"`},
		{line: purchase("e-4", "c-2", testNow.Add(-time.Hour), 20), id: "e-4"},
		{line: `{"id":"e-5","type":"purchase","amount":1,"product_id":"p-1"}`, id: "e-5", status: "rejected", field: "customer_id", reason: "missing"},
		{line: `{"id":"e-6","customer_id":"c-1","amount":1}`, status: "rejected", field: "type", reason: "missing"},
		{line: `{"id":"e-7","type":"teleport","customer_id":"c-1"}`, status: "rejected", field: "type", reason: `unknown event type "teleport"`},
		{line: `{"id":"e-8","type":"view","customer_id":"c-1","colour":"red"}`, id: "e-8", status: "rejected", field: "colour", reason: "unknown field"},
		{line: "{\"id\":\"e-9\",\"type\":\"view\",\"customer_id\":\"c-\xff\"}", status: "rejected", reason: "not valid UTF-8"},
		{line: `{"id":"e-10","type":"view","customer_id":"c-1","time":"3000-01-01T00:00:00Z"}`, id: "e-10", status: "rejected", field: "time", reason: "3000-01-01T00:00:00Z is more than 24h0m0s in the future"},
		{line: `{"id":"e-11","type":"view","customer_id":"c-1","time":"1066-10-14T09:00:00Z"}`, id: "e-11", status: "rejected", field: "time", reason: "1066-10-14T09:00:00Z is before the schema's min_time"},
		{line: `[1,2,3]`, status: "rejected", reason: "must be a JSON object"},
		{line: purchase("e-12", "c-1", testNow.Add(-3*time.Hour), 30), id: "e-12"},
		{line: purchase("e-12", "c-1", testNow.Add(-3*time.Hour), 30), id: "e-12", status: "duplicate"}, // a retry inside the batch
	}
	lines := make([]string, len(recs))
	for i, r := range recs {
		lines[i] = r.line
	}
	// Blank lines are not records and do not shift the indexes.
	body := strings.Join(lines[:3], "\n") + "\n\n" + strings.Join(lines[3:], "\r\n")

	for round, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("round %d results=all:%v", round+1, all), func(t *testing.T) {
			path := "/v1/events"
			if all {
				path += "?results=all"
			}
			// The second round resends everything: good records are now duplicates.
			got := decodeBatch(t, ts.do("POST", path, []byte(body), "Content-Type", "application/x-ndjson"))
			want := batchResult{Results: []recordResult{}}
			for i, r := range recs {
				status := r.status
				if status == "" {
					status = "accepted"
					if round > 0 {
						status = "duplicate"
					}
				}
				switch status {
				case "accepted":
					want.Accepted++
				case "duplicate":
					want.Duplicates++
				case "rejected":
					want.Rejected++
				}
				if status == "accepted" && !all {
					continue
				}
				// Reasons are compared by substring, below.
				var g recordResult
				if n := len(want.Results); n < len(got.Results) {
					g = got.Results[n]
				}
				want.Results = append(want.Results, recordResult{Index: i, ID: r.id, Status: status, Field: r.field, Reason: g.Reason})
				if !strings.Contains(g.Reason, r.reason) || (status == "rejected") != (g.Reason != "") {
					t.Errorf("record %d (%s): reason %q, want one containing %q", i, r.line, g.Reason, r.reason)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("batch answer (-want +got):\n%s", diff)
			}
		})
	}

	var c1, c2 twinView
	ts.getJSON("/v1/twins/c-1", &c1)
	ts.getJSON("/v1/twins/c-2", &c2)
	if c1.Aggregates["spend_total"] != 45.0 || c1.Aggregates["purchases_total"] != 3.0 {
		t.Errorf("c-1 spend_total %v, purchases_total %v; want 45 and 3 (e-0, e-1, e-12)", c1.Aggregates["spend_total"], c1.Aggregates["purchases_total"])
	}
	if c2.Aggregates["spend_total"] != 20.0 {
		t.Errorf("c-2 spend_total %v, want 20", c2.Aggregates["spend_total"])
	}
}

func TestIngestGzip(t *testing.T) {
	ts := newTestServer(t, nil)
	var lines []string
	for i := range 500 {
		lines = append(lines, purchase(fmt.Sprintf("e-%d", i), fmt.Sprintf("c-%d", i%10), testNow.Add(-time.Duration(i)*time.Minute), 2))
	}
	lines = append(lines, `{"id":"bad","type":"purchase","customer_id":"c-1"}`)
	body := gzipBytes(t, []byte(strings.Join(lines, "\n")))
	got := decodeBatch(t, ts.do("POST", "/v1/events", body, "Content-Type", "application/x-ndjson", "Content-Encoding", "gzip"))
	want := batchResult{Accepted: 500, Rejected: 1, Results: []recordResult{{Index: 500, ID: "bad", Status: "rejected", Field: "amount"}}}
	if len(got.Results) == 1 {
		want.Results[0].Reason = got.Results[0].Reason
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("gzip batch (-want +got):\n%s", diff)
	}
	var v twinView
	ts.getJSON("/v1/twins/c-3", &v)
	if v.Aggregates["spend_total"] != 100.0 {
		t.Errorf("c-3 spend_total = %v, want 100 (50 purchases of 2)", v.Aggregates["spend_total"])
	}

	// A gzip single event.
	r := ts.do("POST", "/v1/events", gzipBytes(t, []byte(purchase("g-1", "c-1", testNow, 1))), "Content-Type", "application/json", "Content-Encoding", "gzip")
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"accepted"`)) {
		t.Errorf("gzip single event = %v", r)
	}
}

func TestIngestErrors(t *testing.T) {
	const limit = 4 << 10
	ts := newTestServer(t, func(o *twhttp.Options) { o.MaxBodyBytes = limit })
	big := []byte(strings.Repeat(purchase("e-1", "c-1", testNow, 1)+"\n", 2*limit/100))
	goodGzip := gzipBytes(t, []byte(purchase("e-1", "c-1", testNow, 1)))

	for _, tc := range []struct {
		name    string
		path    string
		body    []byte
		headers []string
		status  int
		code    string
		detail  string
	}{
		{"empty body", "/v1/events", nil, nil, 400, "invalid", "empty body: send one JSON event or NDJSON lines"},
		{"blank lines", "/v1/events", []byte("\n  \r\n\n"), []string{"Content-Type", "application/x-ndjson"}, 400, "invalid", "empty body: send one JSON event or NDJSON lines"},
		{"empty gzip", "/v1/events", gzipBytes(t, nil), []string{"Content-Encoding", "gzip"}, 400, "invalid", "empty body: send one JSON event or NDJSON lines"},
		{"oversized", "/v1/events", big, []string{"Content-Type", "application/x-ndjson"}, 413, "too_large", "4096 bytes"},
		{"oversized after gunzip", "/v1/events", gzipBytes(t, big), []string{"Content-Type", "application/x-ndjson", "Content-Encoding", "gzip"}, 413, "too_large", "4096 bytes"},
		{"not gzip", "/v1/events", []byte(purchase("e-1", "c-1", testNow, 1)), []string{"Content-Encoding", "gzip"}, 400, "invalid", "malformed gzip body"},
		{"truncated gzip", "/v1/events", goodGzip[:len(goodGzip)-6], []string{"Content-Encoding", "gzip"}, 400, "invalid", "malformed gzip body"},
		{"unknown encoding", "/v1/events", []byte("{}"), []string{"Content-Encoding", "br"}, 400, "invalid", "unsupported Content-Encoding"},
		{"bad results parameter", "/v1/events?results=some", []byte("{}"), nil, 400, "invalid", "results"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := wantProblem(t, ts.do("POST", tc.path, tc.body, tc.headers...), tc.status, tc.code)
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q, want it to contain %q", p.Detail, tc.detail)
			}
			if tc.status == 413 && p.LimitBytes != limit {
				t.Errorf("limit_bytes = %d, want %d", p.LimitBytes, limit)
			}
		})
	}
	p := wantProblem(t, ts.do("PUT", "/v1/schema", big), 413, "too_large")
	if p.LimitBytes != limit {
		t.Errorf("schema limit_bytes = %d", p.LimitBytes)
	}
	// Nothing of the above was applied.
	wantProblem(t, ts.get("/v1/twins/c-1"), 404, "not_found")
}

// TestIngestConcurrent posts batches from several clients at once, which
// exercises the pooled decoders, batches and buffers.
func TestIngestConcurrent(t *testing.T) {
	ts := newTestServer(t, nil)
	const clients, batches, perBatch = 8, 5, 200
	errs := make(chan error, clients)
	for c := range clients {
		go func() {
			for b := range batches {
				var sb strings.Builder
				for i := range perBatch {
					fmt.Fprintln(&sb, purchase(fmt.Sprintf("e-%d-%d-%d", c, b, i), fmt.Sprintf("c-%d", i%17), testNow.Add(-time.Minute), 1))
				}
				fmt.Fprintln(&sb, `{"id":"x","type":"purchase"}`)
				resp, err := nethttp.Post(ts.url+"/v1/events", "application/x-ndjson", strings.NewReader(sb.String()))
				if err != nil {
					errs <- err
					return
				}
				var br batchResult
				err = json.NewDecoder(resp.Body).Decode(&br)
				resp.Body.Close()
				if err != nil || br.Accepted != perBatch || br.Rejected != 1 || len(br.Results) != 1 || br.Results[0].Index != perBatch {
					errs <- fmt.Errorf("client %d batch %d: %+v %v", c, b, br, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var total float64
	for k := range 17 {
		var v twinView
		ts.getJSON(fmt.Sprintf("/v1/twins/c-%d", k), &v)
		total += v.Aggregates["spend_total"].(float64)
	}
	if want := float64(clients * batches * perBatch); total != want {
		t.Errorf("total spend over all twins = %v, want %v", total, want)
	}
}

// FuzzIngestHandler sends arbitrary bodies to POST /v1/events: the answer is
// always a 200 whose counts add up to the records sent, or a 4xx problem;
// never a 500.
func FuzzIngestHandler(f *testing.F) {
	ts := newTestServer(f, nil)
	h := ts.srv.Handler()
	for _, seed := range []string{
		purchase("e-1", "c-1", testNow.Add(-time.Hour), 1),
		purchase("e-1", "c-1", testNow.Add(-time.Hour), 1) + "\n" + `{"id":"e-2","type":"view","customer_id":"c-2"}` + "\n{bad\n",
		"\n\n", "[]", "{}", `{"id":"x","type":"survey","customer_id":"c","score":9}`, "\xff\xfe", `{"id":"é","type":"view","customer_id":"c-\u2028"}`,
	} {
		f.Add([]byte(seed), "")
		f.Add([]byte(seed), "application/x-ndjson")
		f.Add([]byte(seed), "application/json")
	}
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		req := httptest.NewRequest("POST", "/v1/events?results=all", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch {
		case w.Code == 200:
			var br batchResult
			var single struct{ Status, ID string }
			if err := json.Unmarshal(w.Body.Bytes(), &br); err != nil || br.Results == nil {
				if err := json.Unmarshal(w.Body.Bytes(), &single); err != nil || (single.Status != "accepted" && single.Status != "duplicate") {
					t.Fatalf("200 with body %s", w.Body.Bytes())
				}
				return
			}
			if n := br.Accepted + br.Duplicates + br.Rejected; n != len(br.Results) {
				t.Fatalf("counts add up to %d, results hold %d: %s", n, len(br.Results), w.Body.Bytes())
			}
		case w.Code >= 400 && w.Code < 500:
			if w.Header().Get("Content-Type") != "application/problem+json" || !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%d without a problem: %s", w.Code, w.Body.Bytes())
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body.Bytes())
		}
	})
}
