package source_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/engine"
	"github.com/twinhub/twinhub/mapping"
	"github.com/twinhub/twinhub/schema"
	"github.com/twinhub/twinhub/source"
	"github.com/twinhub/twinhub/store/pebble"
)

var testNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// env is a real engine over Pebble in a temp dir, with an Importer that
// keeps its dead letters in the same store.
type env struct {
	tb testing.TB
	db *pebble.DB
	e  *engine.Engine
	im *source.Importer
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	db, err := pebble.Open(tb.TempDir(), pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	e, err := engine.Open(engine.Options{
		Store:  db,
		Now:    func() time.Time { return testNow },
		Shards: 2,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		db.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := e.Close(); err != nil {
			tb.Errorf("close engine: %v", err)
		}
		if err := db.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return &env{tb: tb, db: db, e: e, im: &source.Importer{Sink: e, DeadLetters: db, Now: e.WallClock}}
}

// mapping compiles src against the engine's active schema.
func (v *env) mapping(src string) *mapping.Mapping {
	v.tb.Helper()
	m, err := mapping.Parse([]byte(src), v.e.Schema(), mapping.Options{Dir: v.tb.TempDir()})
	if err != nil {
		v.tb.Fatalf("mapping:\n%v", err)
	}
	return m
}

func (v *env) importString(m *mapping.Mapping, input, file string) source.Summary {
	v.tb.Helper()
	sum, err := v.im.Import(context.Background(), m, strings.NewReader(input), file, nil)
	if err != nil {
		v.tb.Fatalf("Import(%s): %v", file, err)
	}
	return sum
}

// aggregate returns key's aggregate name as a number; 0 when there is no
// such twin.
func (v *env) aggregate(key, name string) float64 {
	v.tb.Helper()
	tw, err := v.e.Twin(key)
	if twinhub.ErrorCode(err) == twinhub.ENOTFOUND {
		return 0
	}
	if err != nil {
		v.tb.Fatal(err)
	}
	switch n := tw.Aggregates[name].(type) {
	case float64:
		return n
	case int64:
		return float64(n)
	case int:
		return float64(n)
	case nil:
		return 0
	default:
		v.tb.Fatalf("%s's %s is a %T", key, name, n)
		return 0
	}
}

// eventIDs returns the ids of key's archived events, oldest first.
func (v *env) eventIDs(key string) []string {
	v.tb.Helper()
	recs, err := v.e.Timeline(key, time.Unix(0, 0), testNow.Add(48*time.Hour), 1000)
	if err != nil {
		v.tb.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		var ev struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(r.Raw, &ev); err != nil {
			v.tb.Fatalf("archived event %s: %v", r.Raw, err)
		}
		ids = append(ids, ev.ID)
	}
	return ids
}

func (v *env) deadLetters(src string) []twinhub.DeadLetter {
	v.tb.Helper()
	dls, err := v.db.DeadLetters(src, 0, 0)
	if err != nil {
		v.tb.Fatal(err)
	}
	return dls
}

// ordersMapping reads order lines; a line with quantity 0 makes no event.
// Its ids are the default ones, SOURCE:FILE:LINE.
const ordersMapping = `source: shop
format: csv
events:
  - type: purchase
    when: record.quantity != "0"
    key: customer
    time: {from: when, format: "2006-01-02 15:04:05"}
    fields:
      amount: amount
      product_id: product
`

const ordersCSV = "customer,when,quantity,amount,product\n" +
	"c-1,2026-11-19 10:00:00,1,10.50,p-1\n" + // line 2
	"c-1,2026-11-19 11:00:00,0,0,p-2\n" + // line 3: skipped
	"c-2,2026-11-19 12:00:00,2,abc,p-3\n" + // line 4: amount is not a number
	"c-2,2026-11-19T13:00:00Z,1,4.00,p-4\n" + // line 5: time not in the mapping's format
	"c-3,2026-11-19 14:00:00,1,7.25\n" + // line 6: a field short
	"c-3,2026-11-19 15:00:00,1,1.25,p-6\n" // line 7

func TestImportSummary(t *testing.T) {
	v := newEnv(t)
	m := v.mapping(ordersMapping)

	first := v.importString(m, ordersCSV, "orders.csv")
	if got, want := first.Records, 6; got != want {
		t.Errorf("first import: records %d, want %d", got, want)
	}
	if first.Skipped != 1 || first.Rejected != 3 || first.Events != 2 || first.Duplicates != 0 {
		t.Errorf("first import: %+v, want 1 skipped, 3 rejected, 2 events, 0 duplicates", first)
	}
	var lines []int
	for _, r := range first.Rejections {
		if r.File != "orders.csv" || r.Reason == "" || r.DeadLetter == 0 {
			t.Errorf("rejection %+v: want file orders.csv, a reason and a dead letter id", r)
		}
		lines = append(lines, r.Line)
	}
	if diff := cmp.Diff([]int{4, 5, 6}, lines); diff != "" {
		t.Errorf("rejected lines (-want +got):\n%s", diff)
	}
	if r := first.Rejections[0]; r.Field != "amount" || !strings.Contains(r.Reason, `"abc"`) || r.Record != 3 {
		t.Errorf("rejection of line 4 = %+v, want field amount, record 3, naming the text abc", r)
	}
	if got := v.aggregate("c-1", "spend_total"); got != 10.5 {
		t.Errorf("c-1 spend_total = %v, want 10.5", got)
	}

	second := v.importString(m, ordersCSV, "orders.csv")
	want := source.Summary{Records: 6, Skipped: 1, Rejected: 3, Events: 0, Duplicates: 2}
	got := second
	got.Rejections = nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("second import of the same file (-want +got):\n%s", diff)
	}
	for i, r := range second.Rejections {
		if r.DeadLetter != first.Rejections[i].DeadLetter {
			t.Errorf("line %d rejected again as dead letter %d, first as %d: want the same one", r.Line, r.DeadLetter, first.Rejections[i].DeadLetter)
		}
	}
	if n := len(v.deadLetters("shop")); n != 3 {
		t.Errorf("%d dead letters after importing twice, want 3 (one per rejected record)", n)
	}
	if got := v.aggregate("c-1", "spend_total"); got != 10.5 {
		t.Errorf("c-1 spend_total after importing twice = %v, want 10.5", got)
	}
}

func TestImportDeadLetters(t *testing.T) {
	v := newEnv(t)
	sum := v.importString(v.mapping(ordersMapping), ordersCSV, "orders.csv")
	dls := v.deadLetters("shop")
	if len(dls) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dls))
	}
	dl := dls[0]
	if dl.ID != sum.Rejections[0].DeadLetter || dl.Source != "shop" || dl.File != "orders.csv" || dl.Line != 4 || dl.Record != 3 || dl.Field != "amount" {
		t.Errorf("dead letter %+v, want id %d of source shop, orders.csv line 4, record 3, field amount", dl, sum.Rejections[0].DeadLetter)
	}
	if got, want := string(dl.Raw), "c-2,2026-11-19 12:00:00,2,abc,p-3"; got != want {
		t.Errorf("dead letter raw %q, want the row %q", got, want)
	}
	if diff := cmp.Diff([]string{"customer", "when", "quantity", "amount", "product"}, dl.Header); diff != "" {
		t.Errorf("dead letter header (-want +got):\n%s", diff)
	}
	if !dl.Time.Equal(testNow) {
		t.Errorf("dead letter time %v, want the importer's clock %v", dl.Time, testNow)
	}
	if dls[2].Line != 6 || !strings.HasPrefix(dls[2].Reason, "4 fields") {
		t.Errorf("dead letter of the short row: line %d reason %q, want line 6 and the reason without it", dls[2].Line, dls[2].Reason)
	}
}

