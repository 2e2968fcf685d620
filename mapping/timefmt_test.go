package mapping

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// TestFastLayoutsMatchTimeParse formats random instants with each layout
// parsed by hand and checks that parseTimeText reads them as
// time.ParseInLocation does, in UTC and in a zone with daylight saving.
func TestFastLayoutsMatchTimeParse(t *testing.T) {
	sp, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	layouts := []string{"2006-01-02", "2006-01-02 15:04:05", "2006-01-02T15:04:05", "20060102", time.RFC3339, time.RFC3339Nano, "2006-01-02 15:04:05.000"}
	for _, layout := range layouts {
		tf, prob, _ := parseTimeFormat(layout)
		if prob != "" {
			t.Fatalf("parseTimeFormat(%q): %s", layout, prob)
		}
		for _, loc := range []*time.Location{nil, sp} {
			goLoc := loc
			if goLoc == nil {
				goLoc = time.UTC
			}
			for range 2000 {
				sec := rng.Int64N(int64(150*365*86400)) - int64(60*365*86400)
				in := time.Unix(sec, rng.Int64N(1e9)).In(goLoc).Format(layout)
				want, err := time.ParseInLocation(layout, in, goLoc)
				if err != nil {
					t.Fatal(err)
				}
				gs, gn, ok := parseTimeText(in, &tf, loc)
				if !ok || gs != want.Unix() || gn != want.Nanosecond() {
					t.Fatalf("layout %q in %v: parseTimeText(%q) = %d.%09d %v, want %d.%09d", layout, goLoc, in, gs, gn, ok, want.Unix(), want.Nanosecond())
				}
			}
		}
	}
}

