package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
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
	"github.com/twinhub/twinhub/source"
)

// The CRM example shipped in testdata/crm: a PostgreSQL customers table
// (id, full_name, email, tier, country, updated_at) captured by Debezium,
// mapped onto the retail schema's profile attributes.
const (
	crmDir     = "testdata/crm"
	crmMapping = crmDir + "/customers.yaml"
	crmTable   = "crm.public.customers"
)

// startMain opens a server on a loopback port with its data in dir; Close
// may be called early to restart on the same dir.
func startMain(tb testing.TB, dir string) *Main {
	tb.Helper()
	m := &Main{DataDir: dir, Listen: "127.0.0.1:0"}
	if err := m.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Error(err)
		}
	})
	return m
}

func serverOf(m *Main) string { return "http://" + m.Addr.String() }

func putCRMMapping(t *testing.T, server string) {
	t.Helper()
	src, err := os.ReadFile(crmMapping)
	if err != nil {
		t.Fatal(err)
	}
	put(t, server+"/v1/sources/crm", string(src))
}

// postRecords posts body to source crm, named file when file is not "".
func postRecords(t *testing.T, server, file string, body []byte) source.Summary {
	t.Helper()
	u := server + "/v1/sources/crm/records"
	if file != "" {
		u += "?file=" + url.QueryEscape(file)
	}
	resp, err := http.Post(u, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s: %s", u, resp.Status, data)
	}
	var ans importAnswer
	if err := json.Unmarshal(data, &ans); err != nil {
		t.Fatalf("POST %s: %v: %s", u, err, data)
	}
	return ans.Summary
}

var ingestSummaryRE = regexp.MustCompile(`: (\d+) records: (\d+) events accepted, (\d+) duplicates, (\d+) records skipped, (\d+) rejected`)

