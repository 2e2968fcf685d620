package ingest

import (
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/schema"
)

var testNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func newTestDecoder(tb testing.TB) *Decoder {
	tb.Helper()
	return NewDecoder(schema.Default(), func() time.Time { return testNow }, "test")
}

func TestDecodeValid(t *testing.T) {
	d := newTestDecoder(t)
	var b Batch
	ok := d.Decode([]byte(`{"id":"e-1","type":"purchase","customer_id":"c-42","time":"2026-11-20T10:00:00Z","amount":59.9,"product_id":"p-7","category":"shoes","channel":"web"}`), &b)
	if !ok {
		t.Fatalf("valid purchase rejected: %+v", b.Results[0])
	}
	ev := b.Events[0]
	if ev.ID != "e-1" || ev.Key != "c-42" || ev.Source != "test" {
		t.Errorf("event = %+v", ev)
	}
	if want := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixNano(); ev.Time != want {
		t.Errorf("time = %d, want %d", ev.Time, want)
	}
	et := d.Schema().Events[ev.Type]
	amount, _ := et.Field("amount")
	if v := ev.Vals[amount.Slot]; !v.Set || v.Num != 59.9 {
		t.Errorf("amount = %+v, want 59.9", v)
	}
	// Events do not alias the decoder's buffers: decoding more must not
	// change what was decoded.
	d.Decode([]byte(`{"id":"e-2","type":"purchase","customer_id":"c-99","amount":1,"product_id":"p-8"}`), &b)
	if b.Events[0].Key != "c-42" || b.Events[0].ID != "e-1" {
		t.Errorf("first event changed after decoding another: %+v", b.Events[0])
	}
	if b.Events[1].Time != testNow.UnixNano() {
		t.Errorf("event without time got %d, want the receive time", b.Events[1].Time)
	}
}

