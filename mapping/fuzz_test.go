package mapping

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/schema"
)

// fuzzMappings exercise every value form and coercion, so that random
// input reaches all of them.
var fuzzMappings = map[string]string{
	"csv": `
source: fz
format: csv
null_values: ["", NA]
decimal: ","
events:
  - type: typed
    key: a
    time: {from: b, default: "2024-01-01"}
    when: 'size(record.a) < 1000'
    fields: {s: c, n: d, i: e, b: f, t: b, e: {from: g, default: red}}
  - type: line
    key: {template: "{a}-{c}"}
    each: items
    id: "{$index}-{item.sku}"
    fields: {sku: {from: item.sku, default: none}, qty: item.q, price: item.p, order_line: $index}
  - type: profile
    key: a
    time: {from: d, format: "%d/%m/%Y %H:%M"}
    fields: {name: {template: "{c} {g}"}, signup: {from: e, format: unix_ms}}
`,
	"json": `
source: fz
format: json
events:
  - type: typed
    key: k
    fields: {s: s, n: n, i: i, b: b, t: t, e: e}
  - type: line
    key: k
    each: items
    when: 'has(item.sku) || true'
    fields: {sku: {from: item.sku, default: x}, qty: item.qty, price: item.price, order_line: $index}
  - type: profile
    key: {template: "{k}/{a.b.0}"}
    time: {from: t, format: rfc3339}
    fields: {name: "` + "`a.b`" + `", email: a.c}
`,
	"debezium": `
source: fz
format: debezium
events:
  - type: profile
    key: id
    when: 'op != "x"'
    fields: {name: name, email: {template: "{$op}{$table}{$position}{$source_ts}"}, tier: tier, signup: after.ts}
`,
}

func fuzzParsed(tb testing.TB) map[string]*Mapping {
	tb.Helper()
	sc := testSchema(tb)
	ms := map[string]*Mapping{}
	for name, src := range fuzzMappings {
		m, err := Parse([]byte(src), sc, Options{Dir: "testdata"})
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		ms[name] = m
	}
	return ms
}

// checkOutput checks what Map returned: a *twinhub.Error, or events that
// are JSON objects in valid UTF-8 which the decoder can read (it may still
// reject them on the schema's grounds, but never as malformed).
func checkOutput(t *testing.T, name string, out *Output, err error, d *ingest.Decoder) {
	t.Helper()
	if err != nil {
		var te *twinhub.Error
		if !errors.As(err, &te) || te.Message == "" {
			t.Fatalf("%s: error %T %v, want a *twinhub.Error with a message", name, err, err)
		}
		if out.Len() != 0 {
			t.Fatalf("%s: error %v with %d events", name, err, out.Len())
		}
		return
	}
	for i := 0; i < out.Len(); i++ {
		ev := out.Event(i)
		var obj map[string]any
		if !utf8.Valid(ev) || json.Unmarshal(ev, &obj) != nil {
			t.Fatalf("%s: event %q is not a JSON object in UTF-8", name, ev)
		}
		if name == "debezium" {
			continue // the decoder does not know position and null clears yet
		}
		var b ingest.Batch
		if !d.Decode(ev, &b) {
			r := b.Results[0]
			if strings.Contains(r.Reason, "malformed") || strings.Contains(r.Reason, "UTF-8") {
				t.Fatalf("%s: decoder cannot read %s: %s", name, ev, r.Reason)
			}
		}
	}
}

// FuzzMap maps random CSV fields and random JSON records: Map never
// panics, and its output is always valid JSON.
func FuzzMap(f *testing.F) {
	f.Add("c1\x1f2024-01-02 10:00:00\x1fx\x1f1,5\x1f3\x1fyes\x1fred\x1f[{\"sku\":\"a\",\"q\":1}]", []byte(`{"k":"c1","s":"x","n":1.5,"i":2,"b":true,"t":"2024-01-01T00:00:00Z","e":"red","items":[{"sku":"a","qty":1}],"a":{"b":["z"],"c":"y"}}`))
	f.Add("\xff\"\\\x00\x1fNA\x1f\x1f1e999\x1f3.5\x1fmaybe\x1fblue\x1f[1,{},null]", []byte(`{"op":"u","after":{"id":7,"name":null,"tier":"gold","ts":1},"source":{"lsn":9,"ts_ms":1700000000000,"db":"d","table":"t"}}`))
	f.Add("a\x1f20240101\x1f\x1f-0\x1f1e3\x1fT\x1fgreen\x1f{}", []byte(`{"payload":{"op":"d","before":{"id":"x"},"source":{"file":"mysql-bin.000009","pos":1,"row":2}}}`))
	f.Add("", []byte(`[`))
	ms := fuzzParsed(f)
	header := []string{"a", "b", "c", "d", "e", "f", "g", "items"}
	f.Fuzz(func(t *testing.T, fields string, raw []byte) {
		sc := ms["csv"].Schema()
		d := ingest.NewDecoder(sc, func() time.Time { return testNow }, "fz")
		var out Output
		row := strings.Split(fields, "\x1f")
		for len(row) < len(header) {
			row = append(row, "")
		}
		rec := &ingest.Record{Raw: []byte(fields), Fields: row[:len(header)], Header: header, Line: 2, Index: 1}
		err := ms["csv"].NewMapper().Map(rec, "", &out)
		checkOutput(t, "csv", &out, err, d)
		for _, name := range []string{"json", "debezium"} {
			err := ms[name].NewMapper().Map(&ingest.Record{Raw: raw, Line: 1, Index: 1}, "f.json", &out)
			checkOutput(t, name, &out, err, d)
		}
	})
}

// FuzzParse checks that no document makes Parse panic, and that it returns
// either a Mapping or a ValidationError with problems.
func FuzzParse(f *testing.F) {
	for _, src := range fuzzMappings {
		f.Add([]byte(src))
	}
	files, _ := filepath.Glob("testdata/*/*.yaml")
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	sc := testSchema(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		m, err := Parse(src, sc, Options{Dir: "testdata/olist"})
		if err != nil {
			var ve *schema.ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("Parse error %T %v, want a *schema.ValidationError with problems", err, err)
			}
			if m != nil {
				t.Fatal("Parse returned a Mapping with an error")
			}
			return
		}
		if len(m.entries) == 0 || m.Source == "" || m.Format.Kind == 0 {
			t.Fatalf("Parse succeeded with %d entries, source %q, format %v", len(m.entries), m.Source, m.Format.Kind)
		}
		m.NewMapper()
	})
}