// fanOutMapping makes one purchase per element of items.
const fanOutMapping = `source: orders
format: json
events:
  - type: purchase
    each: items
    key: customer
    time: at
    fields:
      amount: item.price
      product_id: item.sku
`

func TestImportFanOutIsAllOrNothing(t *testing.T) {
	v := newEnv(t)
	input := `[
  {"customer": "c-1", "at": "2026-11-19T10:00:00Z", "items": [{"sku": "a", "price": 1}, {"sku": "b", "price": 2}]},
  {"customer": "c-2", "at": "2026-11-19T10:00:00Z",
   "items": [{"sku": "c", "price": 3}, {"sku": "d", "price": -4}, {"sku": "e", "price": 5}]},
  {"customer": "c-3", "at": "2026-11-19T10:00:00Z", "items": [{"sku": "f", "price": 6}]}
]`
	sum := v.importString(v.mapping(fanOutMapping), input, "orders.json")
	if sum.Records != 3 || sum.Rejected != 1 || sum.Events != 3 {
		t.Errorf("summary %+v, want 3 records, 1 rejected, 3 events", sum)
	}
	if len(sum.Rejections) != 1 {
		t.Fatalf("rejections %+v, want one", sum.Rejections)
	}
	rej := sum.Rejections[0]
	if rej.Line != 3 || rej.Field != "amount" || !strings.Contains(rej.Reason, "event 2 of 3") {
		t.Errorf("rejection %+v, want line 3, field amount, naming event 2 of 3", rej)
	}
	for _, tc := range []struct {
		key       string
		purchases float64
	}{{"c-1", 2}, {"c-2", 0}, {"c-3", 1}} {
		if got := v.aggregate(tc.key, "purchases_total"); got != tc.purchases {
			t.Errorf("%s purchases_total = %v, want %v", tc.key, got, tc.purchases)
		}
	}
	if ids := v.eventIDs("c-2"); len(ids) != 0 {
		t.Errorf("c-2 has events %v from its rejected record, want none", ids)
	}
	dls := v.deadLetters("orders")
	if len(dls) != 1 || !strings.Contains(string(dls[0].Raw), `"sku": "e"`) || !strings.HasPrefix(string(dls[0].Raw), "{") {
		t.Fatalf("dead letters %+v, want the whole c-2 record", dls)
	}
}