// ingestCRM uploads file with `twinhub ingest --source crm` and returns the
// counts it printed, and its output.
func ingestCRM(t *testing.T, server, file string) (source.Summary, result) {
	t.Helper()
	r := twinhub(t, "", "ingest", "--server", server, "--source", "crm", file)
	m := ingestSummaryRE.FindStringSubmatch(r.stdout)
	if m == nil || (r.code != exitOK && r.code != exitProblem) {
		t.Fatalf("twinhub ingest --source crm %s: exit %d\nstdout: %s\nstderr: %s", file, r.code, r.stdout, r.stderr)
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	sum := source.Summary{Records: n(1), Events: n(2), Duplicates: n(3), Skipped: n(4), Rejected: n(5)}
	if (sum.Rejected > 0) != (r.code == exitProblem) {
		t.Errorf("twinhub ingest: exit %d with %d rejected", r.code, sum.Rejected)
	}
	return sum, r
}

// attrJSON is one attribute of GET /v1/twins/{key}.
type attrJSON struct {
	Value    any       `json:"value"`
	Source   string    `json:"source"`
	EventID  string    `json:"event_id"`
	Time     time.Time `json:"time"`
	Position int64     `json:"position"`
}

type twinJSON struct {
	Key        string              `json:"key"`
	Revision   uint64              `json:"revision"`
	Attributes map[string]attrJSON `json:"attributes"`
	Aggregates map[string]any      `json:"aggregates"`
}

func getTwin(t *testing.T, server, key string) twinJSON {
	t.Helper()
	var tw twinJSON
	if code := getJSON(t, server+"/v1/twins/"+url.PathEscape(key), &tw); code != http.StatusOK {
		t.Fatalf("GET /v1/twins/%s: status %d", key, code)
	}
	return tw
}

// twinState is what a user sees of a twin that must not change across a
// restart or a rebuild: attributes with lineage, revision and event count.
type twinState struct {
	Revision    uint64
	EventsTotal any
	Attributes  map[string]attrJSON
}

func stateOf(tw twinJSON) twinState {
	return twinState{tw.Revision, tw.Aggregates["events_total"], tw.Attributes}
}

// customer is a row image of crm.public.customers; nil is SQL NULL.
type customer struct {
	ID                         int
	Name, Email, Tier, Country *string
	UpdatedAt                  string
}

func str(s string) *string { return &s }

func (c *customer) json() map[string]any {
	v := func(s *string) any {
		if s == nil {
			return nil
		}
		return *s
	}
	return map[string]any{"id": c.ID, "full_name": v(c.Name), "email": v(c.Email), "tier": v(c.Tier),
		"country": v(c.Country), "updated_at": c.UpdatedAt}
}

// pgChange is one Debezium change event of crm.public.customers.
type pgChange struct {
	op   string   // c, u, d
	row  customer // the after image; a delete sends the key only
	lsn  int64
	tsMS int64 // commit time
	txID int64
}

// envelope returns the change as the Debezium PostgreSQL connector writes
// it: bare (schemas.enable=false) or in the JsonConverter's
// {"schema","payload"} wrapper.
func (c pgChange) envelope(wrapped bool) string {
	var before, after any
	if c.op == "d" {
		// REPLICA IDENTITY DEFAULT: the before image holds the key only.
		before = map[string]any{"id": c.row.ID, "full_name": nil, "email": nil, "tier": nil, "country": nil, "updated_at": nil}
	} else {
		after = c.row.json()
	}
	payload := map[string]any{
		"before": before, "after": after, "op": c.op, "ts_ms": c.tsMS + 230, "transaction": nil,
		"source": map[string]any{
			"version": "2.5.0.Final", "connector": "postgresql", "name": "crm", "ts_ms": c.tsMS, "snapshot": "false",
			"db": "crm", "sequence": fmt.Sprintf(`["%d","%d"]`, c.lsn-0x40, c.lsn), "schema": "public", "table": "customers",
			"txId": c.txID, "lsn": c.lsn, "xmin": nil,
		},
	}
	var v any = payload
	if wrapped {
		v = map[string]any{"schema": crmEnvelopeSchema, "payload": payload}
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// crmEnvelopeSchema is the Kafka Connect schema the JsonConverter writes
// with each change when schemas.enable is true, taken from the shipped
// example.
var crmEnvelopeSchema = func() json.RawMessage {
	data, err := os.ReadFile(filepath.Join(crmDir, "customers-connect.ndjson"))
	if err != nil {
		panic(err)
	}
	var first struct{ Schema json.RawMessage }
	if err := json.Unmarshal(data[:bytes.IndexByte(data, '\n')], &first); err != nil || first.Schema == nil {
		panic(fmt.Sprintf("customers-connect.ndjson: no schema in the first line: %v", err))
	}
	return first.Schema
}()

// want is what GET /v1/twins says after c is the newest change: its values
// (nulls for a delete), each with c's lineage.
func (c pgChange) want() map[string]attrJSON {
	lin := func(v *string) attrJSON {
		a := attrJSON{Source: crmTable, EventID: fmt.Sprintf("crm:%s:%d:%d", crmTable, c.row.ID, c.lsn),
			Time: time.UnixMilli(c.tsMS).UTC(), Position: c.lsn}
		if v != nil && c.op != "d" {
			a.Value = *v
		}
		return a
	}
	return map[string]attrJSON{"name": lin(c.row.Name), "email": lin(c.row.Email), "tier": lin(c.row.Tier), "country": lin(c.row.Country)}
}

var (
	tiers     = []string{"bronze", "silver", "gold", "platinum"}
	countries = []string{"DE", "FR", "GB", "US", "BR"}
)

// rowHistory makes the changes of one row, in log order: an insert, then
// updates (some setting a column to NULL, some setting it back), a delete
// and a re-insert of the same id somewhere in the middle, and maybe a
// final delete. Commit times never decrease and often repeat (changes of
// one transaction), so only the positions can order them.
func rowHistory(rng *rand.Rand, id int) []pgChange {
	n := 8 + rng.IntN(5)
	del := 2 + rng.IntN(n-4) // a delete at del, a re-insert at del+1
	lsn := int64(0x3A0000000) + int64(id)*0x10000
	ts := time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC).UnixMilli() + int64(id)*60_000
	row := customer{ID: id}
	nulled := false
	var out []pgChange
	for i := range n {
		lsn += 10
		if rng.IntN(2) == 0 {
			ts += 1 + int64(rng.IntN(90_000))
		}
		op := "u"
		switch {
		case i == 0 || i == del+1:
			op = "c"
			row = customer{ID: id, Name: str(fmt.Sprintf("Customer %d (%d)", id, i)), Email: str(fmt.Sprintf("c%d.%d@example.com", id, i)),
				Tier: str(tiers[rng.IntN(len(tiers))]), Country: str(countries[rng.IntN(len(countries))])}
		case i == del || i == n-1 && rng.IntN(3) == 0:
			op = "d"
		default:
			// An update of one or two columns; the first update, and then
			// one in three, sets a column to NULL.
			for range 1 + rng.IntN(2) {
				col := []**string{&row.Name, &row.Email, &row.Tier, &row.Country}[rng.IntN(4)]
				switch {
				case *col != nil && (!nulled || rng.IntN(3) == 0):
					*col, nulled = nil, true
				case col == &row.Tier:
					*col = str(tiers[rng.IntN(len(tiers))])
				case col == &row.Country:
					*col = str(countries[rng.IntN(len(countries))])
				default:
					*col = str(fmt.Sprintf("v%d-%d", i, rng.IntN(1000)))
				}
			}
		}
		row.UpdatedAt = time.UnixMilli(ts).UTC().Format("2006-01-02T15:04:05.000000Z")
		out = append(out, pgChange{op: op, row: row, lsn: lsn, tsMS: ts, txID: 9000 + int64(id)*100 + int64(i)})
	}
	return out
}

// noise are messages of a change stream that are no change of a row:
// tombstones, heartbeats (bare and wrapped), a truncate, a logical
// decoding message, and a wrapped tombstone.
var noise = []string{
	`null`,
	`{"ts_ms":1714550460000}`,
	`{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.common.Heartbeat"},"payload":{"ts_ms":1714550470000}}`,
	`{"before":null,"after":null,"source":{"version":"2.5.0.Final","connector":"postgresql","name":"crm","ts_ms":1714550480000,"snapshot":"false","db":"crm","schema":"public","table":"customers","txId":8810,"lsn":15569999000},"op":"t","ts_ms":1714550480100,"transaction":null}`,
	`{"op":"m","ts_ms":1714550490100,"source":{"version":"2.5.0.Final","connector":"postgresql","name":"crm","ts_ms":1714550490000,"db":"crm","schema":"","table":"","lsn":15569999100},"message":{"prefix":"audit","content":"aGVsbG8="}}`,
	`{"schema":null,"payload":null}`,
}

// TestCDCOutOfOrder is the acceptance test of change data capture:
// Debezium inserts, updates and deletes of one row, delivered in any order
// and with re-sent duplicates, through the CLI and over HTTP, leave the
// twin as the change with the greatest log position says, with its
// lineage; and so do a restart and a schema swap.
func TestCDCOutOfOrder(t *testing.T) {
	dir := t.TempDir()
	m := startMain(t, dir)
	server := serverOf(m)
	putCRMMapping(t, server)
	files := t.TempDir()
	rng := rand.New(rand.NewPCG(20240501, 7))

	type perm struct {
		id      int
		changes []pgChange
		stream  []string // the records sent, in order
		events  int      // how many of them are changes (duplicates included)
	}
	var perms []perm
	var keys []string
	// Four histories, each delivered in four orders: in log order, reversed
	// and shuffled twice. Each delivery is a row of its own, so a twin of
	// its own: the row id is part of the permutation.
	for k := range 16 {
		h, order := k/4, k%4
		id := 2001 + 10*h + order
		changes := rowHistory(rand.New(rand.NewPCG(uint64(h), 1)), id) // the same history for each order
		// Every change once, a few again (a connector restarted from an
		// older offset), each record bare or wrapped, and some noise.
		var stream []string
		for _, c := range changes {
			stream = append(stream, c.envelope(rng.IntN(2) == 0))
		}
		for range 1 + rng.IntN(3) {
			stream = append(stream, changes[rng.IntN(len(changes))].envelope(rng.IntN(2) == 0))
		}
		events := len(stream)
		for range 1 + rng.IntN(2) {
			i := rng.IntN(len(stream) + 1)
			stream = slices.Insert(stream, i, noise[rng.IntN(len(noise))])
		}
		switch order {
		case 0:
		case 1:
			slices.Reverse(stream)
		default:
			rng.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })
		}
		perms = append(perms, perm{id, changes, stream, events})
		keys = append(keys, strconv.Itoa(id))

		// Cut the stream into up to four parts, each uploaded its own way.
		var total source.Summary
		for part, rest := 0, stream; len(rest) > 0; part++ {
			n := 1 + rng.IntN(len(rest))
			if part == 3 {
				n = len(rest)
			}
			body := []byte(strings.Join(rest[:n], "\n") + "\n")
			var sum source.Summary
			switch how := rng.IntN(3); how {
			case 0:
				file := filepath.Join(files, fmt.Sprintf("customers-%d-%d.ndjson", id, part))
				if err := os.WriteFile(file, body, 0o600); err != nil {
					t.Fatal(err)
				}
				sum, _ = ingestCRM(t, server, file)
			case 1:
				sum = postRecords(t, server, fmt.Sprintf("customers-%d-%d.ndjson", id, part), body)
			case 2:
				sum = postRecords(t, server, "", body)
			}
			total.Records += sum.Records
			total.Events += sum.Events
			total.Duplicates += sum.Duplicates
			total.Skipped += sum.Skipped
			total.Rejected += sum.Rejected
			rest = rest[n:]
		}
		want := source.Summary{Records: len(stream), Events: len(changes), Duplicates: events - len(changes), Skipped: len(stream) - events}
		if d := cmp.Diff(want, total); d != "" {
			t.Errorf("row %d: what the uploads counted (-want +got):\n%s", id, d)
		}
	}

	check := func(when string) map[string]twinState {
		t.Helper()
		got := map[string]twinState{}
		for _, p := range perms {
			key := strconv.Itoa(p.id)
			tw := getTwin(t, server, key)
			got[key] = stateOf(tw)
			newest := p.changes[len(p.changes)-1]
			if d := cmp.Diff(newest.want(), tw.Attributes); d != "" {
				t.Errorf("%s: twin %s after %d changes (newest: %s at position %d) in the order\n%s\nattributes (-want +got):\n%s",
					when, key, len(p.changes), newest.op, newest.lsn, summarize(p.stream), d)
			}
			n := float64(len(p.changes))
			if tw.Revision != uint64(len(p.changes)) || tw.Aggregates["events_total"] != n {
				t.Errorf("%s: twin %s: revision %d, events_total %v; want %d for %d changes, each counted once",
					when, key, tw.Revision, tw.Aggregates["events_total"], len(p.changes), len(p.changes))
			}
		}
		return got
	}
	before := check("after the uploads")

	// A restart reads the twins back from their snapshots and the archive.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = startMain(t, dir)
	server = serverOf(m)
	if d := cmp.Diff(before, check("after a restart")); d != "" {
		t.Errorf("a restart changed the twins (-before +after):\n%s", d)
	}
	// Sending everything again counts nothing, and a change older than the
	// newest, seen for the first time, counts but changes no attribute:
	// the tombstones and positions survived the restart.
	p := perms[0]
	sum := postRecords(t, server, "again.ndjson", []byte(strings.Join(p.stream, "\n")))
	if sum.Events != 0 || sum.Duplicates != p.events {
		t.Errorf("sending row %d's stream again after a restart: %+v, want %d duplicates and no event", p.id, sum, p.events)
	}
	for _, p := range perms {
		stale := p.changes[0]
		stale.op, stale.lsn, stale.tsMS = "u", stale.lsn+5, p.changes[len(p.changes)-1].tsMS+86_400_000
		stale.row.Name, stale.row.Email, stale.row.Tier, stale.row.Country = str("Stale"), str("stale@example.com"), str("gold"), str("XX")
		if sum := postRecords(t, server, "", []byte(stale.envelope(true))); sum.Events != 1 {
			t.Fatalf("stale update of row %d: %+v, want it accepted", p.id, sum)
		}
		st := before[strconv.Itoa(p.id)]
		st.Revision++
		st.EventsTotal = st.EventsTotal.(float64) + 1
		before[strconv.Itoa(p.id)] = st
	}
	after := map[string]twinState{}
	for _, k := range keys {
		after[k] = stateOf(getTwin(t, server, k))
	}
	if d := cmp.Diff(before, after); d != "" {
		t.Errorf("updates older than the newest change, sent after a restart, changed attributes (-want +got):\n%s", d)
	}

	// A schema swap rebuilds every twin from the archive: the same
	// attributes, lineage and revisions, and the new aggregate backfilled.
	src := strings.Replace(string(schema.DefaultYAML()), "aggregates:\n", "aggregates:\n  profile_changes: {kind: count, on: profile}\n", 1)
	put(t, server+"/v1/schema", src)
	for _, k := range keys {
		tw := getTwin(t, server, k)
		if d := cmp.Diff(after[k], stateOf(tw)); d != "" {
			t.Errorf("twin %s after a schema swap (-before +after):\n%s", k, d)
		}
		if tw.Aggregates["profile_changes"] != tw.Aggregates["events_total"] {
			t.Errorf("twin %s: profile_changes %v after the swap, want events_total %v", k, tw.Aggregates["profile_changes"], tw.Aggregates["events_total"])
		}
	}
	// The mapping still maps under the new schema, and ids seen before the
	// swap are still known.
	sum = postRecords(t, server, "", []byte(strings.Join(perms[1].stream, "\n")))
	if sum.Events != 0 || sum.Duplicates != perms[1].events || sum.Rejected != 0 {
		t.Errorf("sending row %d's stream again after a schema swap: %+v, want %d duplicates", perms[1].id, sum, perms[1].events)
	}
}

