package mapping

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/schema"
)

var testNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func testSchema(tb testing.TB) *schema.Schema {
	tb.Helper()
	src, err := os.ReadFile("testdata/schema.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	sc, err := schema.Parse(src)
	if err != nil {
		tb.Fatalf("testdata/schema.yaml: %v", err)
	}
	return sc
}

func parseMapping(tb testing.TB, src string) *Mapping {
	tb.Helper()
	m, err := Parse([]byte(src), testSchema(tb), Options{Dir: "testdata"})
	if err != nil {
		tb.Fatalf("Parse:\n%s\nerror:\n%v", src, err)
	}
	return m
}

// events returns out's events as strings.
func events(out *Output) []string {
	var evs []string
	for i := 0; i < out.Len(); i++ {
		evs = append(evs, string(out.Event(i)))
	}
	return evs
}

// checkDecodes decodes every event with the ingest decoder, as the
// pipeline will, and fails on any rejection.
func checkDecodes(tb testing.TB, sc *schema.Schema, evs []string) {
	tb.Helper()
	d := ingest.NewDecoder(sc, func() time.Time { return testNow }, "test")
	for _, ev := range evs {
		var b ingest.Batch
		if !d.Decode([]byte(ev), &b) {
			tb.Errorf("decoder rejects %s: %s: %s", ev, b.Results[0].Field, b.Results[0].Reason)
		}
	}
}

// fieldError checks that err is a *twinhub.Error about field with message msg.
func fieldError(tb testing.TB, err error, field, msg string) {
	tb.Helper()
	var te *twinhub.Error
	if !errors.As(err, &te) {
		tb.Fatalf("error %T %v, want a *twinhub.Error", err, err)
	}
	if te.Code != twinhub.EINVALID {
		tb.Errorf("error code %s, want %s", te.Code, twinhub.EINVALID)
	}
	if te.Field != field || te.Message != msg {
		tb.Errorf("error\n  field %q message %q\nwant\n  field %q message %q", te.Field, te.Message, field, msg)
	}
}

// csvRecords reads a CSV file into records the way the readers do: one
// shared Header slice, 1-based lines and ordinals.
func csvRecords(tb testing.TB, file string) []ingest.Record {
	tb.Helper()
	f, err := os.Open(file)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if err != nil {
		tb.Fatal(err)
	}
	var recs []ingest.Record
	for {
		line, _ := r.FieldPos(0)
		fields, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		line, _ = r.FieldPos(0)
		recs = append(recs, ingest.Record{Raw: []byte(strings.Join(fields, ",")), Fields: fields, Header: header, Line: line, Index: len(recs) + 1})
	}
	return recs
}

const csvHead = "source: shop\nformat: csv\n"

// TestMapCSV maps one CSV row per case and compares the events exactly.
func TestMapCSV(t *testing.T) {
	sc := testSchema(t)
	tests := []struct {
		name    string
		mapping string // after csvHead
		header  []string
		row     []string
		file    string // default in.csv
		want    []string
	}{
		{
			name:    "paths",
			mapping: "events:\n  - {type: purchase, key: cust, fields: {amount: amount, product_id: sku}}\n",
			header:  []string{"cust", "amount", "sku"},
			row:     []string{"c1", "12.50", "p-1"},
			want:    []string{`{"id":"shop:in.csv:2","type":"purchase","customer_id":"c1","source":"shop","amount":12.50,"product_id":"p-1"}`},
		},
		{
			name:    "go layout time",
			mapping: "events:\n  - {type: typed, key: c, time: {from: d, format: \"02/01/2006 15:04\"}}\n",
			header:  []string{"c", "d"},
			row:     []string{"c1", "20/11/2024 09:30"},
			want:    []string{`{"id":"shop:in.csv:2","type":"typed","customer_id":"c1","time":"2024-11-20T09:30:00Z","source":"shop"}`},
		},
		{
			name:    "strftime time",
			mapping: "events:\n  - {type: typed, key: c, time: {from: d, format: \"%d.%m.%Y %H:%M:%S.%f\"}}\n",
			header:  []string{"c", "d"},
			row:     []string{"c1", "20.11.2024 09:30:05.250000"},
			want:    []string{`{"id":"shop:in.csv:2","type":"typed","customer_id":"c1","time":"2024-11-20T09:30:05.25Z","source":"shop"}`},
		},
		{
			name:    "time_zone for times without offset",
			mapping: "time_zone: America/Sao_Paulo\nevents:\n  - {type: typed, key: c, time: d, fields: {t: t}}\n",
			header:  []string{"c", "d", "t"},
			row:     []string{"c1", "2024-01-15 10:00:00", "2024-01-15T10:00:00+02:00"},
			want:    []string{`{"id":"shop:in.csv:2","type":"typed","customer_id":"c1","time":"2024-01-15T13:00:00Z","source":"shop","t":"2024-01-15T08:00:00Z"}`},
		},
		{
			name:    "default time formats",
			mapping: "events:\n  - {type: typed, key: c, time: d, fields: {t: t, s: s}}\n",
			header:  []string{"c", "d", "t", "s"},
			row:     []string{"c1", "20240115", "2024-01-15T10:00:00.5", "x"},
			want:    []string{`{"id":"shop:in.csv:2","type":"typed","customer_id":"c1","time":"2024-01-15T00:00:00Z","source":"shop","t":"2024-01-15T10:00:00.5Z","s":"x"}`},
		},
		{
			name:    "unix formats",
			mapping: "events:\n  - {type: typed, key: c, time: {from: a, format: unix}, fields: {t: {from: b, format: unix_ms}}}\n  - {type: typed, key: c, time: {from: c2, format: unix_us}}\n",
			header:  []string{"c", "a", "b", "c2"},
			row:     []string{"c1", "1700000000", "1700000000123", "1700000000000001"},
			want: []string{
				`{"id":"shop:in.csv:2:0","type":"typed","customer_id":"c1","time":"2023-11-14T22:13:20Z","source":"shop","t":"2023-11-14T22:13:20.123Z"}`,
				`{"id":"shop:in.csv:2:1","type":"typed","customer_id":"c1","time":"2023-11-14T22:13:20.000001Z","source":"shop"}`,
			},
		},
		{
			name:    "const template and default",
			mapping: "events:\n  - type: purchase\n    key: c\n    fields:\n      amount: {const: 5}\n      product_id: {template: \"{sku}-{size}\"}\n      channel: {const: store}\n      category: {from: cat, default: none}\n",
			header:  []string{"c", "sku", "size", "cat"},
			row:     []string{"c1", "p1", "XL", ""},
			want:    []string{`{"id":"shop:in.csv:2","type":"purchase","customer_id":"c1","source":"shop","amount":5,"product_id":"p1-XL","channel":"store","category":"none"}`},
		},
		{
			name:    "template with an absent part is absent",
			mapping: "events:\n  - {type: profile, key: c, fields: {name: {template: \"{first} {last}\"}, email: {template: \"{first}@x\", default: anonymous}}}\n",
			header:  []string{"c", "first", "last"},
			row:     []string{"c1", "Ada", ""},
			want:    []string{`{"id":"shop:in.csv:2","type":"profile","customer_id":"c1","source":"shop","email":"Ada@x"}`},
		},
		{
			name:    "null_values",
			mapping: "null_values: [\"\", NA, \"-\"]\nevents:\n  - {type: typed, key: c, fields: {n: n, s: s, i: i}}\n",
			header:  []string{"c", "n", "s", "i"},
			row:     []string{"c1", "NA", "-", ""},
			want:    []string{`{"id":"shop:in.csv:2","type":"typed","customer_id":"c1","source":"shop"}`},
		},
		{
			name:    "decimal comma",
			mapping: "decimal: \",\"\nevents:\n  - {type: typed, key: c, fields: {n: n, i: i, s: n}}\n",
			header:  []string{"c", "n", "i"},
			row:     []string{"c1", " -1234,50 ", "3,0"},
			want:    []string{`{"id":"shop:in.csv:2","type":"typed","customer_id":"c1","source":"shop","n":-1234.5,"i":3,"s":" -1234,50 "}`},
		},
		{
			name:    "numbers",
			mapping: "events:\n  - {type: typed, key: c, fields: {n: n, i: i}}\n  - {type: typed, key: c, fields: {n: n2, i: i2}}\n",
			header:  []string{"c", "n", "i", "n2", "i2"},
			row:     []string{"c1", "+007.50", "3.000", "1e3", "-0.0"},
			want: []string{
				`{"id":"shop:in.csv:2:0","type":"typed","customer_id":"c1","source":"shop","n":7.5,"i":3}`,
				`{"id":"shop:in.csv:2:1","type":"typed","customer_id":"c1","source":"shop","n":1000,"i":0}`,
			},
		},
		{
			name:    "bools",
			mapping: "true_values: [\"Sí\", x]\nfalse_values: [\"No\"]\nevents:\n  - {type: typed, key: c, fields: {b: b}}\n  - {type: typed, key: c, fields: {b: b2}}\n",
			header:  []string{"c", "b", "b2"},
			row:     []string{"c1", "SÍ", " no "},
			want: []string{
				`{"id":"shop:in.csv:2:0","type":"typed","customer_id":"c1","source":"shop","b":true}`,
				`{"id":"shop:in.csv:2:1","type":"typed","customer_id":"c1","source":"shop","b":false}`,
			},
		},
		{
			name:    "enum",
			mapping: "events:\n  - {type: typed, key: c, fields: {e: e}}\n",
			header:  []string{"c", "e"},
			row:     []string{"c1", "green"},
			want:    []string{`{"id":"shop:in.csv:2","type":"typed","customer_id":"c1","source":"shop","e":"green"}`},
		},
		{
			name:    "a column named like a dotted path wins",
			mapping: "events:\n  - {type: typed, key: c, fields: {n: price.eur, s: \"`price.eur`\"}}\n",
			header:  []string{"c", "price", "price.eur"},
			row:     []string{"c1", "1", "2"},
			want:    []string{`{"id":"shop:in.csv:2","type":"typed","customer_id":"c1","source":"shop","n":2,"s":"2"}`},
		},
		{
			name:    "special values",
			mapping: "events:\n  - {type: typed, key: c, fields: {s: {template: \"{$source}|{$file}|{$line}|{$record}\"}, i: $line}}\n",
			header:  []string{"c"},
			row:     []string{"c1"},
			file:    "/data/in/2024/orders.csv",
			want:    []string{`{"id":"shop:orders.csv:2","type":"typed","customer_id":"c1","source":"shop","s":"shop|orders.csv|2|1","i":2}`},
		},
		{
			name:    "id and source templates",
			mapping: "events:\n  - {type: typed, key: c, id: \"shop-{c}-{$record}\", source: \"shop.{region}\"}\n",
			header:  []string{"c", "region"},
			row:     []string{"c1", "eu"},
			want:    []string{`{"id":"shop-c1-1","type":"typed","customer_id":"c1","source":"shop.eu"}`},
		},
		{
			name:    "when",
			mapping: "events:\n  - {type: typed, key: c, when: 'record.q != \"0\"', fields: {s: {const: a}}}\n  - {type: typed, key: c, when: 'record.q == \"0\" && record.c.startsWith(\"c\")', fields: {s: {const: b}}}\n",
			header:  []string{"c", "q"},
			row:     []string{"c1", "0"},
			want:    []string{`{"id":"shop:in.csv:2:1","type":"typed","customer_id":"c1","source":"shop","s":"b"}`},
		},
		{
			name:    "every when false",
			mapping: "events:\n  - {type: typed, key: c, when: 'record.q != \"0\"'}\n",
			header:  []string{"c", "q"},
			row:     []string{"c1", "0"},
		},
		{
			name:    "text from a request without a file name",
			mapping: "events:\n  - {type: typed, key: c, fields: {s: $file}}\n",
			header:  []string{"c"},
			row:     []string{"c1"},
			file:    "-",
			want:    []string{`{"id":"shop:0b4e4c3cfdf0dbf9","type":"typed","customer_id":"c1","source":"shop","s":"request"}`},
		},
		{
			name:    "escaping",
			mapping: "events:\n  - {type: typed, key: c, fields: {s: s}}\n",
			header:  []string{"c", "s"},
			row:     []string{"c\"1", "a\\b\x01\n\t\xff\xfeé\u2028"},
			want:    []string{"{\"id\":\"shop:in.csv:2\",\"type\":\"typed\",\"customer_id\":\"c\\\"1\",\"source\":\"shop\",\"s\":\"a\\\\b\\u0001\\n\\t\\ufffd\\ufffdé\\u2028\"}"},
		},
		{
			name:    "each over a cell holding a JSON array",
			mapping: "events:\n  - {type: line, key: c, each: items, fields: {sku: item.sku, qty: item.n, order_line: $index}}\n",
			header:  []string{"c", "items"},
			row:     []string{"c1", `[{"sku":"a","n":2},{"sku":"b"}]`},
			want: []string{
				`{"id":"shop:in.csv:2:0","type":"line","customer_id":"c1","source":"shop","sku":"a","qty":2,"order_line":0}`,
				`{"id":"shop:in.csv:2:1","type":"line","customer_id":"c1","source":"shop","sku":"b","order_line":1}`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parseMapping(t, csvHead+tt.mapping)
			file := tt.file
			switch file {
			case "":
				file = "in.csv"
			case "-":
				file = ""
			}
			rec := &ingest.Record{Raw: []byte(strings.Join(tt.row, ",")), Fields: tt.row, Header: tt.header, Line: 2, Index: 1}
			var out Output
			if err := m.NewMapper().Map(rec, file, &out); err != nil {
				t.Fatalf("Map: %v", err)
			}
			got := events(&out)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			checkDecodes(t, sc, got)
		})
	}
}

// TestMapCSVErrors lists rows that cannot be mapped; each must be rejected
// naming the event field, the path and the text.
func TestMapCSVErrors(t *testing.T) {
	tests := []struct {
		name, mapping string
		header, row   []string
		field, msg    string
	}{
		{"not a number", "events:\n  - {type: purchase, key: c, fields: {amount: amount, product_id: {const: p}}}\n",
			[]string{"c", "amount"}, []string{"c1", "12,5x"}, "amount", `column "amount": "12,5x" is not a number`},
		{"other decimal separator", "events:\n  - {type: typed, key: c, fields: {n: n}}\n",
			[]string{"c", "n"}, []string{"c1", "12,5"}, "n", `column "n": "12,5" is not a number (the decimal separator is "."; set decimal: to change it)`},
		{"dot with decimal comma", "decimal: \",\"\nevents:\n  - {type: typed, key: c, fields: {n: n}}\n",
			[]string{"c", "n"}, []string{"c1", "1.234,5"}, "n", `column "n": "1.234,5" is not a number`},
		{"not an integer", "events:\n  - {type: typed, key: c, fields: {i: q}}\n",
			[]string{"c", "q"}, []string{"c1", "3.5"}, "i", `column "q": "3.5" is not an integer`},
		{"integer too large", "events:\n  - {type: typed, key: c, fields: {i: q}}\n",
			[]string{"c", "q"}, []string{"c1", "1e300"}, "i", `column "q": "1e300" is out of range for an integer`},
		{"number out of range", "events:\n  - {type: typed, key: c, fields: {n: q}}\n",
			[]string{"c", "q"}, []string{"c1", "1e999"}, "n", `column "q": "1e999" is out of range for a number`},
		{"NaN", "events:\n  - {type: typed, key: c, fields: {n: q}}\n",
			[]string{"c", "q"}, []string{"c1", "NaN"}, "n", `column "q": "NaN" is not a number`},
		{"not a bool", "events:\n  - {type: typed, key: c, fields: {b: b}}\n",
			[]string{"c", "b"}, []string{"c1", "maybe"}, "b", `column "b": "maybe" is not a bool (true: true, yes, y, t, 1; false: false, no, n, f, 0)`},
		{"time does not match format", "events:\n  - {type: typed, key: c, time: {from: d, format: \"2006-01-02\"}}\n",
			[]string{"c", "d"}, []string{"c1", "20/11/2026"}, "time", `column "d": "20/11/2026" does not match format "2006-01-02"`},
		{"impossible date", "events:\n  - {type: typed, key: c, fields: {t: d}}\n",
			[]string{"c", "d"}, []string{"c1", "2026-02-30"}, "t",
			`column "d": "2026-02-30" is not a time (without format: RFC 3339, 2006-01-02 15:04:05, 2006-01-02T15:04:05, 2006-01-02 or 20060102; set format: to read others)`},
		{"time out of range", "events:\n  - {type: typed, key: c, fields: {t: {from: d, format: unix}}}\n",
			[]string{"c", "d"}, []string{"c1", "1700000000000000"}, "t",
			`column "d": "1700000000000000" is outside the years 1678 to 2261 (is the unit right? format is unix, unix_ms or unix_us)`},
		{"not in the enum", "events:\n  - {type: purchase, key: c, fields: {amount: {const: 1}, product_id: {const: p}, channel: ch}}\n",
			[]string{"c", "ch"}, []string{"c1", "fax"}, "channel", `column "ch": "fax" is not one of web, app, store, call_centre`},
		{"empty key", "events:\n  - {type: typed, key: c}\n",
			[]string{"c"}, []string{""}, "customer_id", `column "c" is empty; every event needs the twin key`},
		{"null key", "null_values: [\"\", NULL]\nevents:\n  - {type: typed, key: c}\n",
			[]string{"c"}, []string{"NULL"}, "customer_id", `column "c" holds a null value "NULL"; every event needs the twin key`},
		{"required field empty", "events:\n  - {type: purchase, key: c, fields: {amount: a, product_id: p}}\n",
			[]string{"c", "a", "p"}, []string{"c1", "", "p1"}, "amount", `column "a" is empty; amount is required for event type purchase`},
		{"missing column", "events:\n  - {type: purchase, key: c, fields: {amount: amout, product_id: p}}\n",
			[]string{"c", "amount", "p"}, []string{"c1", "1", "p1"}, "amount", `column "amout" is not in the header (did you mean "amount"?)`},
		{"missing column without a near name", "events:\n  - {type: typed, key: c, fields: {s: zzz}}\n",
			[]string{"c", "amount"}, []string{"c1", "1"}, "s", `column "zzz" is not in the header (columns: c, amount)`},
		{"absent time", "events:\n  - {type: typed, key: c, time: d}\n",
			[]string{"c", "d"}, []string{"c1", ""}, "time", `column "d" is empty; give the entry's time a default, or remove time: to use the receive time`},
		{"absent id part", "events:\n  - {type: typed, key: c, id: \"x-{o}\"}\n",
			[]string{"c", "o"}, []string{"c1", ""}, "id", `column "o" is empty; the id needs it`},
		{"long text is cut short", "events:\n  - {type: typed, key: c, fields: {n: n}}\n",
			[]string{"c", "n"}, []string{"c1", strings.Repeat("9", 70) + "x"}, "n", `column "n": "` + strings.Repeat("9", 64) + `"... is not a number`},
		{"each over text", "events:\n  - {type: line, key: c, each: items, fields: {sku: item.sku}}\n",
			[]string{"c", "items"}, []string{"c1", "abc"}, "items", `each: column "items": expected an array, found the text "abc"`},
		{"condition fails", "events:\n  - {type: typed, key: c, when: 'record.nope == \"1\"'}\n",
			[]string{"c"}, []string{"c1"}, "", `events[0].when: record.nope == "1": no such key: nope`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parseMapping(t, csvHead+tt.mapping)
			out := Output{}
			out.buf = append(out.buf, "stale"...)
			out.ends = append(out.ends, 5)
			err := m.NewMapper().Map(&ingest.Record{Fields: tt.row, Header: tt.header, Line: 2, Index: 1}, "in.csv", &out)
			if err == nil {
				t.Fatalf("Map succeeded with %v, want an error", events(&out))
			}
			fieldError(t, err, tt.field, tt.msg)
			if out.Len() != 0 {
				t.Errorf("a rejected record left %d events", out.Len())
			}
		})
	}
}