// TestDecodeRejects lists bad records; each must be rejected naming the
// field (when there is one) and saying what was wrong.
func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name, rec, field, reason string
	}{
		{"malformed json", `{"id":"e-1","type":`, "", "malformed JSON"},
		{"not an object", `[1,2]`, "", "must be a JSON object, found array"},
		{"missing type", `{"id":"e-1","customer_id":"c-1"}`, "type", "missing"},
		{"type not a string", `{"id":"e-1","type":7,"customer_id":"c-1"}`, "type", "expected string, found number"},
		{"unknown type", `{"id":"e-1","type":"purchse","customer_id":"c-1"}`, "type", `unknown event type "purchse"`},
		{"missing id", `{"type":"view","customer_id":"c-1"}`, "id", "missing"},
		{"empty id", `{"id":"","type":"view","customer_id":"c-1"}`, "id", "must not be empty"},
		{"missing key", `{"id":"e-1","type":"view"}`, "customer_id", "missing"},
		{"key with control char", "{\"id\":\"e-1\",\"type\":\"view\",\"customer_id\":\"c\\u0000x\"}", "customer_id", "control character"},
		{"key too long", `{"id":"e-1","type":"view","customer_id":"` + strings.Repeat("k", MaxKeyLen+1) + `"}`, "customer_id", "at most 256"},
		{"wrong type", `{"id":"e-1","type":"purchase","customer_id":"c-1","amount":"12","product_id":"p"}`, "amount", `expected number, found string "12"`},
		{"integer with fraction", `{"id":"e-1","type":"survey","customer_id":"c-1","score":4.5}`, "score", "expected integer"},
		{"below minimum", `{"id":"e-1","type":"survey","customer_id":"c-1","score":0}`, "score", "below the minimum 1"},
		{"not in enum", `{"id":"e-1","type":"view","customer_id":"c-1","channel":"fax"}`, "channel", `"fax" is not one of`},
		{"missing required", `{"id":"e-1","type":"purchase","customer_id":"c-1","product_id":"p"}`, "amount", "missing; required"},
		{"unknown field", `{"id":"e-1","type":"view","customer_id":"c-1","colour":"red"}`, "colour", "unknown field for event type view"},
		{"invalid utf-8", "{\"id\":\"e-1\",\"type\":\"view\",\"customer_id\":\"c-\xff\"}", "", "not valid UTF-8"},
		{"bad time format", `{"id":"e-1","type":"view","customer_id":"c-1","time":"20/11/2026"}`, "time", "not an RFC 3339 time"},
		{"impossible date", `{"id":"e-1","type":"view","customer_id":"c-1","time":"2026-02-31T00:00:00Z"}`, "time", "not an RFC 3339 time"},
		{"time far in the future", `{"id":"e-1","type":"view","customer_id":"c-1","time":"3000-01-01T00:00:00Z"}`, "time", "in the future"},
		{"time before min_time", `{"id":"e-1","type":"view","customer_id":"c-1","time":"1066-10-14T09:00:00Z"}`, "time", "before the schema's min_time"},
		{"time as bool", `{"id":"e-1","type":"view","customer_id":"c-1","time":true}`, "time", "expected an RFC 3339 time string or unix milliseconds"},
		{"huge unix ms", `{"id":"e-1","type":"view","customer_id":"c-1","time":1e300}`, "time", "not a unix time"},
		{"null on a required field", `{"id":"e-1","type":"purchase","customer_id":"c-1","amount":null,"product_id":"p"}`, "amount", "missing; required"},
		{"negative position", `{"id":"e-1","type":"view","customer_id":"c-1","position":-1}`, "position", "-1 is negative; a position is a whole number from 0 to 9223372036854775807"},
		{"fractional position", `{"id":"e-1","type":"view","customer_id":"c-1","position":2.5}`, "position", "2.5 is not a whole number"},
		{"fraction a float64 would lose", `{"id":"e-1","type":"view","customer_id":"c-1","position":3.0000000000000001}`, "position", "3.0000000000000001 is not a whole number"},
		{"position as string", `{"id":"e-1","type":"view","customer_id":"c-1","position":"5"}`, "position", `expected a whole number from 0 to 9223372036854775807 (2^63-1), found string "5"`},
		{"position as bool", `{"id":"e-1","type":"view","customer_id":"c-1","position":true}`, "position", "found bool true"},
		{"position above 2^63-1", `{"id":"e-1","type":"view","customer_id":"c-1","position":9223372036854775808}`, "position", "9223372036854775808 is too large"},
		{"position above 2^63-1 in an exponent", `{"id":"e-1","type":"view","customer_id":"c-1","position":92233720368547758.08e2}`, "position", "is too large"},
		{"position beyond int64", `{"id":"e-1","type":"view","customer_id":"c-1","position":123456789012345678901234567890}`, "position", "is too large"},
		{"position with exponent, too large", `{"id":"e-1","type":"view","customer_id":"c-1","position":1e300}`, "position", "1e300 is too large"},
		{"position not a JSON number", `{"id":"e-1","type":"view","customer_id":"c-1","position":1-2}`, "position", "found 1-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDecoder(t)
			var b Batch
			if d.Decode([]byte(tt.rec), &b) {
				t.Fatalf("Decode(%s) accepted, want rejected", tt.rec)
			}
			r := b.Results[0]
			if r.Status != twinhub.Rejected || r.Field != tt.field || !strings.Contains(r.Reason, tt.reason) {
				t.Errorf("Decode(%s) = field %q reason %q, want field %q reason containing %q", tt.rec, r.Field, r.Reason, tt.field, tt.reason)
			}
			if len(b.Events) != 0 {
				t.Errorf("rejected record left %d events in the batch", len(b.Events))
			}
		})
	}
}

// TestDecodeNull: a declared field sent as null is kept as a Null value (it
// clears the attribute it sets), unlike an absent field.
func TestDecodeNull(t *testing.T) {
	d := newTestDecoder(t)
	var b Batch
	if !d.Decode([]byte(`{"id":"e-1","type":"profile","customer_id":"c-1","email":null,"tier":"gold","time":null,"source":null,"position":null}`), &b) {
		t.Fatalf("profile with nulls rejected: %+v", b.Results[0])
	}
	ev := b.Events[0]
	et := d.Schema().Events[ev.Type]
	want := map[string]twinhub.Value{
		"email": {Type: twinhub.TypeString, Null: true},
		"name":  {}, // absent
		"tier":  {Type: twinhub.TypeEnum, Str: "gold", Set: true},
	}
	for name, w := range want {
		f, _ := et.Field(name)
		if got := ev.Vals[f.Slot]; got != w {
			t.Errorf("%s = %+v, want %+v", name, got, w)
		}
	}
	if ev.Time != testNow.UnixNano() || ev.Source != "test" || ev.Position != 0 {
		t.Errorf("null time, source, position: got time %d source %q position %d; want the receive time, test, 0", ev.Time, ev.Source, ev.Position)
	}
}

