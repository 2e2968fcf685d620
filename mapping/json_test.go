package mapping

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/twinhub/twinhub/ingest"
)

const jsonHead = "source: app\nformat: ndjson\n"

// TestMapJSON maps one JSON record per case.
func TestMapJSON(t *testing.T) {
	sc := testSchema(t)
	tests := []struct {
		name, mapping, rec string
		want               []string
	}{
		{
			name:    "nested paths, indexes and backquotes",
			mapping: "events:\n  - {type: purchase, key: user.id, time: ts, fields: {amount: total, product_id: items.0.sku, category: \"meta.`cat.name`\"}}\n",
			rec:     `{"user":{"id":42},"ts":1700000000123,"total":"12.5","items":[{"sku":"a"}],"meta":{"cat.name":"shoes"}}`,
			want:    []string{`{"id":"app:in.ndjson:3","type":"purchase","customer_id":"42","time":"2023-11-14T22:13:20.123Z","source":"app","amount":12.5,"product_id":"a","category":"shoes"}`},
		},
		{
			name:    "json types coerced to field types",
			mapping: "events:\n  - {type: typed, key: k, fields: {s: n, n: n, i: f, b: yes, e: e, t: t}}\n",
			rec:     `{"k":4.20,"n":1.50,"f":3.0,"yes":"Y","e":"red","t":"2024-01-01T00:00:00+01:00"}`,
			want:    []string{`{"id":"app:in.ndjson:3","type":"typed","customer_id":"4.20","source":"app","s":"1.50","n":1.50,"i":3,"b":true,"e":"red","t":"2023-12-31T23:00:00Z"}`},
		},
		{
			name:    "json bools, exponents and nulls",
			mapping: "events:\n  - {type: typed, key: k, fields: {b: b, n: n, s: gone, i: i}}\n",
			rec:     `{"k":"c1","b":false,"n":1E+2,"gone":null,"i":-0}`,
			want:    []string{`{"id":"app:in.ndjson:3","type":"typed","customer_id":"c1","source":"app","b":false,"n":100,"i":0}`},
		},
		{
			name:    "each with item paths, $index and a per-element condition",
			mapping: "events:\n  - type: line\n    key: c\n    each: order.lines\n    when: item.qty > 1 && record.c != \"\"\n    fields: {sku: item.sku, qty: item.qty, price: item.price.eur, order_line: $index}\n",
			rec:     `{"c":"c1","order":{"lines":[{"sku":"a","qty":2,"price":{"eur":9.5}},{"sku":"b","qty":1},{"sku":"c","qty":3}]}}`,
			want: []string{
				`{"id":"app:in.ndjson:3:0","type":"line","customer_id":"c1","source":"app","sku":"a","qty":2,"price":9.5,"order_line":0}`,
				`{"id":"app:in.ndjson:3:2","type":"line","customer_id":"c1","source":"app","sku":"c","qty":3,"order_line":2}`,
			},
		},
		{
			name:    "each over an absent array",
			mapping: "events:\n  - {type: line, key: c, each: lines, fields: {sku: item.sku}}\n  - {type: typed, key: c}\n",
			rec:     `{"c":"c1"}`,
			want:    []string{`{"id":"app:in.ndjson:3:1","type":"typed","customer_id":"c1","source":"app"}`},
		},
		{
			name:    "conditions see JSON types",
			mapping: "events:\n  - {type: typed, key: c, when: \"record.total > 10 && record.tags.exists(t, t == 'vip') && record.paid\"}\n",
			rec:     `{"c":"c1","total":12,"tags":["new","vip"],"paid":true}`,
			want:    []string{`{"id":"app:in.ndjson:3","type":"typed","customer_id":"c1","source":"app"}`},
		},
		{
			name:    "key as a template with a default",
			mapping: "events:\n  - {type: typed, key: {template: \"{a}-{b}\", default: anon}}\n",
			rec:     `{"a":"x"}`,
			want:    []string{`{"id":"app:in.ndjson:3","type":"typed","customer_id":"anon","source":"app"}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parseMapping(t, jsonHead+tt.mapping)
			var out Output
			if err := m.NewMapper().Map(&ingest.Record{Raw: []byte(tt.rec), Line: 3, Index: 3}, "in.ndjson", &out); err != nil {
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

func TestMapJSONErrors(t *testing.T) {
	tests := []struct {
		name, mapping, rec, field, msg string
	}{
		{"malformed", "events:\n  - {type: typed, key: c}\n", `{"c":`, "", "malformed JSON: cannot parse JSON: cannot parse object: cannot parse object value: cannot parse empty string; unparsed tail: \"\""},
		{"not an object", "events:\n  - {type: typed, key: c}\n", `[1]`, "", "a record must be a JSON object, found array"},
		{"object as text", "events:\n  - {type: typed, key: c, fields: {s: o}}\n", `{"c":"c1","o":{"a":1}}`, "s", `path "o": expected text, found a JSON object`},
		{"string as number", "events:\n  - {type: typed, key: c, fields: {n: o}}\n", `{"c":"c1","o":"twelve"}`, "n", `path "o": "twelve" is not a number`},
		{"bool as number", "events:\n  - {type: typed, key: c, fields: {n: o}}\n", `{"c":"c1","o":true}`, "n", `path "o": expected a number, found the bool true`},
		{"number as bool", "events:\n  - {type: typed, key: c, fields: {b: o}}\n", `{"c":"c1","o":2}`, "b", `path "o": "2" is not a bool (true: true, yes, y, t, 1; false: false, no, n, f, 0)`},
		{"array as time", "events:\n  - {type: typed, key: c, fields: {t: o}}\n", `{"c":"c1","o":[1]}`, "t", `path "o": expected a time, found a JSON array`},
		{"missing required", "events:\n  - {type: purchase, key: c, fields: {amount: total, product_id: p}}\n", `{"c":"c1","p":"x"}`, "amount", `path "total" is missing; amount is required for event type purchase`},
		{"null key", "events:\n  - {type: typed, key: u.id}\n", `{"u":{"id":null}}`, "customer_id", `path "u.id" is null; every event needs the twin key`},
		{"object key", "events:\n  - {type: typed, key: u}\n", `{"u":{"id":1}}`, "customer_id", `path "u": expected text, found a JSON object`},
		{"each over an object", "events:\n  - {type: line, key: c, each: lines, fields: {sku: item.sku}}\n", `{"c":"c1","lines":{"sku":"a"}}`, "lines", `each: path "lines": expected an array, found a JSON object`},
		{"required item field", "events:\n  - {type: line, key: c, each: lines, id: \"{$index}\", fields: {sku: item.sku}}\n", `{"c":"c1","lines":[{"sku":"a"},{}]}`, "sku", `path "item.sku" is missing; sku is required for event type line`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parseMapping(t, jsonHead+tt.mapping)
			var out Output
			err := m.NewMapper().Map(&ingest.Record{Raw: []byte(tt.rec), Line: 1, Index: 1}, "in.ndjson", &out)
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

// TestOlist maps Olist's order items through two lookups: order_items ->
// orders (by order_id) -> customers (by the order's customer_id, optional).
func TestOlist(t *testing.T) {
	src, err := os.ReadFile("testdata/olist/olist.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc := testSchema(t)
	m, err := Parse(src, sc, Options{Dir: "testdata/olist"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Source != "olist" || m.Description == "" || m.Format.Kind != ingest.FormatCSV || !bytes.Equal(m.Src, src) {
		t.Errorf("Mapping = %q %q %v, Src kept: %v", m.Source, m.Description, m.Format.Kind, bytes.Equal(m.Src, src))
	}
	recs := csvRecords(t, "testdata/olist/olist_order_items_dataset.csv")
	mp := m.NewMapper()
	var got []string
	var out Output
	var errs []error
	for i := range recs {
		if err := mp.Map(&recs[i], "olist_order_items_dataset.csv", &out); err != nil {
			errs = append(errs, err)
			continue
		}
		got = append(got, events(&out)...)
	}
	want := []string{
		// October 2, 2017: Brazil's daylight saving time had not started (UTC-3).
		`{"id":"olist-e481f51cbdc54678b7cc49136f2d6af7-1","type":"purchase","customer_id":"7c396fd4830fd04220f754e42b4e5bff","time":"2017-10-02T13:56:33Z","source":"olist","amount":29.99,"product_id":"87285b34884572647811a353c7ac498a","category":"SP/delivered"}`,
		`{"id":"olist-53cdb2fc8bc7dce0b6741e2150273451-1","type":"purchase","customer_id":"af07308b275d755c9edb36a90c618231","time":"2018-07-24T23:41:37Z","source":"olist","amount":118.70,"product_id":"595fac2a385ac33a80bd5114aec74eb8","category":"BA/delivered"}`,
		`{"id":"olist-47770eb9100c2d0c44946d9cf07ec65d-1","type":"purchase","customer_id":"3a653a41f6f9fc3d2a113cf8398680e8","time":"2018-08-08T11:38:49Z","source":"olist","amount":159.90,"product_id":"aa4383b373c6aca5d8797843e5594415","category":"GO/delivered"}`,
		`{"id":"olist-47770eb9100c2d0c44946d9cf07ec65d-2","type":"purchase","customer_id":"3a653a41f6f9fc3d2a113cf8398680e8","time":"2018-08-08T11:38:49Z","source":"olist","amount":159.90,"product_id":"aa4383b373c6aca5d8797843e5594415","category":"GO/delivered"}`,
		// November 18, 2017: daylight saving time (UTC-2); the customer is
		// not in the (optional) lookup, so the key falls back to its default
		// and the category template, which needs the customer, is absent.
		`{"id":"olist-949d5b44dbf5de918fe9c16f97b45f8a-1","type":"purchase","customer_id":"unknown","time":"2017-11-18T21:28:06Z","source":"olist","amount":45.00,"product_id":"d0b61bfb1de832b15ba9d266ca96e5b0"}`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	checkDecodes(t, sc, got)
	if len(errs) != 1 {
		t.Fatalf("errors %v, want one for the order that is not in orders", errs)
	}
	fieldError(t, errs[0], "order_id", `"ffffffffffffffffffffffffffffffff" not found in lookup orders`)
}

// TestJSONLookups joins with an NDJSON and a JSON-array lookup, on a text
// and on a JSON number.
func TestJSONLookups(t *testing.T) {
	m := parseMapping(t, jsonHead+`
lookups:
  products: {file: lookups/products.ndjson, key: sku}
  stores: {file: lookups/stores.json, key: id}
joins:
  - {lookup: products, on: sku, as: product}
  - {lookup: stores, on: store, as: store, optional: true}
events:
  - type: typed
    key: c
    when: '"fruit" in record.product.tags || has(record.store)'
    fields: {s: product.name, n: product.dims.w, e: {const: red}, i: store.id}
  - type: profile
    key: c
    fields: {country: store.region.code, name: store.city}
`)
	sc := testSchema(t)
	tests := []struct {
		rec  string
		want []string
	}{
		{`{"c":"c1","sku":"a","store":1}`, []string{
			`{"id":"app:f:1:0","type":"typed","customer_id":"c1","source":"app","s":"Apple","n":1.5,"e":"red","i":1}`,
			`{"id":"app:f:1:1","type":"profile","customer_id":"c1","source":"app","country":"eu","name":"Berlin"}`,
		}},
		{`{"c":"c2","sku":"b","store":30}`, []string{
			`{"id":"app:f:1:0","type":"typed","customer_id":"c2","source":"app","s":"Banana","e":"red","i":30}`,
			`{"id":"app:f:1:1","type":"profile","customer_id":"c2","source":"app","name":"Austin"}`,
		}},
		{`{"c":"c3","sku":"b","store":99}`, []string{
			`{"id":"app:f:1:1","type":"profile","customer_id":"c3","source":"app"}`,
		}},
	}
	mp := m.NewMapper()
	for _, tt := range tests {
		var out Output
		if err := mp.Map(&ingest.Record{Raw: []byte(tt.rec), Line: 1, Index: 1}, "f", &out); err != nil {
			t.Fatalf("Map(%s): %v", tt.rec, err)
		}
		got := events(&out)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Map(%s) events (-want +got):\n%s", tt.rec, diff)
		}
		checkDecodes(t, sc, got)
	}
	err := mp.Map(&ingest.Record{Raw: []byte(`{"c":"c1","sku":"zz"}`)}, "f", &Output{})
	fieldError(t, err, "sku", `"zz" not found in lookup products`)
	err = mp.Map(&ingest.Record{Raw: []byte(`{"c":"c1"}`)}, "f", &Output{})
	fieldError(t, err, "sku", `path "sku" is missing; it is needed to find the row in lookup products`)
}

// TestGzipLookup reads a gzip-compressed, Latin-1, semicolon-separated
// lookup, detected from its bytes.
func TestGzipLookup(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("id;name\r\n1;Jos\xe9\r\n# a comment\r\n2;\"M\xfcller; Sohn\"\r\n"))
	zw.Close()
	if err := os.WriteFile(filepath.Join(dir, "names.csv.gz"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Parse([]byte(jsonHead+`
lookups:
  names: {file: names.csv.gz, key: id, csv: {delimiter: ";", encoding: latin1, comment: "#"}}
joins:
  - {lookup: names, on: n, as: who}
events:
  - {type: profile, key: c, fields: {name: who.name}}
`), testSchema(t), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	mp := m.NewMapper()
	for rec, want := range map[string]string{`{"c":"a","n":1}`: `"name":"José"`, `{"c":"b","n":"2"}`: `"name":"Müller; Sohn"`} {
		var out Output
		if err := mp.Map(&ingest.Record{Raw: []byte(rec)}, "f", &out); err != nil {
			t.Fatalf("Map(%s): %v", rec, err)
		}
		if !bytes.Contains(out.Event(0), []byte(want)) {
			t.Errorf("Map(%s) = %s, want %s", rec, out.Event(0), want)
		}
	}
}