// TestRecordError passes a reader's error through.
func TestRecordError(t *testing.T) {
	m := parseMapping(t, csvHead+"events:\n  - {type: typed, key: c}\n")
	want := twinhub.FieldErrorf("", "line 3 has 2 fields, the header has 1")
	err := m.NewMapper().Map(&ingest.Record{Err: want}, "in.csv", &Output{})
	if err != want {
		t.Errorf("Map error %v, want the record's %v", err, want)
	}
}

// TestRejectedRecordLeavesNothing: when a later entry fails, the events of
// earlier entries are dropped too, so a record is never half-applied.
func TestRejectedRecordLeavesNothing(t *testing.T) {
	m := parseMapping(t, csvHead+"events:\n  - {type: typed, key: c}\n  - {type: typed, key: c, fields: {n: n}}\n")
	var out Output
	mp := m.NewMapper()
	hdr := []string{"c", "n"}
	if err := mp.Map(&ingest.Record{Fields: []string{"c1", "1"}, Header: hdr, Line: 2}, "f", &out); err != nil || out.Len() != 2 {
		t.Fatalf("good record: %d events, error %v", out.Len(), err)
	}
	if err := mp.Map(&ingest.Record{Fields: []string{"c1", "x"}, Header: hdr, Line: 3}, "f", &out); err == nil {
		t.Fatal("bad record mapped")
	}
	if out.Len() != 0 {
		t.Errorf("rejected record produced %d events: %q", out.Len(), events(&out))
	}
}