// TestDecodeRepeatedMember checks that a member sent twice counts as its
// last occurrence (the type as its first), on the flat path and through
// fastjson (the escaped key sends the second record there).
func TestDecodeRepeatedMember(t *testing.T) {
	for _, rec := range []string{
		`{"id":"e-0","id":"e-1","type":"profile","type":"view","customer_id":"c-1","email":"a@x","email":null,"name":null,"name":"Ada"}`,
		`{"id":"e-0","id":"e-1","type":"profile","type":"view","customer_id":"c-1","email":"a@x","email":null,"name":null,"n\u0061me":"Ada"}`,
	} {
		d := newTestDecoder(t)
		var b Batch
		if !d.Decode([]byte(rec), &b) {
			t.Fatalf("%s: rejected: %+v", rec, b.Results[0])
		}
		ev := b.Events[0]
		et := d.Schema().Events[ev.Type]
		email, _ := et.Field("email")
		name, _ := et.Field("name")
		if et.Name != "profile" || ev.ID != "e-1" {
			t.Errorf("%s: type %s id %s, want profile e-1", rec, et.Name, ev.ID)
		}
		if got, want := ev.Vals[email.Slot], (twinhub.Value{Type: twinhub.TypeString, Null: true}); got != want {
			t.Errorf("%s: email = %+v, want %+v", rec, got, want)
		}
		if got, want := ev.Vals[name.Slot], (twinhub.Value{Type: twinhub.TypeString, Str: "Ada", Set: true}); got != want {
			t.Errorf("%s: name = %+v, want %+v", rec, got, want)
		}
	}
}

func TestDecodePosition(t *testing.T) {
	for _, tc := range []struct {
		text string
		want int64
	}{
		{"", 0}, {"0", 0}, {"-0", 0}, {"-0.0", 0}, {"7", 7}, {"7.0", 7}, {"7e3", 7000}, {"70e-1", 7}, {"0.7e1", 7},
		{"1E2", 100}, {"null", 0},
		// Beyond 2^53, exactly: MySQL binlog coordinates need 63 bits.
		{"9007199254740993", 1<<53 + 1}, {"9165530732224512", 1042<<43 | 880412<<11}, {"9.2e18", 9_200_000_000_000_000_000},
		{"9223372036854775807", MaxPosition}, {"9223372036854775807.000", MaxPosition}, {"922337203685477580.7e1", MaxPosition},
	} {
		rec := `{"id":"e-1","type":"view","customer_id":"c-1"}`
		if tc.text != "" {
			rec = `{"id":"e-1","type":"view","customer_id":"c-1","position":` + tc.text + `}`
		}
		d := newTestDecoder(t)
		var b Batch
		if !d.Decode([]byte(rec), &b) {
			t.Errorf("position %s rejected: %s", tc.text, b.Results[0].Reason)
			continue
		}
		if got := b.Events[0].Position; got != tc.want {
			t.Errorf("position %s = %d, want %d", tc.text, got, tc.want)
		}
	}
}

// TestReplayReadsBadPositionAsNone: before position was a common field, an
// event could carry any "position" member under unknown_fields: keep. A
// replay must apply such archived events as they were, without a position.
func TestReplayReadsBadPositionAsNone(t *testing.T) {
	src := strings.Replace(string(schema.DefaultYAML()), "unknown_fields: reject", "unknown_fields: keep", 1)
	sc, err := schema.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(sc, func() time.Time { return testNow }, "test")
	d.Replay = true
	var b Batch
	for _, rec := range []string{
		`{"id":"e-1","type":"view","customer_id":"c-1","position":"abc"}`,
		`{"id":"e-2","type":"view","customer_id":"c-1","position":12}`,
	} {
		if !d.Decode([]byte(rec), &b) {
			t.Fatalf("replay of %s rejected: %+v", rec, b.Results[len(b.Results)-1])
		}
	}
	if p0, p1 := b.Events[0].Position, b.Events[1].Position; p0 != 0 || p1 != 12 {
		t.Errorf("replayed positions %d, %d; want 0 (invalid) and 12", p0, p1)
	}
}