// TestTimeTexts lists texts the default formats accept and reject.
func TestTimeTexts(t *testing.T) {
	auto := timeFormat{}
	tests := []struct {
		in   string
		want string // RFC 3339 in UTC; "" when the text must be rejected
	}{
		{"2024-02-29", "2024-02-29T00:00:00Z"},
		{"2024-02-29 23:59:59", "2024-02-29T23:59:59Z"},
		{"2024-02-29T23:59:59.123456789", "2024-02-29T23:59:59.123456789Z"},
		{"2024-02-29T23:59:59,5", "2024-02-29T23:59:59.5Z"},
		{"2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z"},
		{"2024-02-29t23:59:59z", "2024-02-29T23:59:59Z"},
		{"2024-02-29 23:59:59+02", "2024-02-29T21:59:59Z"},
		{"2024-02-29 23:59:59 -0130", "2024-03-01T01:29:59Z"},
		{"2024-02-29T23:59:59-05:00", "2024-03-01T04:59:59Z"},
		{"20240229", "2024-02-29T00:00:00Z"},
		{" 2024-02-29 ", "2024-02-29T00:00:00Z"},
		{"2023-02-29", ""},
		{"2024-13-01", ""},
		{"2024-1-01", ""},
		{"2024-01-01 24:00:00", ""},
		{"2024-01-01 10:00", ""},
		{"2024-01-01T10:00:00.", ""},
		{"2024-01-01T10:00:00+2", ""},
		{"2024-01-01T10:00:00+25:00", ""},
		{"2024-01-01X10:00:00", ""},
		{"20241301", ""},
		{"1700000000", ""},
		{"", ""},
	}
	for _, tt := range tests {
		sec, nsec, ok := parseTimeText(tt.in, &auto, nil)
		got := ""
		if ok {
			b, _ := appendRFC3339(nil, sec, nsec)
			got = string(b)
		}
		if got != tt.want {
			t.Errorf("parseTimeText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct {
		kind timeKind
		in   string
		want string
	}{
		{tkUnix, "-1", "1969-12-31T23:59:59Z"},
		{tkUnix, "1700000000.25", "2023-11-14T22:13:20.25Z"},
		{tkUnixMs, "-1", "1969-12-31T23:59:59.999Z"},
		{tkUnixUs, "1", "1970-01-01T00:00:00.000001Z"},
		{tkUnix, "1e3", "1970-01-01T00:16:40Z"},
		{tkUnix, "12a", ""},
		{tkRFC3339, "2024-01-01T00:00:00", ""},
		{tkRFC3339, "2024-01-01 00:00:00Z", ""},
		{tkDate, "2024-01-01T00:00:00", ""},
		{tkDateTime, "2024-01-01T00:00:00", ""},
		{tkDateTimeT, "2024-01-01 00:00:00", ""},
	} {
		tf := timeFormat{kind: tt.kind}
		sec, nsec, ok := parseTimeText(tt.in, &tf, nil)
		got := ""
		if ok {
			b, _ := appendRFC3339(nil, sec, nsec)
			got = string(b)
		}
		if got != tt.want {
			t.Errorf("kind %d: parseTimeText(%q) = %q, want %q", tt.kind, tt.in, got, tt.want)
		}
	}
}

// TestAppendRFC3339 compares the hand formatter with time.Format over the
// years events can carry, and checks it refuses the others.
func TestAppendRFC3339(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	lo := time.Date(minYear, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(maxYear, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	for i := range 20000 {
		sec := lo + rng.Int64N(hi-lo+1)
		nsec := int(rng.Int64N(1e9))
		switch i % 3 {
		case 0:
			nsec = 0
		case 1:
			nsec -= nsec % 1000
		}
		got, ok := appendRFC3339(nil, sec, nsec)
		want := time.Unix(sec, int64(nsec)).UTC().Format(time.RFC3339Nano)
		if !ok || string(got) != want {
			t.Fatalf("appendRFC3339(%d, %d) = %q %v, want %q", sec, nsec, got, ok, want)
		}
	}
	for _, sec := range []int64{lo - 1, hi + 1, -1 << 50, 1 << 50} {
		if b, ok := appendRFC3339(nil, sec, 0); ok {
			t.Errorf("appendRFC3339(%d) = %s, want a refusal", sec, b)
		}
	}
}

func TestStrftime(t *testing.T) {
	for in, want := range map[string]string{
		"%Y-%m-%d %H:%M:%S":    "2006-01-02 15:04:05",
		"%d/%m/%y %I:%M %p":    "02/01/06 03:04 PM",
		"%a, %d %b %Y %T %z":   "Mon, 02 Jan 2006 15:04:05 -0700",
		"%F %H:%M:%S.%f":       "2006-01-02 15:04:05.000000",
		"%Y%j %%":              "2006002 %",
		"%A %e %B %Y %R:%S %Z": "Monday _2 January 2006 15:04:05 MST",
	} {
		tf, prob, _ := parseTimeFormat(in)
		if prob != "" || tf.kind != tkLayout && tf.kind != tkDateTime {
			t.Errorf("parseTimeFormat(%q) = %+v, %q", in, tf, prob)
			continue
		}
		if tf.kind == tkLayout && tf.layout != want {
			t.Errorf("parseTimeFormat(%q) layout %q, want %q", in, tf.layout, want)
		}
	}
}

func TestNumbers(t *testing.T) {
	tests := []struct {
		in      string
		dec     byte
		integer bool
		want    string
		prob    numProblem
	}{
		{"12.50", '.', false, "12.50", numOK},
		{"-0.5", '.', false, "-0.5", numOK},
		{".5", '.', false, "0.5", numOK},
		{"5.", '.', false, "5", numOK},
		{"+5", '.', false, "5", numOK},
		{"007", '.', false, "7", numOK},
		{"1E6", '.', false, "1e+06", numOK},
		{"1e-7", '.', false, "1e-07", numOK},
		{" 3 ", '.', true, "3", numOK},
		{"3.000", '.', true, "3", numOK},
		{"-0.0", '.', true, "0", numOK},
		{"3e2", '.', true, "300", numOK},
		{"9007199254740992", '.', true, "9007199254740992", numOK},
		{"9007199254740993", '.', true, "", numRange},
		{"3.5", '.', true, "", numNotInt},
		{"1,5", ',', false, "1.5", numOK},
		{"-1234,50", ',', false, "-1234.5", numOK},
		{"1.5", ',', false, "", numWrongDec},
		{"1,5", '.', false, "", numWrongDec},
		{"1,234.5", '.', false, "", numNotNum},
		{"1_000", '.', false, "", numNotNum},
		{"0x10", '.', false, "", numNotNum},
		{"Inf", '.', false, "", numNotNum},
		{"", '.', false, "", numNotNum},
		{"-", '.', false, "", numNotNum},
		{"1e", '.', false, "", numNotNum},
		{"1e400", '.', false, "", numRange},
	}
	for _, tt := range tests {
		got, prob := appendNumber(nil, tt.in, tt.dec, tt.integer)
		if string(got) != tt.want || prob != tt.prob {
			t.Errorf("appendNumber(%q, %q, integer %v) = %q, %d; want %q, %d", tt.in, tt.dec, tt.integer, got, prob, tt.want, tt.prob)
		}
		if prob == numOK {
			if _, err := strconv.ParseFloat(string(got), 64); err != nil {
				t.Errorf("appendNumber(%q) wrote %q, which is not a number", tt.in, got)
			}
		}
	}
}