// fixedOrdersMapping reads the time of line 5 of ordersCSV, which
// ordersMapping rejects.
var fixedOrdersMapping = strings.Replace(ordersMapping, `{from: when, format: "2006-01-02 15:04:05"}`, "when", 1)

func TestReplay(t *testing.T) {
	for _, tc := range []struct {
		name string
		// importAgain imports the file again with the fixed mapping
		// before the replay, so that line 5 is in already.
		importAgain bool
		want        source.ReplaySummary
	}{
		{"replayed after the fix", false, source.ReplaySummary{Replayed: 1, Failed: 2, Events: 1}},
		{"imported again before the replay", true, source.ReplaySummary{Replayed: 1, Failed: 2, Duplicates: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newEnv(t)
			v.importString(v.mapping(ordersMapping), ordersCSV, "orders.csv")
			fixed := v.mapping(fixedOrdersMapping)
			if tc.importAgain {
				if sum := v.importString(fixed, ordersCSV, "orders.csv"); sum.Events != 1 || sum.Duplicates != 2 {
					t.Fatalf("import with the fixed mapping: %+v, want line 5 in and 2 duplicates", sum)
				}
			}
			v.im.Now = func() time.Time { return testNow.Add(time.Minute) }
			sum, err := v.im.Replay(context.Background(), v.deadLetters("shop"), func(string) (*mapping.Mapping, error) { return fixed, nil })
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, sum); diff != "" {
				t.Errorf("replay (-want +got):\n%s", diff)
			}
			// The replayed record has the id it had the first time: it
			// went in once, whichever way.
			if diff := cmp.Diff([]string{"shop:orders.csv:5"}, v.eventIDs("c-2")); diff != "" {
				t.Errorf("c-2's event ids (-want +got):\n%s", diff)
			}
			left := v.deadLetters("shop")
			if len(left) != 2 || left[0].Line != 4 || left[1].Line != 6 {
				t.Fatalf("dead letters left %+v, want lines 4 and 6", left)
			}
			for _, dl := range left {
				if dl.Attempts != 1 || dl.File != "orders.csv" || !dl.Time.Equal(testNow.Add(time.Minute)) {
					t.Errorf("dead letter of line %d: attempts %d, file %q, time %v; want 1, orders.csv and the replay's time", dl.Line, dl.Attempts, dl.File, dl.Time)
				}
			}
			if r := left[0].Reason; !strings.Contains(r, `"abc"`) {
				t.Errorf("dead letter of line 4 after replay: reason %q, want it to name abc", r)
			}
			if r := left[1].Reason; left[1].Line != 6 || !strings.HasPrefix(r, "4 fields") {
				t.Errorf("dead letter of line 6 after replay: line %d reason %q, want line 6 and 4 fields", left[1].Line, r)
			}

			// Replaying again: the same two fail once more.
			sum, err = v.im.Replay(context.Background(), left, func(string) (*mapping.Mapping, error) { return fixed, nil })
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(source.ReplaySummary{Failed: 2}, sum); diff != "" {
				t.Errorf("second replay (-want +got):\n%s", diff)
			}
			for _, dl := range v.deadLetters("shop") {
				if dl.Attempts != 2 {
					t.Errorf("dead letter of line %d: attempts %d after two failed replays", dl.Line, dl.Attempts)
				}
			}
		})
	}
}

