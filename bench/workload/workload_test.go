package workload

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"github.com/twinhub/twinhub/schema"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// generate returns all lines of a workload, each with its trailing newline.
func generate(tb testing.TB, opts Options) [][]byte {
	tb.Helper()
	g := New(opts)
	var lines [][]byte
	for {
		line, ok := g.Next(nil)
		if !ok {
			return lines
		}
		lines = append(lines, line)
	}
}

func digest(tb testing.TB, opts Options) [32]byte {
	tb.Helper()
	h := sha256.New()
	n, err := Write(h, opts)
	if err != nil {
		tb.Fatalf("Write: %v", err)
	}
	if n == 0 {
		tb.Fatalf("Write wrote 0 bytes")
	}
	return [32]byte(h.Sum(nil))
}

func TestDeterministic(t *testing.T) {
	opts := Options{Events: 50_000, Customers: 5_000, Now: testNow}
	a, b := digest(t, opts), digest(t, opts)
	if a != b {
		t.Errorf("two runs with the same options: sha256 %x != %x", a, b)
	}
	opts2 := opts
	opts2.Seed = 2
	if c := digest(t, opts2); c == a {
		t.Errorf("Seed 1 and Seed 2 produce the same bytes (sha256 %x)", a)
	}

	// Write and Next produce the same bytes, and Write counts them.
	var buf bytes.Buffer
	n, err := Write(&buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != n {
		t.Errorf("Write returned %d bytes, wrote %d", n, buf.Len())
	}
	if joined := bytes.Join(generate(t, opts), nil); !bytes.Equal(joined, buf.Bytes()) {
		t.Errorf("Next's lines differ from Write's output")
	}
}

// wantFields lists each type's fields beyond id, type, customer_id and time.
var wantFields = map[string][]string{
	"view":      {"product_id", "category", "channel"},
	"cart":      {"amount", "product_id", "category", "channel"},
	"purchase":  {"amount", "product_id", "category", "channel"},
	"return":    {"amount", "product_id"},
	"survey":    {"score"},
	"complaint": {"reason", "channel"},
	"profile":   {"name", "email", "tier", "country"},
}

var wantShare = map[string]float64{
	"view": 0.60, "cart": 0.15, "purchase": 0.12, "survey": 0.05, "complaint": 0.04, "return": 0.02, "profile": 0.02,
}

func TestMix(t *testing.T) {
	const n = 200_000
	opts := Options{Events: n, Now: testNow}
	lines := generate(t, opts)
	if len(lines) != n {
		t.Fatalf("Next produced %d events, want %d", len(lines), n)
	}
	lo, hi := testNow.Add(-DefaultSpan), testNow
	types := map[string]int{}
	productCategory := map[string]string{}
	ref := NewReference()
	for i, line := range lines {
		if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
			t.Fatalf("line %d does not end in }\\n or has inner newlines: %q", i+1, line)
		}
		var ev map[string]any
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, line)
		}
		typ, _ := ev["type"].(string)
		fields, ok := wantFields[typ]
		if !ok {
			t.Fatalf("line %d: type %q, want one of the seven retail types: %s", i+1, typ, line)
		}
		types[typ]++
		want := append([]string{"id", "type", "customer_id", "time"}, fields...)
		got := make([]string, 0, len(ev))
		for k := range ev {
			got = append(got, k)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("line %d (%s): fields %v, want %v", i+1, typ, got, want)
		}
		if id, want := ev["id"], "e-"+strconv.Itoa(i+1); id != want {
			t.Fatalf("line %d: id %v, want %s", i+1, id, want)
		}
		if c := ev["customer_id"].(string); !strings.HasPrefix(c, "c-") || !validRank(c[2:], DefaultCustomers) {
			t.Fatalf("line %d: customer_id %q, want c-1..c-%d", i+1, c, DefaultCustomers)
		}
		ts := ev["time"].(string)
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || len(ts) != len("2006-01-02T15:04:05.000Z") || !strings.HasSuffix(ts, "Z") {
			t.Fatalf("line %d: time %q, want RFC 3339 UTC with milliseconds", i+1, ts)
		}
		if tm.Before(lo) || !tm.Before(hi) {
			t.Fatalf("line %d: time %s outside [%s, %s)", i+1, ts, lo.Format(time.RFC3339), hi.Format(time.RFC3339))
		}
		for _, f := range fields {
			if msg := checkField(f, ev[f]); msg != "" {
				t.Fatalf("line %d: %s %s: %s", i+1, typ, f, msg)
			}
		}
		if p, ok := ev["product_id"].(string); ok {
			if !strings.HasPrefix(p, "p-") || !validRank(p[2:], DefaultProducts) {
				t.Fatalf("line %d: product_id %q, want p-1..p-%d", i+1, p, DefaultProducts)
			}
			if c, ok := ev["category"].(string); ok {
				if prev, seen := productCategory[p]; seen && prev != c {
					t.Fatalf("line %d: product %s has category %q, earlier %q", i+1, p, c, prev)
				}
				productCategory[p] = c
			}
		}
		if err := ref.Add(line); err != nil {
			t.Fatalf("line %d: Reference.Add: %v", i+1, err)
		}
	}
	for typ, w := range wantShare {
		if got := float64(types[typ]) / n; math.Abs(got-w) > 0.005 {
			t.Errorf("share of %s = %.4f, want %.2f ± 0.005", typ, got, w)
		}
	}
	cats := map[string]bool{}
	for _, c := range productCategory {
		cats[c] = true
	}
	if len(cats) != DefaultCategories {
		t.Errorf("%d distinct categories seen, want %d", len(cats), DefaultCategories)
	}
	var total int64
	for _, c := range ref.Customers() {
		total += ref.Aggregates(c, testNow)["events_total"].(int64)
	}
	if total != n {
		t.Errorf("Reference events_total summed over customers = %d, want %d", total, n)
	}
}