func TestDecodeNDJSONBadLinesDoNotBlockGood(t *testing.T) {
	d := newTestDecoder(t)
	var b Batch
	body := "{\"id\":\"e-1\",\"type\":\"view\",\"customer_id\":\"c-1\"}\n" +
		"not json\n\n" +
		"{\"id\":\"e-2\",\"type\":\"view\",\"customer_id\":\"c-2\"}\r\n" +
		"{\"id\":\"e-3\",\"type\":\"nope\",\"customer_id\":\"c-3\"}\n" +
		"{\"id\":\"e-4\",\"type\":\"view\",\"customer_id\":\"c-4\"}"
	d.DecodeNDJSON([]byte(body), &b)
	if len(b.Results) != 5 || len(b.Events) != 3 {
		t.Fatalf("got %d results, %d events; want 5 results (blank line skipped), 3 events", len(b.Results), len(b.Events))
	}
	for i, want := range []twinhub.Status{0, twinhub.Rejected, 0, twinhub.Rejected, 0} {
		if b.Results[i].Status != want || b.Results[i].Index != i {
			t.Errorf("result %d = %+v, want status %v", i, b.Results[i], want)
		}
	}
	for i, ev := range b.Events {
		if got := b.Results[b.EventIndex[i]].ID; got != ev.ID {
			t.Errorf("EventIndex[%d] points at %s, event is %s", i, got, ev.ID)
		}
	}
}

func TestUnknownFieldsKeep(t *testing.T) {
	src := strings.Replace(string(schema.DefaultYAML()), "unknown_fields: reject", "unknown_fields: keep", 1)
	sc, err := schema.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(sc, func() time.Time { return testNow }, "test")
	var b Batch
	rec := `{"id":"e-1","type":"view","customer_id":"c-1","colour":"red"}`
	if !d.Decode([]byte(rec), &b) {
		t.Fatalf("unknown field rejected under keep: %+v", b.Results[0])
	}
	if string(b.Events[0].Raw) != rec {
		t.Errorf("raw = %s, want the record as received", b.Events[0].Raw)
	}
}

func TestParseUTC(t *testing.T) {
	for _, s := range []string{"2026-11-20T10:00:00Z", "2026-11-20T10:00:00.5Z", "2026-11-20T10:00:00.123456789Z", "1997-01-01T00:00:00Z", "2026-11-20T10:00:00+01:00"} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseTime([]byte(s))
		if !ok || !got.Equal(want) {
			t.Errorf("parseTime(%s) = %v, %v; want %v", s, got, ok, want)
		}
	}
}

// FuzzDecode feeds arbitrary records to the decoder: it must never panic,
// and an accepted record must satisfy the schema's basic promises.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"id":"e-1","type":"purchase","customer_id":"c-42","time":"2026-11-20T10:00:00Z","amount":59.9,"product_id":"p-7","category":"shoes","channel":"web"}`,
		`{"id":"e-2","type":"survey","customer_id":7,"score":5}`,
		`{"id":"e-3","type":"profile","customer_id":"c-1","name":"Ada","tier":"gold","time":1763632800000}`,
		`{"id":"e-4","type":"profile","customer_id":"c-1","email":null,"position":42}`,
		`{"id":"e-5","type":"view","customer_id":"c-1","position":4.2e1}`,
		`{"id":"e-1","type":`, `[]`, `"x"`, "{\"id\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	d := NewDecoder(schema.Default(), func() time.Time { return testNow }, "fuzz")
	f.Fuzz(func(t *testing.T, rec []byte) {
		var b Batch
		if d.Decode(rec, &b) {
			ev := b.Events[0]
			if ev.ID == "" || ev.Key == "" || len(ev.Vals) != len(d.Schema().Events[ev.Type].Fields) {
				t.Fatalf("accepted an incomplete event: %+v", ev)
			}
			if ev.Position < 0 || ev.Position > MaxPosition {
				t.Fatalf("accepted position %d", ev.Position)
			}
			for i, v := range ev.Vals {
				if v.Set && v.Null {
					t.Fatalf("value %d is both set and null: %+v", i, v)
				}
			}
		} else if b.Results[0].Reason == "" {
			t.Fatalf("rejected %q without a reason", rec)
		}
	})
}