// summarize lists a stream's records as op@position, for failure messages.
func summarize(stream []string) string {
	var b strings.Builder
	for _, rec := range stream {
		var env struct {
			Op      string
			Source  struct{ LSN int64 }
			Payload *struct {
				Op     string
				Source struct{ LSN int64 }
			}
		}
		json.Unmarshal([]byte(rec), &env)
		if env.Payload != nil {
			env.Op, env.Source = env.Payload.Op, env.Payload.Source
		}
		if env.Op == "" {
			b.WriteString(" (no change)")
			continue
		}
		fmt.Fprintf(&b, " %s@%d", env.Op, env.Source.LSN)
	}
	return b.String()
}

// crmAttrs is what a twin of the CRM example shows: name, email, tier and
// country (nil for NULL), all written by the change at eventID.
func crmAttrs(name, email, tier, country any, eventID string, at string, position int64) map[string]attrJSON {
	tm, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		panic(err)
	}
	table := eventID[len("crm:"):strings.LastIndexByte(eventID[:strings.LastIndexByte(eventID, ':')], ':')]
	a := func(v any) attrJSON {
		return attrJSON{Value: v, Source: table, EventID: eventID, Time: tm, Position: position}
	}
	return map[string]attrJSON{"name": a(name), "email": a(email), "tier": a(tier), "country": a(country)}
}

