package http_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	nethttp "net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twinhub/twinhub/schema"
)

// shopMapping reads the shop's order lines as CSV; its ids are the default
// ones, SOURCE:FILE:LINE.
const shopMapping = `source: shop
description: Order lines exported from the shop.
format: csv
events:
  - type: purchase
    key: customer
    time: {from: when, format: "2006-01-02 15:04:05"}
    fields:
      amount: amount
      product_id: product
      channel: channel
`

// shopMappingFixed also reads times in RFC 3339.
var shopMappingFixed = strings.Replace(shopMapping, `{from: when, format: "2006-01-02 15:04:05"}`, "when", 1)

const shopCSV = "customer,when,amount,product,channel\n" +
	"c-1,2026-11-19 10:00:00,10.00,p-1,web\n" + // line 2
	"c-1,2026-11-19 11:00:00,abc,p-2,web\n" + // line 3: amount is not a number
	"c-2,2026-11-19T12:00:00Z,5.00,p-3,app\n" + // line 4: time not in the mapping's format
	"c-3,2026-11-19T13:00:00Z,2.50,p-4,store\n" + // line 5: the same
	"c-3,2026-11-19 14:00:00,1.00\n" + // line 6: two fields short
	"c-4,2026-11-19 15:00:00,3.00,p-6,store\n" // line 7

// appMapping reads app views as NDJSON.
const appMapping = `source: app
format: ndjson
events:
  - type: view
    id: "app-{event_id}"
    key: user
    time: ts
    fields: {product_id: product, channel: {const: app}}
`

// ordersMapping makes one purchase per item of a JSON order.
const ordersMapping = `source: orders
format: json
events:
  - type: purchase
    each: items
    key: customer
    time: at
    fields: {amount: item.price, product_id: item.sku}
`

type sourceInfo struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Format      string   `json:"format"`
	Events      []string `json:"events"`
	File        string   `json:"file"`
	Error       string   `json:"error"`
	YAML        string   `json:"yaml"`
}

type rejection struct {
	File       string `json:"file"`
	Line       int    `json:"line"`
	Record     int    `json:"record"`
	Field      string `json:"field"`
	Reason     string `json:"reason"`
	DeadLetter uint64 `json:"dead_letter"`
}

type importAnswer struct {
	Source     string      `json:"source"`
	File       string      `json:"file"`
	Records    int         `json:"records"`
	Skipped    int         `json:"skipped"`
	Rejected   int         `json:"rejected"`
	Events     int         `json:"events"`
	Duplicates int         `json:"duplicates"`
	Rejections []rejection `json:"rejections"`
	TookMS     *int64      `json:"took_ms"`
}

type deadLetter struct {
	ID       uint64   `json:"id"`
	Time     string   `json:"time"`
	Source   string   `json:"source"`
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Record   int      `json:"record"`
	Field    string   `json:"field"`
	Reason   string   `json:"reason"`
	Raw      string   `json:"raw"`
	Header   []string `json:"header"`
	Attempts int      `json:"attempts"`
}

type deadLetterPage struct {
	DeadLetters []deadLetter     `json:"deadletters"`
	Counts      map[string]int64 `json:"counts"`
	NextCursor  string           `json:"next_cursor"`
}

type replayAnswer struct {
	Replayed   int      `json:"replayed"`
	Failed     int      `json:"failed"`
	Events     int      `json:"events"`
	Duplicates int      `json:"duplicates"`
	Errors     []string `json:"errors"`
	TookMS     *int64   `json:"took_ms"`
}

// putSource puts a mapping and fails unless it is answered 200.
func (ts *testServer) putSource(name, yaml string) sourceInfo {
	ts.tb.Helper()
	r := ts.do("PUT", "/v1/sources/"+name, []byte(yaml), "Content-Type", "application/yaml")
	if r.status != nethttp.StatusOK {
		ts.tb.Fatalf("PUT /v1/sources/%s = %v", name, r)
	}
	var in sourceInfo
	if err := json.Unmarshal(r.body, &in); err != nil {
		ts.tb.Fatalf("PUT /v1/sources/%s: %v in %s", name, err, r.body)
	}
	return in
}

// postRecords posts body to a source's records and decodes the 200 answer.
func (ts *testServer) postRecords(path string, body []byte) importAnswer {
	ts.tb.Helper()
	r := ts.do("POST", path, body)
	if r.status != nethttp.StatusOK {
		ts.tb.Fatalf("POST %s = %v", path, r)
	}
	var a importAnswer
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		ts.tb.Fatalf("POST %s: %v in %s", path, err, r.body)
	}
	if a.TookMS == nil {
		ts.tb.Errorf("POST %s: no took_ms in %s", path, r.body)
	}
	return a
}