// FuzzIntegerText checks integerText against exact rational arithmetic.
func FuzzIntegerText(f *testing.F) {
	for _, s := range []string{"0", "-0", "7", "7.0", "7e3", "70e-1", "0.5", "9007199254740992", "9007199254740993",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "99999999999999999999", "1e19",
		"9007199254740992.0000001", "3.0000000000000001", "1e16", "-2.5", "1-2", "nan", ".5", "5.", "1e", "1e+-5", "00012.3400e+2"} {
		f.Add(s)
	}
	max := new(big.Rat).SetInt64(MaxPosition)
	f.Fuzz(func(t *testing.T, s string) {
		n, whole, over, ok := integerText(s)
		_, e, _ := strings.Cut(strings.ToLower(s), "e")
		if len(s) > 200 || len(strings.TrimLeft(e, "+-")) > 4 {
			return // keep big.Rat cheap
		}
		r, rok := new(big.Rat).SetString(s)
		if !ok {
			if rok && jsonNumber(s) {
				t.Fatalf("integerText(%q) refused a JSON number", s)
			}
			return
		}
		if !rok {
			t.Fatalf("integerText(%q) read a text that is no number", s)
		}
		abs := new(big.Rat).Abs(r)
		switch {
		case whole != r.IsInt():
			t.Fatalf("integerText(%q): whole = %v, want %v", s, whole, r.IsInt())
		case whole && over != (abs.Cmp(max) > 0):
			t.Fatalf("integerText(%q): over = %v, want %v", s, over, abs.Cmp(max) > 0)
		case whole && !over && big.NewRat(n, 1).Cmp(r) != 0:
			t.Fatalf("integerText(%q) = %d, want %s", s, n, r.RatString())
		case (!whole || over) && n != int64(r.Sign()):
			t.Fatalf("integerText(%q) = %d, want the sign %d", s, n, r.Sign())
		}
	})
}

// jsonNumber reports whether s follows JSON's number grammar (leading zeros
// allowed, as integerText allows them).
func jsonNumber(s string) bool {
	s = strings.TrimPrefix(s, "-")
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	i, frac, hasFrac := strings.Cut(mant, ".")
	digits := func(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }
	if !digits(i) || hasFrac && !digits(frac) {
		return false
	}
	return !hasExp || digits(strings.TrimLeft(exp, "+-")) && len(exp)-len(strings.TrimLeft(exp, "+-")) <= 1
}

func BenchmarkDecode(b *testing.B) {
	d := NewDecoder(schema.Default(), time.Now, "bench")
	rec := []byte(`{"id":"e-1","type":"purchase","customer_id":"c-42","time":"2026-11-20T10:00:00.123Z","amount":59.9,"product_id":"p-7","category":"shoes","channel":"web"}`)
	var batch Batch
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for i := range b.N {
		if i%1000 == 0 { // batches of 1,000, as bench run sends
			d.EndBatch()
			batch.Reset()
			d.BeginBatch()
		}
		d.Decode(rec, &batch)
	}
	d.EndBatch()
}

// TestParseUTCMatchesTimePackage compares the hand-written calendar
// arithmetic with time.Date across centuries, leap days and month ends.
func TestParseUTCMatchesTimePackage(t *testing.T) {
	for y := 1700; y <= 2200; y += 7 {
		for m := 1; m <= 12; m++ {
			for _, d := range []int{1, 15, 28, 29, 30, 31} {
				want := time.Date(y, time.Month(m), d, 13, 59, 7, 123456000, time.UTC)
				s := fmt.Sprintf("%04d-%02d-%02dT13:59:07.123456Z", y, m, d)
				got, ok := parseUTC([]byte(s))
				if want.Day() != d { // not a date: must be refused
					if ok {
						t.Errorf("parseUTC(%s) accepted an impossible date", s)
					}
					continue
				}
				if !ok || !got.Equal(want) {
					t.Errorf("parseUTC(%s) = %v, %v; want %v", s, got, ok, want)
				}
			}
		}
	}
}

// TestRepresentableYears checks the second bounds against the calendar:
// the first and last instants of the supported years are in, one
// nanosecond beyond either is out.
func TestRepresentableYears(t *testing.T) {
	first := time.Date(minYear, 1, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(maxYear+1, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		t    time.Time
		want bool
	}{
		{first, true}, {first.Add(-time.Nanosecond), false},
		{end.Add(-time.Nanosecond), true}, {end, false},
		{testNow, true},
	} {
		if got := representable(c.t); got != c.want {
			t.Errorf("representable(%s) = %v, want %v", c.t.Format(time.RFC3339Nano), got, c.want)
		}
	}
}