// TestHeaderChanges maps two inputs with different headers through one
// Mapper: the column slots must follow the header.
func TestHeaderChanges(t *testing.T) {
	m := parseMapping(t, csvHead+"events:\n  - {type: typed, key: c, fields: {s: s}}\n")
	mp := m.NewMapper()
	var out Output
	for _, tc := range []struct {
		header, row []string
		want        string
	}{
		{[]string{"c", "s"}, []string{"c1", "one"}, `"s":"one"`},
		{[]string{"s", "x", "c"}, []string{"two", "-", "c2"}, `"s":"two"`},
		{[]string{"c", "s"}, []string{"c3", "three"}, `"s":"three"`},
	} {
		if err := mp.Map(&ingest.Record{Fields: tc.row, Header: tc.header, Line: 2}, "f", &out); err != nil {
			t.Fatal(err)
		}
		if got := string(out.Event(0)); !strings.Contains(got, tc.want) {
			t.Errorf("header %v: event %s, want %s", tc.header, got, tc.want)
		}
	}
}

// TestColumnsWithoutHeader uses csv.columns when records carry no header.
func TestColumnsWithoutHeader(t *testing.T) {
	m := parseMapping(t, csvHead+"csv: {header: false, columns: [c, amount], delimiter: \";\"}\nevents:\n  - {type: typed, key: c, fields: {n: amount}}\n")
	if m.Format.Kind != ingest.FormatCSV || m.Format.CSV.Header || m.Format.CSV.Delimiter != ';' || len(m.Format.CSV.Columns) != 2 {
		t.Errorf("Format = %+v", m.Format)
	}
	var out Output
	if err := m.NewMapper().Map(&ingest.Record{Fields: []string{"c1", "4"}, Line: 1}, "f", &out); err != nil {
		t.Fatal(err)
	}
	if got, want := string(out.Event(0)), `{"id":"shop:f:1","type":"typed","customer_id":"c1","source":"shop","n":4}`; got != want {
		t.Errorf("event %s, want %s", got, want)
	}
}