func validRank(s string, max int) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= max && strconv.Itoa(n) == s
}

// checkField returns what is wrong with value v of field f, or "".
func checkField(f string, v any) string {
	s, isStr := v.(string)
	switch f {
	case "amount":
		num, ok := v.(json.Number)
		if !ok {
			return "not a number"
		}
		x, err := num.Float64()
		if err != nil || x < 5 || x > 500 {
			return "got " + num.String() + ", want 5..500"
		}
		if i := strings.IndexByte(num.String(), '.'); i >= 0 && len(num.String())-i-1 > 2 {
			return "got " + num.String() + ", want at most 2 decimals"
		}
	case "score":
		num, ok := v.(json.Number)
		i, err := num.Int64()
		if !ok || err != nil || i < 1 || i > 5 {
			return "want an integer 1..5"
		}
	case "channel":
		if !slices.Contains(channels[:], s) {
			return "got " + s + ", want web, app, store or call_centre"
		}
	case "tier":
		if !slices.Contains(tiers[:], s) {
			return "got " + s + ", want bronze, silver, gold or platinum"
		}
	case "country":
		if len(s) != 2 || strings.ToUpper(s) != s {
			return "got " + s + ", want an ISO-2 code"
		}
	case "email":
		if !strings.Contains(s, "@") {
			return "got " + s + ", want an address"
		}
	default:
		if !isStr || s == "" {
			return "want a non-empty string"
		}
	}
	return ""
}