// TestCRMExample runs the shipped example: the customers table's change
// events, from PostgreSQL with and without the JsonConverter's schema
// wrapper, and from MySQL, some arriving after newer ones, leave each
// customer as the newest change says, with the table, the row and the log
// position as lineage.
func TestCRMExample(t *testing.T) {
	type wantTwin struct {
		revision uint64
		attrs    map[string]attrJSON
	}
	t.Run("postgres", func(t *testing.T) {
		server := serverOf(startMain(t, t.TempDir()))
		putCRMMapping(t, server)
		// The wrapped file first: the newest changes, then an older offset
		// re-delivered after a connector restart. Then the plain file, from
		// the snapshot on, whose last four changes are already in.
		body, err := os.ReadFile(filepath.Join(crmDir, "customers-connect.ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		got := postRecords(t, server, "customers-connect.ndjson", body)
		if want := (source.Summary{Records: 7, Events: 6, Skipped: 1}); !cmp.Equal(want, got) {
			t.Errorf("POST customers-connect.ndjson counted %+v, want %+v", got, want)
		}
		got, _ = ingestCRM(t, server, filepath.Join(crmDir, "customers.ndjson"))
		if want := (source.Summary{Records: 9, Events: 4, Duplicates: 4, Skipped: 1}); !cmp.Equal(want, got) {
			t.Errorf("twinhub ingest customers.ndjson counted %+v, want %+v", got, want)
		}
		for key, want := range map[string]wantTwin{
			// The snapshot, then a tier upgrade.
			"1001": {2, crmAttrs("Ada Lovelace", "ada@example.com", "platinum", "GB",
				"crm:crm.public.customers:1001:15569263904", "2024-05-01T09:02:11.503Z", 15569263904)},
			// The snapshot, then the e-mail set to NULL in the same transaction.
			"1002": {2, crmAttrs("Grace Hopper", nil, "silver", "US",
				"crm:crm.public.customers:1002:15569264144", "2024-05-01T09:02:11.503Z", 15569264144)},
			// Snapshot, update, delete, re-insert: the delete and the update
			// arrived last and changed nothing.
			"1003": {4, crmAttrs("Alan Turing", "turing@example.org", "bronze", "GB",
				"crm:crm.public.customers:1003:15569842888", "2024-05-03T07:59:59.999Z", 15569842888)},
			"1004": {2, crmAttrs("Katherine Johnson", "katherine@example.com", "silver", "US",
				"crm:crm.public.customers:1004:15569635744", "2024-05-02T14:20:05.7Z", 15569635744)},
		} {
			tw := getTwin(t, server, key)
			if d := cmp.Diff(want.attrs, tw.Attributes); d != "" {
				t.Errorf("customer %s: attributes (-want +got):\n%s", key, d)
			}
			if tw.Revision != want.revision {
				t.Errorf("customer %s: revision %d, want %d (one per distinct change)", key, tw.Revision, want.revision)
			}
		}
		// Lineage as a user reads it: which table, which row, which position.
		email := getTwin(t, server, "1002").Attributes["email"]
		if email.Value != nil || email.Source != crmTable || !strings.Contains(email.EventID, ":1002:") ||
			!strings.HasSuffix(email.EventID, ":"+strconv.FormatInt(email.Position, 10)) || email.Position != 15569264144 {
			t.Errorf("customer 1002's email = %+v; want null, from %s, row 1002 at position 15569264144", email, crmTable)
		}
	})

	t.Run("mysql", func(t *testing.T) {
		server := serverOf(startMain(t, t.TempDir()))
		putCRMMapping(t, server)
		// A server with a long binlog history (mysql-bin.001041): positions
		// pack file, offset and row as file<<43 | pos<<11 | row.
		got, r := ingestCRM(t, server, filepath.Join(crmDir, "customers-mysql.ndjson"))
		if want := (source.Summary{Records: 11, Events: 10, Skipped: 1}); !cmp.Equal(want, got) {
			t.Fatalf("twinhub ingest customers-mysql.ndjson counted %+v, want %+v\n%s", got, want, r.stdout)
		}
		for key, want := range map[string]wantTwin{
			"1001": {2, crmAttrs("Ada Lovelace", "ada@example.com", "platinum", "GB",
				"crm:crm.customers:1001:9156732848146432", "2024-05-01T09:02:11.503Z", 1041<<43|5873<<11)},
			// The second row of the same binlog event.
			"1002": {2, crmAttrs("Grace Hopper", nil, "silver", "US",
				"crm:crm.customers:1002:9156732848146433", "2024-05-01T09:02:11.503Z", 1041<<43|5873<<11|1)},
			"1003": {4, crmAttrs("Alan Turing", "turing@example.org", "bronze", "GB",
				"crm:crm.customers:1003:9165530732224512", "2024-05-03T07:59:59.999Z", 1042<<43|880412<<11)},
			"1004": {2, crmAttrs("Katherine Johnson", "katherine@example.com", "silver", "US",
				"crm:crm.customers:1004:9165528931782656", "2024-05-02T14:20:05.7Z", 1042<<43|1290<<11)},
		} {
			tw := getTwin(t, server, key)
			if d := cmp.Diff(want.attrs, tw.Attributes); d != "" {
				t.Errorf("customer %s: attributes (-want +got):\n%s", key, d)
			}
			if tw.Revision != want.revision {
				t.Errorf("customer %s: revision %d, want %d (one per distinct change)", key, tw.Revision, want.revision)
			}
		}
	})
}

// TestCDCNoiseAndMalformedChanges: tombstones, heartbeats, truncates and
// logical decoding messages in a change stream are skipped and counted as
// such; a change that is not one (an unknown op, an insert without its row
// image) is rejected with its line and a reason, and kept as a dead letter.
func TestCDCNoiseAndMalformedChanges(t *testing.T) {
	server := serverOf(startMain(t, t.TempDir()))
	putCRMMapping(t, server)

	row := customer{ID: 3001, Name: str("Hedy Lamarr"), Email: str("hedy@example.com"), Tier: str("gold"), Country: str("AT")}
	ins := pgChange{op: "c", row: row, lsn: 15569300000, tsMS: 1714550500000, txID: 8801}
	upd := ins
	upd.op, upd.lsn, upd.tsMS, upd.row.Tier = "u", ins.lsn+0x60, ins.tsMS+1000, str("platinum")
	unknownOp := strings.Replace(upd.envelope(false), `"op":"u"`, `"op":"x"`, 1)
	noAfter := strings.Replace(ins.envelope(false), `"after":{`, `"image":{`, 1)
	nullAfter := strings.Replace(strings.Replace(ins.envelope(true), `"after":{`, `"after":null,"image":{`, 1), `"lsn":15569300000`, `"lsn":15569300010`, 1)
	lines := []string{
		noise[0],            // 1: a tombstone first
		ins.envelope(false), // 2
		noise[1],            // 3: heartbeat
		noise[3],            // 4: truncate
		unknownOp,           // 5: rejected
		noise[2],            // 6: wrapped heartbeat
		noAfter,             // 7: rejected
		noise[5],            // 8: wrapped tombstone
		upd.envelope(true),  // 9
		noise[4],            // 10: logical decoding message
		nullAfter,           // 11: rejected
		noise[0],            // 12: the tombstone after a delete
	}
	file := filepath.Join(t.TempDir(), "noise.ndjson")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, r := ingestCRM(t, server, file)
	if want := (source.Summary{Records: 12, Skipped: 7, Rejected: 3, Events: 2}); !cmp.Equal(want, got) {
		t.Errorf("ingest counted %+v, want %+v\n%s", got, want, r.stdout)
	}
	if r.code != exitProblem {
		t.Errorf("ingest exit %d, want %d: some records were rejected", r.code, exitProblem)
	}
	reasons := map[int]struct{ field, reason string }{
		5:  {"op", `"x" is not a Debezium operation (c, u, d, r, t)`},
		7:  {"", "the change (op c) has no after row image"},
		11: {"", "the change (op c) has no after row image"},
	}
	for line, w := range reasons {
		want := fmt.Sprintf("%s:%d: %s", displayName(file), line, w.reason)
		if w.field != "" {
			want = fmt.Sprintf("%s:%d: %s: %s", displayName(file), line, w.field, w.reason)
		}
		if !strings.Contains(r.stdout, want) {
			t.Errorf("ingest output lacks %q:\n%s", want, r.stdout)
		}
	}

	var dl deadLetterList
	if code := getJSON(t, server+"/v1/deadletters?source=crm", &dl); code != http.StatusOK {
		t.Fatalf("GET /v1/deadletters: status %d", code)
	}
	if len(dl.DeadLetters) != len(reasons) || dl.Counts["crm"] != int64(len(reasons)) {
		t.Fatalf("dead letters %+v (counts %v), want lines 5, 7 and 11", dl.DeadLetters, dl.Counts)
	}
	for _, d := range dl.DeadLetters {
		w, ok := reasons[d.Line]
		if !ok || d.File != "noise.ndjson" || d.Field != w.field || d.Reason != w.reason || d.Raw != lines[d.Line-1] {
			t.Errorf("dead letter at line %d: %+v; want file noise.ndjson, field %q, reason %q and the line as it was", d.Line, d, w.field, w.reason)
		}
	}

	tw := getTwin(t, server, "3001")
	if tw.Revision != 2 || tw.Attributes["tier"].Value != "platinum" || tw.Attributes["tier"].Position != upd.lsn {
		t.Errorf("twin 3001: revision %d, tier %+v; want 2 changes and platinum from position %d", tw.Revision, tw.Attributes["tier"], upd.lsn)
	}
}