// TestDefaultIDs checks the ids the contract promises: stable per file and
// line, distinct per entry and element, a hash of the bytes without a file.
func TestDefaultIDs(t *testing.T) {
	one := parseMapping(t, csvHead+"events:\n  - {type: typed, key: c}\n")
	two := parseMapping(t, csvHead+"events:\n  - {type: typed, key: c}\n  - {type: line, key: c, each: items, fields: {sku: item}}\n")
	hdr := []string{"c", "items"}
	rec := func(line int, raw string) *ingest.Record {
		return &ingest.Record{Raw: []byte(raw), Fields: []string{"c1", `["a","b"]`}, Header: hdr, Line: line, Index: line - 1}
	}
	ids := func(m *Mapping, r *ingest.Record, file string) []string {
		var out Output
		if err := m.NewMapper().Map(r, file, &out); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ev := range events(&out) {
			var e struct{ ID string }
			if err := json.Unmarshal([]byte(ev), &e); err != nil {
				t.Fatal(err)
			}
			got = append(got, e.ID)
		}
		return got
	}
	if diff := cmp.Diff([]string{"shop:a.csv:7"}, ids(one, rec(7, "x"), "dir/a.csv")); diff != "" {
		t.Errorf("one entry (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"shop:a.csv:7:0", "shop:a.csv:7:1:0", "shop:a.csv:7:1:1"}, ids(two, rec(7, "x"), "a.csv")); diff != "" {
		t.Errorf("two entries with each (-want +got):\n%s", diff)
	}
	h1, h2 := ids(one, rec(7, "c1,x"), ""), ids(one, rec(9, "c1,x"), "")
	if h1[0] != h2[0] || len(h1[0]) != len("shop:")+16 {
		t.Errorf("identical records posted without a file got ids %s and %s, want one shop:<16 hex digits>", h1[0], h2[0])
	}
	if h3 := ids(one, rec(7, "c1,y"), ""); h3[0] == h1[0] {
		t.Errorf("different records got the same id %s", h3[0])
	}
	if got := ids(two, rec(7, "c1,x"), ""); got[1] != h1[0]+":1:0" {
		t.Errorf("hash id inside each = %s, want %s:1:0", got[1], h1[0])
	}
}

// TestMapCSVAllocations guards the invariant that mapping a CSV record
// with a known header allocates nothing.
func TestMapCSVAllocations(t *testing.T) {
	m := parseMapping(t, benchCSVMapping)
	recs := benchRecords(64)
	mp := m.NewMapper()
	var out Output
	i := 0
	allocs := testing.AllocsPerRun(200, func() {
		if err := mp.Map(&recs[i%len(recs)], "orders.csv", &out); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs != 0 {
		t.Errorf("Map allocates %.1f times per CSV record, want 0", allocs)
	}
}

// TestConcurrentMappers maps the same records from several goroutines
// sharing one Mapping (and its lookups); run with -race.
func TestConcurrentMappers(t *testing.T) {
	src, err := os.ReadFile("testdata/olist/olist.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(src, testSchema(t), Options{Dir: "testdata/olist"})
	if err != nil {
		t.Fatal(err)
	}
	csvRecs := csvRecords(t, "testdata/olist/olist_order_items_dataset.csv")
	jm := parseMapping(t, jsonHead+`
lookups:
  products: {file: lookups/products.ndjson, key: sku}
  stores: {file: lookups/stores.json, key: id}
joins:
  - {lookup: products, on: sku, as: product}
  - {lookup: stores, on: store, as: store, optional: true}
events:
  - {type: typed, key: c, when: '"fruit" in record.product.tags || record.store.city == "Paris"', fields: {s: product.name, n: product.dims.w}}
`)
	var jsonRecs []ingest.Record
	for _, raw := range []string{`{"c":"a","sku":"a","store":1}`, `{"c":"b","sku":"b","store":2}`, `{"c":"c","sku":"b","store":30}`, `{"c":"d","sku":"b"}`} {
		jsonRecs = append(jsonRecs, ingest.Record{Raw: []byte(raw), Line: 1})
	}
	for _, tc := range []struct {
		m    *Mapping
		recs []ingest.Record
	}{{m, csvRecs}, {jm, jsonRecs}} {
		testConcurrent(t, tc.m, tc.recs)
	}
}

func testConcurrent(t *testing.T, m *Mapping, recs []ingest.Record) {
	mapAll := func() []string {
		mp := m.NewMapper()
		var got []string
		var out Output
		for range 20 {
			for i := range recs {
				if err := mp.Map(&recs[i], "items.csv", &out); err != nil {
					got = append(got, err.Error())
				}
				got = append(got, events(&out)...)
			}
		}
		return got
	}
	want := mapAll()
	results := make(chan []string, 4)
	for range 4 {
		go func() { results <- mapAll() }()
	}
	for range 4 {
		if diff := cmp.Diff(want, <-results); diff != "" {
			t.Errorf("concurrent mapping differs (-want +got):\n%s", diff)
		}
	}
}