func TestZipf(t *testing.T) {
	lines := generate(t, Options{Events: 200_000, Now: testNow})
	counts := map[string]int{}
	for _, line := range lines {
		var ev struct {
			CustomerID string `json:"customer_id"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatal(err)
		}
		counts[ev.CustomerID]++
	}
	top := ""
	for c, n := range counts {
		if top == "" || n > counts[top] {
			top = c
		}
	}
	if top != "c-1" {
		t.Errorf("most frequent customer %s (%d events), want c-1 (%d events)", top, counts[top], counts["c-1"])
	}
	if !(counts["c-1"] > counts["c-10"] && counts["c-10"] > counts["c-100"] && counts["c-100"] > 0) {
		t.Errorf("events of c-1, c-10, c-100 = %d, %d, %d; want strictly decreasing and > 0",
			counts["c-1"], counts["c-10"], counts["c-100"])
	}
	// Zipf(1.1) over 100k ranks: about 13% of events go to c-1, and 200k
	// events reach a long but far from complete tail.
	if share := float64(counts["c-1"]) / 200_000; share < 0.10 || share > 0.17 {
		t.Errorf("c-1 has %.3f of events, want about 0.13", share)
	}
	if d := len(counts); d < 10_000 || d > 60_000 {
		t.Errorf("%d distinct customers in 200k events, want 10k..60k", d)
	}
}

func TestTimesInsideSpan(t *testing.T) {
	// A Now that is not on a millisecond and a span of a few milliseconds:
	// printed times, truncated to milliseconds, must stay inside [Now-Span, Now).
	now := time.Date(2026, 1, 2, 3, 4, 5, 678_901_234, time.UTC)
	span := 3*time.Millisecond + 500*time.Microsecond
	seen := map[string]bool{}
	for _, line := range generate(t, Options{Events: 2_000, Now: now, Span: span}) {
		var ev struct{ Time time.Time }
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Time.Before(now.Add(-span)) || !ev.Time.Before(now) {
			t.Fatalf("time %s outside [%s, %s)", ev.Time.Format(time.RFC3339Nano),
				now.Add(-span).Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
		}
		seen[ev.Time.Format(time.RFC3339Nano)] = true
	}
	// 02.675500 .. 05.678901: the instants .676, .677 and .678.
	if len(seen) != 3 {
		t.Errorf("%d distinct times, want 3 (%v)", len(seen), seen)
	}
}

func TestInvalidOptions(t *testing.T) {
	for name, opts := range map[string]Options{
		"negative events": {Events: -1},
		"zipf s <= 1":     {ZipfS: 1},
		"zipf s NaN":      {ZipfS: math.NaN()},
		"span under 1ms":  {Span: time.Microsecond},
	} {
		t.Run(name, func(t *testing.T) {
			if n, err := Write(io.Discard, opts); err == nil {
				t.Errorf("Write(%+v) = %d, nil; want an error", opts, n)
			}
		})
	}
}

func TestAppendTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 11, 20, 10, 0, 0, 123_000_000, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999_000_000, time.UTC),
		time.Date(1969, 7, 20, 20, 17, 40, 1_000_000, time.UTC),
		time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC),
		time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		want := tm.Format("2006-01-02T15:04:05.000Z07:00")
		if got := string(appendTime(nil, tm.UnixMilli())); got != want {
			t.Errorf("appendTime(%d) = %s, want %s", tm.UnixMilli(), got, want)
		}
	}
}

func BenchmarkNext(b *testing.B) {
	g := New(Options{Events: math.MaxInt, Now: testNow})
	buf := make([]byte, 0, 512)
	var bytes int
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		buf, _ = g.Next(buf[:0])
		bytes += len(buf)
	}
	b.SetBytes(int64(bytes / max(b.N, 1)))
}

// TestAddRules checks that the benchmark's generated rules and segments
// compile against the default schema, for the sizes the issue names.
func TestAddRules(t *testing.T) {
	for _, n := range [][2]int{{50, 20}, {0, 20}, {50, 0}, {5, 3}} {
		sc, err := schema.Parse(AddRules(schema.DefaultYAML(), n[0], n[1]))
		if err != nil {
			t.Fatalf("AddRules(%d rules, %d segments): %v", n[0], n[1], err)
		}
		def := schema.Default()
		if got, want := len(sc.Rules)-len(def.Rules), n[0]; got != want {
			t.Errorf("AddRules added %d rules, want %d", got, want)
		}
		if got, want := len(sc.Segments)-len(def.Segments), n[1]; got != want {
			t.Errorf("AddRules added %d segments, want %d", got, want)
		}
	}
}