func TestReplayUnknownSource(t *testing.T) {
	v := newEnv(t)
	v.importString(v.mapping(ordersMapping), ordersCSV, "orders.csv")
	dls := v.deadLetters("shop")
	sum, err := v.im.Replay(context.Background(), dls, func(name string) (*mapping.Mapping, error) {
		return nil, twinhub.Errorf(twinhub.ENOTFOUND, "no source %q", name)
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Replayed != 0 || sum.Failed != 0 || len(sum.Errors) != 1 || !strings.Contains(sum.Errors[0], `no source "shop"`) {
		t.Errorf("replay without the source: %+v, want one error naming it and nothing tried", sum)
	}
	for _, dl := range v.deadLetters("shop") {
		if dl.Attempts != 0 {
			t.Errorf("dead letter %d: attempts %d, want 0 (never tried)", dl.ID, dl.Attempts)
		}
	}
}

// failingReader returns its data, then err instead of io.EOF.
type failingReader struct {
	data string
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestImportReadError(t *testing.T) {
	v := newEnv(t)
	v.im.BatchRecords = 10
	m := v.mapping(ordersMapping)

	broken := errors.New("connection reset")
	sum, err := v.im.Import(context.Background(), m, &failingReader{err: broken}, "orders.csv", nil)
	if _, ok := errors.AsType[*source.ReadError](err); !ok || !errors.Is(err, broken) || sum.Records != 0 {
		t.Errorf("Import of an input that fails at once = %+v, %v (%T); want no record and a *source.ReadError", sum, err, err)
	} else if got := err.Error(); got != "read input: connection reset" {
		t.Errorf("error %q, want read input: connection reset", got)
	}

	var b strings.Builder
	b.WriteString("customer,when,quantity,amount,product\n")
	for i := range 100 {
		fmt.Fprintf(&b, "c-%d,2026-11-19 10:00:00,1,%d.00,p-1\n", i, i+1)
	}
	input := b.String()
	cut := len(input) / 2
	cut += strings.IndexByte(input[cut:], ',') // in the middle of a row
	complete := strings.Count(input[:cut], "\n") - 1

	sum, err = v.im.Import(context.Background(), m, &failingReader{data: input[:cut], err: broken}, "orders.csv", nil)
	var re *source.ReadError
	if !errors.As(err, &re) || !errors.Is(err, broken) {
		t.Fatalf("Import = %v (%T), want a *source.ReadError wrapping the reader's error", err, err)
	}
	if got := err.Error(); got != "read input: connection reset" {
		t.Errorf("error %q, want read input: connection reset", got)
	}
	if sum.Records != complete || sum.Events != complete || sum.Rejected != 0 {
		t.Errorf("summary %+v, want the %d complete records read and ingested", sum, complete)
	}
	var spend float64
	for i := range 100 {
		spend += v.aggregate(fmt.Sprintf("c-%d", i), "spend_total")
	}
	if want := float64(complete * (complete + 1) / 2); spend != want {
		t.Errorf("total spend %v, want %v: the rows before the break and nothing of the row cut in two", spend, want)
	}
}

func writeFile(tb testing.TB, dir, name, text string) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestRegistryLoadDirDuplicate(t *testing.T) {
	v := newEnv(t)
	dir := t.TempDir()
	a := writeFile(t, dir, "a.yaml", ordersMapping)
	b := writeFile(t, dir, "b.yml", ordersMapping)
	reg, err := source.NewRegistry(v.db, v.e.Schema, dir)
	if err != nil {
		t.Fatal(err)
	}
	err = reg.LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) || !strings.Contains(err.Error(), `"shop"`) {
		t.Errorf("LoadDir with shop defined twice = %v, want an error naming source shop and both files", err)
	}
}

func TestRegistryPut(t *testing.T) {
	v := newEnv(t)
	dir := t.TempDir()
	writeFile(t, dir, "shop.yaml", ordersMapping)
	reg, err := source.NewRegistry(v.db, v.e.Schema, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.LoadDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, src, code, want string
	}{
		{"defined by a file", ordersMapping, twinhub.ECONFLICT, "shop.yaml"},
		{"name differs from source", strings.Replace(ordersMapping, "source: shop", "source: other", 1), twinhub.EINVALID, `"other"`},
		{"reserved name", ordersMapping, twinhub.EINVALID, "reserved"},
		{"invalid mapping", strings.Replace(ordersMapping, "type: purchase", "type: purchse", 1), twinhub.EINVALID, "purchse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "shop"
			switch tc.name {
			case "reserved name":
				name = source.EventsSource
			case "name differs from source":
				name = "web"
			}
			_, err := reg.Put(name, []byte(tc.src))
			if twinhub.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Put(%s) = %v (code %s), want %s naming %s", name, err, twinhub.ErrorCode(err), tc.code, tc.want)
			}
		})
	}
	if err := reg.Delete("shop"); twinhub.ErrorCode(err) != twinhub.ECONFLICT {
		t.Errorf("Delete of a source defined by a file = %v, want ECONFLICT", err)
	}

	// A source put through the registry is kept in the store.
	web := strings.Replace(ordersMapping, "source: shop", "source: web", 1)
	if _, err := reg.Put("web", []byte(web)); err != nil {
		t.Fatal(err)
	}
	again, err := source.NewRegistry(v.db, v.e.Schema, "")
	if err != nil {
		t.Fatal(err)
	}
	if src, err := again.Source("web"); err != nil || string(src) != web {
		t.Errorf("source web after reopening = %q, %v; want the mapping put", src, err)
	}
	if _, err := again.Get("shop"); twinhub.ErrorCode(err) != twinhub.ENOTFOUND || !strings.Contains(err.Error(), "web") {
		t.Errorf("Get(shop) on a registry without the directory = %v, want ENOTFOUND listing web", err)
	}
}

