package datasets_test

import (
	"context"
	"encoding/csv"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twinhub/twinhub/datasets"
	"github.com/twinhub/twinhub/engine"
	"github.com/twinhub/twinhub/mapping"
	"github.com/twinhub/twinhub/schema"
	"github.com/twinhub/twinhub/source"
	"github.com/twinhub/twinhub/store/pebble"
)

// eachSet runs test on the excerpt of dataset name in testdata/, always,
// and on the full set in ../shared/data when it is there (see dataDir).
func eachSet(t *testing.T, name string, test func(t *testing.T, dir string, full bool)) {
	t.Run("excerpt", func(t *testing.T) { test(t, filepath.Join("testdata", name), false) })
	t.Run("full", func(t *testing.T) { test(t, dataDir(t, name), true) })
}

// dataDir returns the directory of dataset name in ../shared/data, which
// lives beside the repository. Without it the test is skipped, except in CI
// (CI=true), where the data must be there.
func dataDir(tb testing.TB, name string) string {
	tb.Helper()
	dir := filepath.Join("..", "..", "shared", "data", name)
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("dataset %s: %v; CI must provide ../shared/data", name, err)
		}
		tb.Skipf("dataset %s not found at %s (it lives beside the repository in ../shared/data): skipping the real-data test", name, dir)
	}
	return dir
}

// loaded is an engine that imported a whole dataset through its mappings.
type loaded struct {
	e    *engine.Engine
	db   *pebble.DB
	sums map[string]source.Summary // by file
}

