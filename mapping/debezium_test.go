package mapping

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/twinhub/twinhub/ingest"
)

const crmMapping = `
source: crm
format: debezium
debezium:
  on_delete: %s
events:
  - type: profile
    key: customer_id
    fields: {name: full_name, email: email, tier: tier, country: {const: DE}}
`

// debeziumRecords reads one change event per line, as the reader does.
func debeziumRecords(t *testing.T, file string) []ingest.Record {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []ingest.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		recs = append(recs, ingest.Record{Raw: append([]byte(nil), sc.Bytes()...), Line: line, Index: line})
	}
	return recs
}

// mapAll maps every record and returns the events and errors, in order.
func mapAll(t *testing.T, m *Mapping, recs []ingest.Record, file string) ([]string, []error) {
	t.Helper()
	mp := m.NewMapper()
	var evs []string
	var errs []error
	var out Output
	for i := range recs {
		if err := mp.Map(&recs[i], file, &out); err != nil {
			errs = append(errs, err)
			continue
		}
		evs = append(evs, events(&out)...)
	}
	checkDecodes(t, m.schema, evs)
	return evs, errs
}

func TestDebeziumPostgres(t *testing.T) {
	recs := debeziumRecords(t, "testdata/debezium/postgres.ndjson")
	clearWant := []string{
		// c: an insert sets every field; time is source.ts_ms, position the LSN.
		`{"id":"crm:crm.public.customers:c1:24023128","type":"profile","customer_id":"c1","time":"2023-11-14T22:13:20Z","source":"crm.public.customers","name":"Ada Lovelace","email":"ada@example.com","tier":"gold","country":"DE","position":24023128}`,
		// u: a null in the row image clears the attribute.
		`{"id":"crm:crm.public.customers:c1:24023500","type":"profile","customer_id":"c1","time":"2023-11-14T22:15:00Z","source":"crm.public.customers","name":"Ada King","email":null,"tier":"platinum","country":"DE","position":24023500}`,
		// d with on_delete: clear: every mapped field but the constant is null.
		`{"id":"crm:crm.public.customers:c1:24024000","type":"profile","customer_id":"c1","time":"2023-11-14T22:16:40Z","source":"crm.public.customers","name":null,"email":null,"tier":null,"country":"DE","position":24024000}`,
		// r: a snapshot read is an insert.
		`{"id":"crm:crm.public.customers:c2:23000000","type":"profile","customer_id":"c2","time":"2023-07-22T04:26:40Z","source":"crm.public.customers","name":"Grace Hopper","email":"grace@example.com","tier":"silver","country":"DE","position":23000000}`,
		// t, a heartbeat and a tombstone produce nothing; the wrapped change maps.
		`{"id":"crm:crm.public.customers:c3:24026000","type":"profile","customer_id":"c3","time":"2023-11-14T22:21:40Z","source":"crm.public.customers","name":"Alan Turing","email":"alan@example.com","tier":"bronze","country":"DE","position":24026000}`,
	}
	for _, tt := range []struct {
		policy string
		want   []string
	}{
		{"clear", clearWant},
		{"ignore", append(append([]string(nil), clearWant[:2]...), clearWant[3:]...)},
	} {
		t.Run(tt.policy, func(t *testing.T) {
			m := parseMapping(t, fmt.Sprintf(crmMapping, tt.policy))
			got, errs := mapAll(t, m, recs, "crm.ndjson")
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDebeziumMySQL checks that MySQL binlog coordinates become positions
// that order as the binlog does, and that specials and envelope paths work.
func TestDebeziumMySQL(t *testing.T) {
	m := parseMapping(t, `
source: inv
format: debezium
events:
  - type: profile
    key: id
    id: "{$table}/{id}/{$op}/{$position}"
    time: {from: source.ts_ms, format: unix_ms}
    fields:
      name: {template: "{first_name} {last_name}"}
      email: email
      country: {template: "{$op}:{before.email}>{after.email}@{$source_ts}"}
`)
	got, errs := mapAll(t, m, debeziumRecords(t, "testdata/debezium/mysql.ndjson"), "")
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	want := []string{
		`{"id":"inventory.customers/1001/c/26388279382016","type":"profile","customer_id":"1001","time":"2023-11-14T22:13:20Z","source":"inventory.customers","name":"Sally Thomas","email":"sally.thomas@acme.com","position":26388279382016}`,
		`{"id":"inventory.customers/1001/u/26388280057856","type":"profile","customer_id":"1001","time":"2023-11-14T22:13:21Z","source":"inventory.customers","name":"Sally Thomas","email":"sally@acme.com","country":"u:sally.thomas@acme.com>sally@acme.com@1700000001000","position":26388280057856}`,
		`{"id":"inventory.customers/1001/d/35184372097026","type":"profile","customer_id":"1001","time":"2023-11-14T22:13:22Z","source":"inventory.customers","name":null,"email":null,"country":null,"position":35184372097026}`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		a, b [3]int64 // file, pos, row
	}{
		{[3]int64{3, 154, 0}, [3]int64{3, 154, 1}},
		{[3]int64{3, 154, 2047}, [3]int64{3, 155, 0}},
		{[3]int64{3, 1<<32 - 1, 0}, [3]int64{4, 4, 0}},
		{[3]int64{999998, 4, 0}, [3]int64{999999, 4, 0}},
	} {
		pa, oka := packMySQL("mysql-bin."+strconv.FormatInt(tc.a[0], 10), tc.a[1], tc.a[2])
		pb, okb := packMySQL("mysql-bin."+strconv.FormatInt(tc.b[0], 10), tc.b[1], tc.b[2])
		if !oka || !okb || pa >= pb || pa < 0 {
			t.Errorf("pack%v = %d, pack%v = %d, want increasing non-negative positions", tc.a, pa, tc.b, pb)
		}
		// The decoder takes every packed position: from mysql-bin.001024
		// on, where a busy server soon is, they exceed 2^53.
		checkDecodes(t, testSchema(t), []string{fmt.Sprintf(`{"id":"e","type":"profile","customer_id":"c","position":%d}`, pb)})
	}
	if _, ok := packMySQL("mysql-bin.000001", 1<<32, 0); ok {
		t.Error("a byte offset beyond 32 bits was packed")
	}
}

// TestDebeziumOptions covers debezium.position, the default id without a
// position and the errors.
func TestDebeziumOptions(t *testing.T) {
	m := parseMapping(t, `
source: crm
format: debezium
debezium: {position: source.seq}
events:
  - {type: profile, key: after.customer_id, when: 'op != "d" && record.tier != "x"', fields: {tier: tier}}
`)
	tests := []struct {
		name, rec string
		want      []string
		field     string
		msg       string
	}{
		{"position from a path", `{"op":"u","after":{"customer_id":"c1","tier":"gold"},"source":{"seq":"77","ts_ms":1700000000000,"table":"t"}}`,
			[]string{`{"id":"crm:t:c1:77","type":"profile","customer_id":"c1","time":"2023-11-14T22:13:20Z","source":"t","tier":"gold","position":77}`}, "", ""},
		{"no position: the id uses the source time", `{"op":"c","after":{"customer_id":"c1","tier":"gold"},"source":{"ts_ms":1700000000000}}`,
			[]string{`{"id":"crm::c1:1700000000000","type":"profile","customer_id":"c1","time":"2023-11-14T22:13:20Z","source":"crm","tier":"gold"}`}, "", ""},
		{"condition on op skips deletes", `{"op":"d","before":{"customer_id":"c1"},"source":{"seq":5}}`, nil, "", ""},
		{"bad position", `{"op":"c","after":{"customer_id":"c1"},"source":{"seq":"-3"}}`, nil, "position", `path "source.seq": "-3" is not a non-negative integer`},
		{"unknown op", `{"op":"x","after":{"customer_id":"c1"}}`, nil, "op", `"x" is not a Debezium operation (c, u, d, r, t)`},
		{"delete without a before image", `{"op":"d","before":null,"after":null}`, nil, "",
			"the change (op d) has no before row image; PostgreSQL sends one for deletes only with REPLICA IDENTITY FULL or the primary key columns"},
		{"not an object", `[1]`, nil, "", "a Debezium change event is a JSON object, found array"},
	}
	mp := m.NewMapper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out Output
			err := mp.Map(&ingest.Record{Raw: []byte(tt.rec), Line: 1, Index: 1}, "f", &out)
			if tt.msg != "" {
				fieldError(t, err, tt.field, tt.msg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, events(&out)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}
