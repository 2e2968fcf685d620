package mapping

import (
	"strconv"
	"testing"
	"time"

	"github.com/twinhub/twinhub/ingest"
)

const benchCSVMapping = `
source: shop
format: csv
events:
  - type: typed
    key: customer_id
    time: {from: date, format: "2006-01-02 15:04:05"}
    fields: {s: product, n: amount, i: quantity, b: member, e: colour}
`

func benchRecords(n int) []ingest.Record {
	header := []string{"customer_id", "date", "product", "amount", "quantity", "member", "colour"}
	recs := make([]ingest.Record, n)
	for i := range recs {
		fields := []string{"c-" + strconv.Itoa(i%5000), "2024-03-" + strconv.Itoa(10+i%18) + " 12:34:56",
			"p-" + strconv.Itoa(i%300), strconv.Itoa(i%100) + ".95", strconv.Itoa(1 + i%4), "yes", "red"}
		recs[i] = ingest.Record{Raw: []byte("raw"), Fields: fields, Header: header, Line: i + 2, Index: i + 1}
	}
	return recs
}

// BenchmarkMapCSV maps CSV records with a simple mapping: a key, a time
// with a layout and five typed fields. The pipeline's budget for mapping,
// decoding and applying is about 3 µs per record per core.
func BenchmarkMapCSV(b *testing.B) {
	m := parseMapping(b, benchCSVMapping)
	recs := benchRecords(1024)
	mp := m.NewMapper()
	var out Output
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := mp.Map(&recs[i%len(recs)], "orders.csv", &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMapCSVDecode adds the ingest decoder, which validates what Map
// produces: the cost of the path from a CSV row to a twinhub.Event.
func BenchmarkMapCSVDecode(b *testing.B) {
	m := parseMapping(b, benchCSVMapping)
	recs := benchRecords(1024)
	mp := m.NewMapper()
	d := ingest.NewDecoder(m.Schema(), func() time.Time { return testNow }, "shop")
	var out Output
	var batch ingest.Batch
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%512 == 0 {
			batch.Reset()
		}
		if err := mp.Map(&recs[i%len(recs)], "orders.csv", &out); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < out.Len(); j++ {
			if !d.Decode(out.Event(j), &batch) {
				b.Fatal(batch.Results[len(batch.Results)-1].Reason)
			}
		}
	}
}

// BenchmarkMapCSVWhen adds a condition to the simple mapping.
func BenchmarkMapCSVWhen(b *testing.B) {
	m := parseMapping(b, benchCSVMapping+`    when: record.quantity != "0"`+"\n")
	recs := benchRecords(1024)
	mp := m.NewMapper()
	var out Output
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := mp.Map(&recs[i%len(recs)], "orders.csv", &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMapJSON maps an NDJSON record with nested paths.
func BenchmarkMapJSON(b *testing.B) {
	m := parseMapping(b, `
source: app
format: ndjson
events:
  - type: typed
    key: user.id
    time: ts
    fields: {s: product.sku, n: amount, i: quantity, b: member, e: colour}
`)
	rec := ingest.Record{Raw: []byte(`{"user":{"id":"c-42","name":"Ada"},"ts":"2024-03-10T12:34:56Z","product":{"sku":"p-7","title":"Shoes"},"amount":59.95,"quantity":2,"member":true,"colour":"red"}`), Line: 1, Index: 1}
	mp := m.NewMapper()
	var out Output
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := mp.Map(&rec, "in.ndjson", &out); err != nil {
			b.Fatal(err)
		}
	}
}