func load(tb testing.TB, name, dir string) *loaded {
	tb.Helper()
	ds, err := datasets.Get(name)
	if err != nil {
		tb.Fatal(err)
	}
	sc, err := schema.Parse(ds.Schema)
	if err != nil {
		tb.Fatalf("%s schema: %v", name, err)
	}
	db, err := pebble.Open(tb.TempDir(), pebble.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	e, err := engine.Open(engine.Options{Store: db, Schema: sc, EventClock: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := e.Close(); err != nil {
			tb.Error(err)
		}
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	l := &loaded{e: e, db: db, sums: map[string]source.Summary{}}
	im := &source.Importer{Sink: e, DeadLetters: db}
	for _, s := range ds.Sources {
		m, err := mapping.Parse(s.Mapping, e.Schema(), mapping.Options{Dir: dir})
		if err != nil {
			tb.Fatalf("%s mapping of %s: %v", name, s.File, err)
		}
		f, err := os.Open(filepath.Join(dir, s.File))
		if err != nil {
			tb.Fatal(err)
		}
		sum, err := im.Import(context.Background(), m, f, s.File, nil)
		f.Close()
		if err != nil {
			tb.Fatalf("import %s: %v", s.File, err)
		}
		l.sums[s.File] = sum
	}
	return l
}

// readCSV returns the rows of a CSV file with a header as maps.
func readCSV(tb testing.TB, path string) []map[string]string {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if err != nil {
		tb.Fatal(err)
	}
	var rows []map[string]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return rows
		}
		if err != nil {
			tb.Fatal(err)
		}
		row := make(map[string]string, len(header))
		for i, h := range header {
			row[h] = rec[i]
		}
		rows = append(rows, row)
	}
}

func (l *loaded) twin(tb testing.TB, key string) *engine.View {
	tb.Helper()
	v, err := l.e.Twin(key)
	if err != nil {
		tb.Fatalf("twin %s: %v", key, err)
	}
	return v
}

func num(v any) float64 {
	switch n := v.(type) {
	case int64:
		return float64(n)
	case float64:
		return n
	}
	return math.NaN()
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestCDNOW imports the CDNOW log and checks every customer's purchase
// count, total spend and first and last purchase date against a
// computation made here from the CSV.
func TestCDNOW(t *testing.T) { eachSet(t, "cdnow", testCDNOW) }

func testCDNOW(t *testing.T, dir string, full bool) {
	l := load(t, "cdnow", dir)
	rows := readCSV(t, filepath.Join(dir, "cdnow_master_restored.csv"))
	sum := l.sums["cdnow_master_restored.csv"]
	if sum.Rejected != 0 || sum.Records != len(rows) || sum.Events != len(rows) || full && len(rows) != 69659 {
		t.Fatalf("import: %+v, want %d records and events (69,659 in the full set), none rejected", sum, len(rows))
	}
	type want struct {
		n           int64
		spend       float64
		first, last time.Time
	}
	wants := map[string]*want{}
	for _, row := range rows {
		amount, err := strconv.ParseFloat(row["amount"], 64)
		if err != nil {
			t.Fatal(err)
		}
		day, err := time.Parse("2006-01-02", row["date"])
		if err != nil {
			t.Fatal(err)
		}
		w := wants[row["customer_id"]]
		if w == nil {
			w = &want{first: day, last: day}
			wants[row["customer_id"]] = w
		}
		w.n++
		w.spend += amount
		if day.Before(w.first) {
			w.first = day
		}
		if day.After(w.last) {
			w.last = day
		}
	}
	if full && len(wants) != 23544 {
		t.Fatalf("%d customers in the CSV, want 23,544", len(wants))
	}
	if st := l.e.Stats(); st.Twins != int64(len(wants)) {
		t.Errorf("%d twins, want %d", st.Twins, len(wants))
	}
	bad := 0
	for key, w := range wants {
		v := l.twin(t, key)
		a := v.Aggregates
		first, _ := a["first_purchase"].(time.Time)
		last, _ := a["last_purchase"].(time.Time)
		if num(a["purchases_total"]) != float64(w.n) || !near(num(a["spend_total"]), w.spend) || !first.Equal(w.first) || !last.Equal(w.last) {
			if bad++; bad <= 5 {
				t.Errorf("customer %s: purchases %v spend %v first %v last %v; want %d %.2f %s %s",
					key, a["purchases_total"], a["spend_total"], first, last, w.n, w.spend, w.first, w.last)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d customers differ", bad, len(wants))
	}
}

// TestOlist imports the Olist tables and checks, per person
// (customer_unique_id), the order count and the review scores against a
// computation made here by joining the CSVs.
func TestOlist(t *testing.T) { eachSet(t, "olist", testOlist) }

func testOlist(t *testing.T, dir string, full bool) {
	l := load(t, "olist", dir)
	for file, sum := range l.sums {
		if sum.Rejected != 0 {
			t.Errorf("%s: %d records rejected, first %+v", file, sum.Rejected, sum.Rejections[0])
		}
	}
	person := map[string]string{} // customer_id -> customer_unique_id
	for _, row := range readCSV(t, filepath.Join(dir, "olist_customers_dataset.csv")) {
		person[row["customer_id"]] = row["customer_unique_id"]
	}
	orderPerson := map[string]string{} // order_id -> customer_unique_id
	orders := map[string]int64{}
	for _, row := range readCSV(t, filepath.Join(dir, "olist_orders_dataset.csv")) {
		p := person[row["customer_id"]]
		orderPerson[row["order_id"]] = p
		orders[p]++
	}
	type reviews struct {
		n   int64
		sum float64
	}
	revs := map[string]*reviews{}
	for _, row := range readCSV(t, filepath.Join(dir, "olist_order_reviews_dataset.csv")) {
		p := orderPerson[row["order_id"]]
		score, err := strconv.Atoi(row["review_score"])
		if err != nil {
			t.Fatal(err)
		}
		r := revs[p]
		if r == nil {
			r = &reviews{}
			revs[p] = r
		}
		r.n++
		r.sum += float64(score)
	}
	if st := l.e.Stats(); st.Twins != int64(len(orders)) || full && len(orders) != 8016 {
		t.Errorf("%d twins, want %d people (8,016 in the full set)", st.Twins, len(orders))
	}
	bad := 0
	for p, n := range orders {
		a := l.twin(t, p).Aggregates
		r := revs[p]
		if r == nil {
			r = &reviews{}
		}
		avgOK := r.n == 0 && a["review_avg"] == nil || r.n > 0 && near(num(a["review_avg"]), r.sum/float64(r.n))
		if num(a["orders_total"]) != float64(n) || num(a["reviews_total"]) != float64(r.n) || !avgOK {
			if bad++; bad <= 5 {
				t.Errorf("person %s: orders %v reviews %v avg %v; want %d %d %v", p, a["orders_total"], a["reviews_total"], a["review_avg"], n, r.n, r.sum/float64(r.n))
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d people differ", bad, len(orders))
	}
}

// TestTelco imports the Telco customers: one twin each, the churn label and
// the services as attributes, blank TotalCharges absent rather than rejected.
func TestTelco(t *testing.T) { eachSet(t, "telco", testTelco) }

func testTelco(t *testing.T, dir string, full bool) {
	l := load(t, "telco", dir)
	rows := readCSV(t, filepath.Join(dir, "Telco-Customer-Churn.csv"))
	sum := l.sums["Telco-Customer-Churn.csv"]
	if sum.Records != len(rows) || sum.Events != len(rows) || sum.Rejected != 0 || full && len(rows) != 7043 {
		t.Fatalf("import: %+v, want %d events (7,043 in the full set), none rejected", sum, len(rows))
	}
	churned, want := 0, 0
	for _, row := range rows {
		if row["Churn"] == "Yes" {
			want++
		}
		v := l.twin(t, row["customerID"])
		churn, _ := v.Attributes["churn"].Value.(bool)
		if churn != (row["Churn"] == "Yes") {
			t.Errorf("%s: churn %v, CSV says %s", row["customerID"], v.Attributes["churn"].Value, row["Churn"])
		}
		if churn {
			churned++
		}
		if c := v.Attributes["contract"].Value; c != row["Contract"] {
			t.Errorf("%s: contract %v, CSV says %s", row["customerID"], c, row["Contract"])
		}
		_, hasTotal := v.Attributes["total_charges"]
		if hasTotal != (row["TotalCharges"] != " ") {
			t.Errorf("%s: total_charges %v for CSV text %q", row["customerID"], v.Attributes["total_charges"].Value, row["TotalCharges"])
		}
	}
	if churned != want || full && want != 1869 {
		t.Errorf("%d churned, want %d (1,869 in the full set)", churned, want)
	}
}

// TestCiaoDVD imports the ratings, a header-less CSV, and checks the count.
func TestCiaoDVD(t *testing.T) { eachSet(t, "ciaodvd", testCiaoDVD) }

func testCiaoDVD(t *testing.T, dir string, full bool) {
	l := load(t, "ciaodvd", dir)
	f, err := os.Open(filepath.Join(dir, "ciao_ratings.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	members := map[string]bool{}
	for _, r := range rows {
		members[r[0]] = true
	}
	sum := l.sums["ciao_ratings.txt"]
	if sum.Records != len(rows) || sum.Events != len(rows) || sum.Rejected != 0 || full && len(rows) != 72665 {
		t.Fatalf("import: %+v, want %d events (72,665 in the full set), none rejected", sum, len(rows))
	}
	if st := l.e.Stats(); st.Twins != int64(len(members)) || full && len(members) != 17615 {
		t.Errorf("%d twins, want %d members (17,615 in the full set)", st.Twins, len(members))
	}
}