func TestRegistrySchemaChange(t *testing.T) {
	v := newEnv(t)
	reg, err := source.NewRegistry(v.db, v.e.Schema, "")
	if err != nil {
		t.Fatal(err)
	}
	withChannel := strings.Replace(ordersMapping, "      product_id: product\n", "      product_id: product\n      channel: {const: web}\n", 1)
	if _, err := reg.Put("shop", []byte(withChannel)); err != nil {
		t.Fatal(err)
	}
	survey := "source: survey\nformat: ndjson\nevents:\n  - {type: survey, key: c, fields: {score: s}}\n"
	if _, err := reg.Put("survey", []byte(survey)); err != nil {
		t.Fatal(err)
	}

	// Version 2: purchases no longer have a channel.
	v2 := strings.Replace(string(schema.DefaultYAML()), "      channel: {type: enum, values: [web, app, store, call_centre]}\n\n  return:", "\n  return:", 1)
	if v2 == string(schema.DefaultYAML()) {
		t.Fatal("the default schema changed; update this test")
	}
	sc, _, err := v.e.SetSchema([]byte(v2))
	if err != nil {
		t.Fatal(err)
	}
	m, err := reg.Get("survey")
	if err != nil {
		t.Fatalf("Get(survey) after the schema change: %v", err)
	}
	if m.Schema() != sc {
		t.Errorf("Get(survey) returned a mapping compiled against version %d, want %d", m.Schema().Version, sc.Version)
	}
	_, err = reg.Get("shop")
	if twinhub.ErrorCode(err) != twinhub.ECONFLICT || !strings.Contains(err.Error(), "channel") || !strings.Contains(err.Error(), fmt.Sprint("version ", sc.Version)) {
		t.Errorf("Get(shop) after the schema dropped channel = %v, want ECONFLICT naming channel and version %d", err, sc.Version)
	}
	var shop source.Info
	for _, in := range reg.List() {
		if in.Name == "shop" {
			shop = in
		}
	}
	if !strings.Contains(shop.Error, "channel") || shop.Format != "" {
		t.Errorf("List: shop = %+v, want its error naming channel", shop)
	}
	// Putting a mapping that fits repairs it.
	if _, err := reg.Put("shop", []byte(ordersMapping)); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get("shop"); err != nil {
		t.Errorf("Get(shop) after a fixed mapping: %v", err)
	}
}