func (ts *testServer) replay(query string) replayAnswer {
	ts.tb.Helper()
	r := ts.do("POST", "/v1/deadletters/replay"+query, nil)
	if r.status != nethttp.StatusOK {
		ts.tb.Fatalf("POST /v1/deadletters/replay%s = %v", query, r)
	}
	var a replayAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		ts.tb.Fatalf("replay answer %s: %v", r.body, err)
	}
	if a.TookMS == nil {
		ts.tb.Errorf("replay answer %s has no took_ms", r.body)
	}
	a.TookMS = nil
	return a
}

// deadLetters lists every dead letter of src ("" for all), a page at a time.
func (ts *testServer) deadLetters(src string) []deadLetter {
	ts.tb.Helper()
	var all []deadLetter
	cursor := ""
	for range 100 {
		var page deadLetterPage
		ts.getJSON(fmt.Sprintf("/v1/deadletters?source=%s&limit=1000&cursor=%s", src, cursor), &page)
		all = append(all, page.DeadLetters...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
	ts.tb.Fatal("dead letters never end")
	return nil
}

// aggregate returns key's aggregate name; nil when there is no such twin.
func (ts *testServer) aggregate(key, name string) any {
	ts.tb.Helper()
	r := ts.get("/v1/twins/" + key)
	if r.status == nethttp.StatusNotFound {
		return nil
	}
	var v twinView
	if err := json.Unmarshal(r.body, &v); err != nil || r.status != 200 {
		ts.tb.Fatalf("GET /v1/twins/%s = %v", key, r)
	}
	return v.Aggregates[name]
}

func TestPutSource(t *testing.T) {
	ts := newTestServer(t, nil)
	in := ts.putSource("shop", shopMapping)
	if diff := cmp.Diff(sourceInfo{Name: "shop", Description: "Order lines exported from the shop.", Format: "csv", Events: []string{"purchase"}}, in); diff != "" {
		t.Errorf("PUT answer (-want +got):\n%s", diff)
	}
	ts.putSource("app", appMapping)

	t.Run("invalid mapping", func(t *testing.T) {
		bad := strings.Replace(shopMapping, "type: purchase", "type: purchse", 1)
		bad = strings.Replace(bad, "format: csv", "format: cvs", 1)
		p := wantProblem(t, ts.do("PUT", "/v1/sources/shop", []byte(bad)), 400, "invalid")
		if len(p.Problems) != 2 {
			t.Fatalf("problems %+v, want 2 (the format, the type)", p.Problems)
		}
		for i, want := range []string{"cvs", "purchse"} {
			sp := p.Problems[i]
			if sp.Line != lineOf(bad, want) || sp.Column == 0 || !strings.Contains(sp.Message, want) {
				t.Errorf("problem %d = %+v, want it at line %d naming %s", i, sp, lineOf(bad, want), want)
			}
		}
		if !strings.Contains(p.Detail, "mapping") || strings.Contains(p.Detail, "schema") {
			t.Errorf("detail %q, want it to speak of the mapping, not the schema", p.Detail)
		}
		if r := ts.get("/v1/sources/shop?format=yaml"); string(r.body) != shopMapping {
			t.Errorf("after an invalid PUT the mapping is %q, want the one before", r.body)
		}
		// ... and it is still the one records go through.
		a := ts.postRecords("/v1/sources/shop/records?file=check.csv", []byte("customer,when,amount,product,channel\nc-9,2026-11-19 10:00:00,1,p,web\n"))
		if a.Events != 1 {
			t.Errorf("import after an invalid PUT: %+v, want the event in", a)
		}
	})

	t.Run("name differs from the mapping's source", func(t *testing.T) {
		p := wantProblem(t, ts.do("PUT", "/v1/sources/web", []byte(shopMapping)), 400, "invalid")
		if !strings.Contains(p.Detail, `"shop"`) || !strings.Contains(p.Detail, `"web"`) || p.Field != "source" {
			t.Errorf("problem %+v, want field source and a detail naming shop and web", p)
		}
		wantProblem(t, ts.get("/v1/sources/web"), 404, "not_found")
	})

	t.Run("bad requests", func(t *testing.T) {
		wantProblem(t, ts.do("PUT", "/v1/sources/shop", []byte("  \n")), 400, "invalid")
		wantProblem(t, ts.do("PUT", "/v1/sources/events", []byte(strings.Replace(shopMapping, "source: shop", "source: events", 1))), 400, "invalid")
		big := shopMapping + "# " + strings.Repeat("x", 1<<20) + "\n"
		wantProblem(t, ts.do("PUT", "/v1/sources/shop", []byte(big)), 413, "too_large")
		if p := wantProblem(t, ts.get("/v1/sources/shop?format=xml"), 400, "invalid"); p.Parameter != "format" {
			t.Errorf("format=xml: parameter %q, want format", p.Parameter)
		}
	})

	t.Run("lookups", func(t *testing.T) {
		outside := filepath.Join(filepath.Dir(ts.lookupDir), "x.csv")
		if err := os.WriteFile(outside, []byte("sku,category\np-1,shoes\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		withLookup := func(file string) string {
			return strings.Replace(shopMapping, "events:\n",
				"lookups:\n  products: {file: "+file+", key: sku}\njoins:\n  - {lookup: products, on: product, as: p}\nevents:\n", 1) +
				"      category: p.category\n"
		}
		p := wantProblem(t, ts.do("PUT", "/v1/sources/shop", []byte(withLookup("../x.csv"))), 400, "invalid")
		if len(p.Problems) != 1 || !strings.Contains(p.Problems[0].Message, `"../x.csv"`) || !strings.Contains(p.Problems[0].Message, "inside the mapping's directory") ||
			p.Problems[0].Line != lineOf(withLookup("../x.csv"), "x.csv") {
			t.Errorf("lookup ../x.csv: problems %+v, want one at its line saying it must stay inside the mapping's directory", p.Problems)
		}

		// A lookup in the lookup directory joins.
		if err := os.WriteFile(filepath.Join(ts.lookupDir, "products.csv"), []byte("sku,category\np-1,shoes\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		ts.putSource("shop", withLookup("products.csv"))
		a := ts.postRecords("/v1/sources/shop/records?file=lookup.csv", []byte("customer,when,amount,product,channel\nc-8,2026-11-19 10:00:00,1,p-1,web\nc-8,2026-11-19 10:00:00,1,p-2,web\n"))
		if a.Events != 1 || a.Rejected != 1 || !strings.Contains(a.Rejections[0].Reason, `"p-2" not found in lookup products`) {
			t.Errorf("import through a join: %+v, want p-1 in and p-2 rejected as not found", a)
		}
		if got := ts.aggregate("c-8", "top_categories"); !strings.Contains(fmt.Sprint(got), "shoes") {
			t.Errorf("c-8 top_categories = %v, want shoes from the lookup", got)
		}
		ts.putSource("shop", shopMapping)
	})

	t.Run("list and get", func(t *testing.T) {
		var list struct {
			Sources []sourceInfo `json:"sources"`
		}
		ts.getJSON("/v1/sources", &list)
		want := []sourceInfo{
			{Name: "app", Format: "ndjson", Events: []string{"view"}},
			{Name: "shop", Description: "Order lines exported from the shop.", Format: "csv", Events: []string{"purchase"}},
		}
		if diff := cmp.Diff(want, list.Sources); diff != "" {
			t.Errorf("GET /v1/sources (-want +got):\n%s", diff)
		}
		r := ts.get("/v1/sources/shop?format=yaml")
		if r.status != 200 || r.header.Get("Content-Type") != "application/yaml" || string(r.body) != shopMapping {
			t.Errorf("GET ?format=yaml = %v (%s), want 200 application/yaml with the mapping", r, r.header.Get("Content-Type"))
		}
		var one sourceInfo
		ts.getJSON("/v1/sources/shop", &one)
		if one.Name != "shop" || one.Format != "csv" || one.YAML != shopMapping {
			t.Errorf("GET /v1/sources/shop = %+v, want its info and YAML", one)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if r := ts.do("DELETE", "/v1/sources/app", nil); r.status != nethttp.StatusNoContent || len(r.body) != 0 {
			t.Errorf("DELETE /v1/sources/app = %v, want 204", r)
		}
		wantProblem(t, ts.get("/v1/sources/app"), 404, "not_found")
		wantProblem(t, ts.do("DELETE", "/v1/sources/app", nil), 404, "not_found")
		p := wantProblem(t, ts.do("POST", "/v1/sources/app/records", []byte("{}\n")), 404, "not_found")
		if !strings.Contains(p.Detail, "shop") {
			t.Errorf("records of an unknown source: detail %q, want it to list the known source shop", p.Detail)
		}
	})
}

func TestSourceRecords(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.putSource("shop", shopMapping)
	ts.putSource("app", appMapping)
	ts.putSource("orders", ordersMapping)

	p := wantProblem(t, ts.do("POST", "/v1/sources/nope/records", []byte(shopCSV)), 404, "not_found")
	if !strings.Contains(p.Detail, `"nope"`) || !strings.Contains(p.Detail, "app, orders, shop") {
		t.Errorf("unknown source: detail %q, want it to name nope and list app, orders, shop", p.Detail)
	}
	if p := wantProblem(t, ts.do("POST", "/v1/sources/shop/records?file="+strings.Repeat("f", 1025), []byte(shopCSV)), 400, "invalid"); p.Parameter != "file" {
		t.Errorf("a long file name: parameter %q, want file", p.Parameter)
	}

	wantProblem(t, ts.do("POST", "/v1/sources/shop/records", []byte("\x1b\x00compressed"), "Content-Encoding", "br"), 400, "invalid")
	if n := len(ts.deadLetters("")); n != 0 {
		t.Errorf("%d dead letters after a body in an unsupported encoding, want none", n)
	}

	var firstIDs []uint64
	t.Run("csv", func(t *testing.T) {
		a := ts.postRecords("/v1/sources/shop/records?file=orders.csv", []byte(shopCSV))
		if a.Source != "shop" || a.File != "orders.csv" || a.Records != 6 || a.Events != 2 || a.Rejected != 4 || a.Skipped != 0 || a.Duplicates != 0 {
			t.Errorf("answer %+v, want source shop, file orders.csv, 6 records, 2 events, 4 rejected", a)
		}
		var lines []int
		for _, r := range a.Rejections {
			lines = append(lines, r.Line)
			firstIDs = append(firstIDs, r.DeadLetter)
			if r.File != "orders.csv" || r.Reason == "" || r.DeadLetter == 0 {
				t.Errorf("rejection %+v: want file, reason and dead letter id", r)
			}
		}
		if diff := cmp.Diff([]int{3, 4, 5, 6}, lines); diff != "" {
			t.Errorf("rejected lines (-want +got):\n%s", diff)
		}
		if r := a.Rejections[0]; r.Field != "amount" || !strings.Contains(r.Reason, `"abc"`) {
			t.Errorf("line 3 rejected as %+v, want field amount naming abc", r)
		}
		if got := ts.aggregate("c-1", "spend_total"); got != 10.0 {
			t.Errorf("c-1 spend_total = %v, want 10", got)
		}
	})

	t.Run("the same body gzip-compressed", func(t *testing.T) {
		r := ts.do("POST", "/v1/sources/shop/records?file=orders.csv", gzipBytes(t, []byte(shopCSV)), "Content-Encoding", "gzip")
		var a importAnswer
		if err := json.Unmarshal(r.body, &a); err != nil || r.status != 200 {
			t.Fatalf("POST gzip records = %v", r)
		}
		if a.Records != 6 || a.Events != 0 || a.Duplicates != 2 || a.Rejected != 4 {
			t.Errorf("answer %+v, want 6 records, 2 duplicates and the same 4 rejected", a)
		}
		var ids []uint64
		for _, r := range a.Rejections {
			ids = append(ids, r.DeadLetter)
		}
		if diff := cmp.Diff(firstIDs, ids); diff != "" {
			t.Errorf("dead letter ids of the second import (-first +second):\n%s", diff)
		}
		if got := ts.aggregate("c-1", "purchases_total"); got != 1.0 {
			t.Errorf("c-1 purchases_total = %v, want 1", got)
		}
	})

	t.Run("ndjson", func(t *testing.T) {
		body := `{"event_id": 1, "user": "u-1", "ts": "2026-11-19T10:00:00Z", "product": "p-1"}` + "\n" +
			`{"event_id": 2, "user": "u-1", "ts": "2026-11-19T10:01:00Z", "product": ` + "\n" +
			`{"event_id": 3, "user": "u-2", "ts": "2026-11-19T10:02:00Z", "product": "p-2"}` + "\n"
		a := ts.postRecords("/v1/sources/app/records", []byte(body))
		if a.Records != 3 || a.Events != 2 || a.Rejected != 1 || a.Rejections[0].Line != 2 || !strings.Contains(a.Rejections[0].Reason, "malformed JSON") {
			t.Errorf("answer %+v, want 3 records, 2 events, line 2 rejected as malformed JSON", a)
		}
		if got := ts.aggregate("u-1", "events_total"); got != 1.0 {
			t.Errorf("u-1 events_total = %v, want 1", got)
		}
	})

	t.Run("json fan-out is all or nothing", func(t *testing.T) {
		body := `[
  {"customer": "o-1", "at": "2026-11-19T10:00:00Z", "items": [{"sku": "a", "price": 1}, {"sku": "b", "price": 2}]},
  {"customer": "o-2", "at": "2026-11-19T10:00:00Z",
   "items": [{"sku": "c", "price": 3}, {"sku": "d", "price": "x"}, {"sku": "e", "price": 5}]},
  {"customer": "o-3", "at": "2026-11-19T10:00:00Z", "items": [{"sku": "f", "price": 6}]}
]
`
		a := ts.postRecords("/v1/sources/orders/records?file=orders.json", []byte(body))
		if a.Records != 3 || a.Events != 3 || a.Rejected != 1 {
			t.Errorf("answer %+v, want 3 records, 3 events, 1 rejected", a)
		}
		if r := a.Rejections[0]; r.Line != 3 || r.Record != 2 || r.Field != "amount" || !strings.Contains(r.Reason, `"x" is not a number`) {
			t.Errorf("rejection %+v, want line 3, record 2, field amount, naming the price x", r)
		}
		if got := ts.aggregate("o-1", "purchases_total"); got != 2.0 {
			t.Errorf("o-1 purchases_total = %v, want 2", got)
		}
		wantProblem(t, ts.get("/v1/twins/o-2"), 404, "not_found")
		var tl struct {
			Events []any `json:"events"`
		}
		if r := ts.get("/v1/twins/o-2/events"); r.status == 200 {
			json.Unmarshal(r.body, &tl)
			if len(tl.Events) != 0 {
				t.Errorf("o-2 has %d events from its rejected order, want none", len(tl.Events))
			}
		}
	})

	t.Run("a body cut off mid-gzip", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("customer,when,amount,product,channel\n")
		for i := range 3000 {
			fmt.Fprintf(&b, "g-%d,2026-11-19 10:00:00,%d.00,p-%d,web\n", i%7, i%50, i)
		}
		z := gzipBytes(t, []byte(b.String()))
		p := wantProblem(t, ts.do("POST", "/v1/sources/shop/records?file=big.csv", z[:len(z)*2/3]), 400, "invalid")
		var taken int
		m := regexp.MustCompile(`the (\d+) records before it were taken`).FindStringSubmatch(p.Detail)
		if m != nil {
			taken, _ = strconv.Atoi(m[1])
		}
		if taken == 0 || taken >= 3000 {
			t.Fatalf("detail %q, want it to say how many records were taken", p.Detail)
		}
		if !strings.Contains(p.Detail, "gzip") || !strings.Contains(p.Detail, "truncated") {
			t.Errorf("detail %q, want it to say the gzip data is truncated", p.Detail)
		}
		var total float64
		for k := range 7 {
			n, _ := ts.aggregate(fmt.Sprintf("g-%d", k), "purchases_total").(float64)
			total += n
		}
		if int(total) != taken {
			t.Errorf("%v purchases went in, the answer says %d records were taken", total, taken)
		}
		p = wantProblem(t, ts.do("POST", "/v1/sources/shop/records", []byte("\xff\xfec\x00,\x00")), 400, "invalid")
		if !strings.Contains(p.Detail, "convert it to UTF-8") || !strings.Contains(p.Detail, "no record was taken") {
			t.Errorf("a UTF-16 body: detail %q, want it to say to convert it to UTF-8 and that nothing was taken", p.Detail)
		}
		// Sending the whole body again takes the rest, and nothing twice.
		a := ts.postRecords("/v1/sources/shop/records?file=big.csv", z)
		if a.Records != 3000 || a.Events != 3000-taken || a.Duplicates != taken {
			t.Errorf("whole body after the cut: %+v, want %d events and %d duplicates", a, 3000-taken, taken)
		}
	})
}

func TestDeadLetters(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.putSource("shop", shopMapping)
	ts.putSource("app", appMapping)
	ts.postRecords("/v1/sources/shop/records?file=orders.csv", []byte(shopCSV))
	ts.postRecords("/v1/sources/app/records?file=app.ndjson", []byte("{\"event_id\": 1, \"user\": \"u-1\", \"ts\": 12, \"product\": }\n"))

	all := ts.deadLetters("")
	if len(all) != 5 {
		t.Fatalf("%d dead letters, want 5", len(all))
	}
	t.Run("paging", func(t *testing.T) {
		var got []uint64
		cursor, pages := "", 0
		for {
			var page deadLetterPage
			ts.getJSON("/v1/deadletters?limit=2&cursor="+cursor, &page)
			pages++
			if len(page.DeadLetters) > 2 {
				t.Fatalf("page of %d with limit=2", len(page.DeadLetters))
			}
			if diff := cmp.Diff(map[string]int64{"shop": 4, "app": 1}, page.Counts); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
			for _, dl := range page.DeadLetters {
				got = append(got, dl.ID)
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		var want []uint64
		for _, dl := range all {
			want = append(want, dl.ID)
		}
		if pages != 3 || !slices.IsSorted(got) {
			t.Errorf("%d pages of ids %v, want 3 pages in order", pages, got)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ids paged (-want +got):\n%s", diff)
		}
		var page deadLetterPage
		ts.getJSON("/v1/deadletters?source=app", &page)
		if len(page.DeadLetters) != 1 || page.DeadLetters[0].Source != "app" || page.DeadLetters[0].File != "app.ndjson" || page.NextCursor != "" {
			t.Errorf("source=app: %+v, want the one dead letter of app", page)
		}
		if p := wantProblem(t, ts.get("/v1/deadletters?cursor=x"), 400, "invalid"); p.Parameter != "cursor" {
			t.Errorf("cursor=x: parameter %q", p.Parameter)
		}
		if p := wantProblem(t, ts.get("/v1/deadletters?limit=0"), 400, "invalid"); p.Parameter != "limit" {
			t.Errorf("limit=0: parameter %q", p.Parameter)
		}
	})

	line := func(n int) deadLetter {
		t.Helper()
		for _, dl := range ts.deadLetters("shop") {
			if dl.Line == n {
				return dl
			}
		}
		t.Fatalf("no dead letter of shop at line %d", n)
		return deadLetter{}
	}

	t.Run("get one", func(t *testing.T) {
		var dl deadLetter
		ts.getJSON(fmt.Sprint("/v1/deadletters/", line(3).ID), &dl)
		want := deadLetter{ID: line(3).ID, Time: testNow.Format("2006-01-02T15:04:05Z"), Source: "shop", File: "orders.csv", Line: 3, Record: 2, Field: "amount",
			Reason: dl.Reason, Raw: "c-1,2026-11-19 11:00:00,abc,p-2,web", Header: []string{"customer", "when", "amount", "product", "channel"}}
		if diff := cmp.Diff(want, dl); diff != "" {
			t.Errorf("GET dead letter (-want +got):\n%s", diff)
		}
		if !strings.Contains(dl.Reason, `"abc"`) {
			t.Errorf("reason %q, want it to name abc", dl.Reason)
		}
		wantProblem(t, ts.get("/v1/deadletters/999999"), 404, "not_found")
		if p := wantProblem(t, ts.get("/v1/deadletters/x"), 400, "invalid"); p.Parameter != "id" {
			t.Errorf("id x: parameter %q", p.Parameter)
		}
	})

	t.Run("delete one", func(t *testing.T) {
		id := line(6).ID
		if r := ts.do("DELETE", fmt.Sprint("/v1/deadletters/", id), nil); r.status != nethttp.StatusNoContent {
			t.Errorf("DELETE dead letter = %v, want 204", r)
		}
		wantProblem(t, ts.get(fmt.Sprint("/v1/deadletters/", id)), 404, "not_found")
		wantProblem(t, ts.do("DELETE", fmt.Sprint("/v1/deadletters/", id), nil), 404, "not_found")
		if n := len(ts.deadLetters("shop")); n != 3 {
			t.Errorf("%d dead letters of shop after deleting one, want 3", n)
		}
	})

	t.Run("replay", func(t *testing.T) {
		// Before the fix, replaying fails again and counts the attempt.
		if a := ts.replay(fmt.Sprint("?id=", line(4).ID)); a.Failed != 1 || a.Replayed != 0 {
			t.Errorf("replay before the fix: %+v, want 1 failed", a)
		}
		if dl := line(4); dl.Attempts != 1 {
			t.Errorf("line 4 after a failed replay: attempts %d, want 1", dl.Attempts)
		}

		ts.putSource("shop", shopMappingFixed)
		id := line(4).ID
		a := ts.replay(fmt.Sprintf("?id=%d&id=%d", id, id)) // named twice, replayed once
		if diff := cmp.Diff(replayAnswer{Replayed: 1, Events: 1}, a); diff != "" {
			t.Errorf("replay of line 4 by id (-want +got):\n%s", diff)
		}
		if got := ts.aggregate("c-2", "spend_total"); got != 5.0 {
			t.Errorf("c-2 spend_total = %v, want 5", got)
		}
		if dl := line(5); dl.Attempts != 0 {
			t.Errorf("line 5, not named by the replay: attempts %d, want 0", dl.Attempts)
		}

		a = ts.replay("?source=shop")
		if diff := cmp.Diff(replayAnswer{Replayed: 1, Failed: 1, Events: 1}, a); diff != "" {
			t.Errorf("replay of shop (-want +got):\n%s", diff)
		}
		left := ts.deadLetters("shop")
		if len(left) != 1 || left[0].Line != 3 || left[0].Attempts != 1 || !strings.Contains(left[0].Reason, `"abc"`) {
			t.Errorf("dead letters of shop left %+v, want line 3, still failing on abc, 1 attempt", left)
		}
		if got := ts.aggregate("c-3", "spend_total"); got != 2.5 {
			t.Errorf("c-3 spend_total = %v, want 2.5", got)
		}
		if app := ts.deadLetters("app"); len(app) != 1 || app[0].Attempts != 0 {
			t.Errorf("app's dead letters after replaying shop: %+v, want the one, untried", app)
		}
		// Replaying again changes nothing and counts nothing twice.
		if a := ts.replay("?source=shop"); a.Replayed != 0 || a.Failed != 1 || a.Events != 0 {
			t.Errorf("second replay of shop: %+v", a)
		}
		if got := ts.aggregate("c-2", "purchases_total"); got != 1.0 {
			t.Errorf("c-2 purchases_total = %v after two replays, want 1", got)
		}

		wantProblem(t, ts.do("POST", "/v1/deadletters/replay?id=999999", nil), 404, "not_found")
		if p := wantProblem(t, ts.do("POST", "/v1/deadletters/replay?id=x", nil), 400, "invalid"); p.Parameter != "id" {
			t.Errorf("replay id=x: parameter %q", p.Parameter)
		}
		// A source that is gone: its dead letters stay, and the answer says why.
		ts.do("DELETE", "/v1/sources/app", nil)
		a = ts.replay("?source=app")
		if a.Replayed != 0 || a.Failed != 0 || len(a.Errors) != 1 || !strings.Contains(a.Errors[0], `no source "app"`) {
			t.Errorf("replay of a deleted source: %+v, want an error naming it", a)
		}
		if n := len(ts.deadLetters("app")); n != 1 {
			t.Errorf("%d dead letters of app after a replay without the source, want 1", n)
		}
	})
}

func TestEventsDeadLetters(t *testing.T) {
	ts := newTestServer(t, nil)
	good := purchase("e-1", "c-1", testNow.Add(-time.Hour), 10)
	mobile := `{"id":"e-2","type":"purchase","customer_id":"c-2","amount":5,"product_id":"p-1","channel":"mobile"}`
	broken := `{"id":"e-3","type":"purchase",`
	body := "\n\n" + good + "\n  \n" + mobile + "\r\n" + broken + "\n"
	r := ts.do("POST", "/v1/events", []byte(body), "Content-Type", "application/x-ndjson")
	br := decodeBatch(t, r)
	if br.Accepted != 1 || br.Rejected != 2 {
		t.Fatalf("batch %+v, want 1 accepted, 2 rejected", br)
	}
	dls := ts.deadLetters("events")
	if len(dls) != 2 {
		t.Fatalf("dead letters of events %+v, want 2", dls)
	}
	for i, want := range []struct {
		line, record int
		raw, field   string
	}{{5, 2, mobile, "channel"}, {6, 3, broken, ""}} {
		dl := dls[i]
		if dl.Line != want.line || dl.Record != want.record || dl.Raw != want.raw || dl.Field != want.field || dl.Reason == "" || dl.File != "" {
			t.Errorf("dead letter %d = %+v, want line %d (its line in the body), record %d, field %q, raw %s", i, dl, want.line, want.record, want.field, want.raw)
		}
		if dl.Time != testNow.Format("2006-01-02T15:04:05Z") {
			t.Errorf("dead letter %d: time %s, want the server's clock %v", i, dl.Time, testNow)
		}
		if lines := strings.Split(body, "\n"); strings.TrimRight(lines[dl.Line-1], "\r") != dl.Raw {
			t.Errorf("line %d of the body is %q, the dead letter's raw %q", dl.Line, lines[dl.Line-1], dl.Raw)
		}
	}

	// One event: its dead letter is at the line it starts on.
	single := `{"id":"e-4","type":"purchase","customer_id":"c-4","amount":-1,"product_id":"p-1"}`
	wantProblem(t, ts.do("POST", "/v1/events", []byte("\n"+single), "Content-Type", "application/json"), 400, "invalid")
	dls = ts.deadLetters("events")
	if len(dls) != 3 || dls[2].Line != 2 || dls[2].Raw != single || dls[2].Field != "amount" {
		t.Errorf("dead letter of a single event: %+v, want line 2, field amount and the event", dls[len(dls)-1])
	}

	// The schema lets channel be mobile: its record replays, the others fail again.
	fixed := strings.ReplaceAll(string(schema.DefaultYAML()), "[web, app, store, call_centre]", "[web, app, store, call_centre, mobile]")
	if r := ts.do("PUT", "/v1/schema", []byte(fixed)); r.status != 200 {
		t.Fatalf("PUT /v1/schema = %v", r)
	}
	a := ts.replay("?source=events")
	if diff := cmp.Diff(replayAnswer{Replayed: 1, Failed: 2, Events: 1}, a); diff != "" {
		t.Errorf("replay of events after the schema fix (-want +got):\n%s", diff)
	}
	if got := ts.aggregate("c-2", "spend_total"); got != 5.0 {
		t.Errorf("c-2 spend_total = %v, want 5", got)
	}
	var tl struct {
		Events []struct {
			Event map[string]any `json:"event"`
		} `json:"events"`
	}
	ts.getJSON("/v1/twins/c-2/events", &tl)
	if len(tl.Events) != 1 || tl.Events[0].Event["id"] != "e-2" {
		t.Errorf("c-2's timeline %+v, want the replayed e-2", tl.Events)
	}
	left := ts.deadLetters("events")
	if len(left) != 2 || left[0].Line != 6 || left[1].Line != 2 || left[0].Attempts != 1 {
		t.Errorf("dead letters of events left %+v, want lines 6 and 2, one attempt each", left)
	}
}

// TestSourceMetrics checks what /metrics says about sources after imports,
// a replay and a deleted dead letter.
func TestSourceMetrics(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.putSource("shop", strings.Replace(shopMapping, "  - type: purchase\n", "  - type: purchase\n    when: record.product != \"p-6\"\n", 1))
	ts.putSource("app", appMapping)
	ts.postRecords("/v1/sources/shop/records?file=orders.csv", []byte(shopCSV))               // 6 read, 1 skipped (line 7), 4 rejected
	ts.postRecords("/v1/sources/shop/records?file=orders.csv", gzipBytes(t, []byte(shopCSV))) // the same again
	ts.postRecords("/v1/sources/app/records", []byte("{\"event_id\": 1, \"user\": \"u-1\", \"ts\": \"2026-11-19T10:00:00Z\"}\nnot json\n"))
	ts.postNDJSON("/v1/events", `{"id":"e-1","type":"purchase"}`)

	ts.putSource("shop", strings.Replace(shopMappingFixed, "  - type: purchase\n", "  - type: purchase\n    when: record.product != \"p-6\"\n", 1))
	ts.replay("?source=shop") // lines 4 and 5 leave
	ts.do("DELETE", fmt.Sprint("/v1/deadletters/", ts.deadLetters("app")[0].ID), nil)

	r := ts.get("/metrics")
	text := string(r.body)
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{`twinhub_source_records_total{outcome="read",source="shop"}`, 12},
		{`twinhub_source_records_total{outcome="skipped",source="shop"}`, 2},
		{`twinhub_source_records_total{outcome="rejected",source="shop"}`, 8},
		{`twinhub_source_records_total{outcome="read",source="app"}`, 2},
		{`twinhub_source_records_total{outcome="rejected",source="app"}`, 1},
		{`twinhub_deadletters{source="shop"}`, 2},
		{`twinhub_deadletters{source="events"}`, 1},
	} {
		got, ok := sample(text, tc.series)
		if !ok {
			t.Errorf("%s missing from /metrics", tc.series)
		} else if got != tc.want {
			t.Errorf("%s = %v, want %v", tc.series, got, tc.want)
		}
	}
	for _, gone := range []string{`twinhub_deadletters{source="app"}`, `twinhub_source_records_total{outcome="skipped",source="app"}`} {
		if v, ok := sample(text, gone); ok {
			t.Errorf("%s = %v, want it absent", gone, v)
		}
	}
}

// TestSourceRecordsMultipart uploads a CSV file as a browser or
// `curl -F file=@orders.csv` would: the form's file part is the input and
// its file name names the records' positions.
func TestSourceRecordsMultipart(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.putSource("shop", shopMapping)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, err := mw.CreateFormFile("file", "upload/orders.csv")
	if err != nil {
		t.Fatal(err)
	}
	fw.Write([]byte(shopCSV))
	mw.Close()
	r := ts.do("POST", "/v1/sources/shop/records", form.Bytes(), "Content-Type", mw.FormDataContentType())
	if r.status != nethttp.StatusOK {
		t.Fatalf("multipart upload = %v", r)
	}
	var a importAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatal(err)
	}
	if a.File != "orders.csv" || a.Records != 6 || a.Events != 2 || a.Rejected != 4 {
		t.Errorf("answer %+v, want file orders.csv, 6 records, 2 events, 4 rejected", a)
	}
	for _, d := range ts.deadLetters("shop") {
		if d.File != "orders.csv" {
			t.Errorf("dead letter at line %d names file %q, want orders.csv", d.Line, d.File)
		}
	}
	p := wantProblem(t, ts.do("POST", "/v1/sources/shop/records", []byte("not a form"), "Content-Type", "multipart/form-data; boundary=x"), 400, "invalid")
	if !strings.Contains(p.Detail, "multipart") {
		t.Errorf("broken form: detail %q, want it to say multipart", p.Detail)
	}
}