// fuzzMapping maps one row to at most one event, so every record is
// exactly one of: in (accepted or duplicate), skipped, rejected.
const fuzzMapping = `source: fuzz
format: csv
events:
  - type: purchase
    when: record.kind != "skip"
    id: "fz-{id}"
    key: customer
    time: when
    fields:
      amount: amount
      product_id: {from: product, default: p}
`

func FuzzImport(f *testing.F) {
	f.Add([]byte("id,kind,customer,when,amount,product\n1,a,c-1,2026-11-19T10:00:00Z,1.5,p-1\n"))
	f.Add([]byte("id,kind,customer,when,amount,product\n1,skip,c-1,,1,\n2,a,c-2,2026-11-19,x,p\n3,a,,,1,\n"))
	f.Add([]byte("id,kind,customer,when,amount,product\n\"4\",\"a,b\",c-1,2026-11-19,\"2\"\"\",p\n5,a,c\n\"6,a,c-1"))
	f.Add([]byte("id,kind,customer\n"))
	f.Add([]byte(""))
	f.Add([]byte("\xef\xbb\xbfid;kind\r\n1;a\r\n"))
	v := newEnv(f)
	m, err := mapping.Parse([]byte(fuzzMapping), v.e.Schema(), mapping.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sum, err := v.im.Import(context.Background(), m, strings.NewReader(string(data)), "fuzz.csv", nil)
		if err != nil && twinhub.ErrorCode(err) != twinhub.EINVALID {
			t.Fatalf("Import: %v, want nil or an EINVALID error about the input", err)
		}
		if in := sum.Records - sum.Skipped - sum.Rejected; in != sum.Events+sum.Duplicates {
			t.Errorf("summary %+v: %d records neither skipped nor rejected, but %d events accepted or duplicate", sum, in, sum.Events+sum.Duplicates)
		}
		if sum.Records < 0 || sum.Rejected > sum.Records || len(sum.Rejections) > min(sum.Rejected, source.DefaultMaxRejections) {
			t.Errorf("summary %+v does not add up", sum)
		}
		for _, r := range sum.Rejections {
			if r.DeadLetter == 0 || r.Reason == "" || r.Line < 1 || r.Line > math.MaxInt32 {
				t.Errorf("rejection %+v: want a dead letter, a reason and a line", r)
			}
		}
	})
}
