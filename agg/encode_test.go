package agg

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sameBits compares floats bit for bit: encoding must keep NaN sentinels and
// the int64 times stored in float slots exactly.
var sameBits = cmp.Comparer(func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) })

// randomState builds a state of allKinds from a random stream; every fourth
// seed overflows distinct_2 into a sketch and topk_1 beyond its capacity.
func randomState(l *Layout, seed uint64) State {
	r := newRand(seed)
	s := l.New()
	if seed%5 == 0 {
		return s
	}
	events := randomEvents(r, r.IntN(300), 120*day, 1+r.IntN(500))
	feed(l, &s, events, nil, t0+120*day)
	if seed%4 == 1 {
		for i := range 6000 {
			l.Add(&s, 19, t0, t0, Input{Hash: r.Uint64()})
			l.Add(&s, 20, t0, t0, Input{Str: strings.Repeat("x", i%40)})
		}
	}
	return s
}

func TestStateRoundTrip(t *testing.T) {
	l := mustLayout(t, allKinds...)
	for seed := range uint64(40) {
		s := randomState(l, seed)
		tail := []byte("next")
		enc := l.AppendState([]byte("prefix"), &s)
		enc = append(enc, tail...)
		got, rest, err := l.DecodeState(enc[len("prefix"):])
		if err != nil {
			t.Fatalf("seed %d: DecodeState: %v", seed, err)
		}
		if !bytes.Equal(rest, tail) {
			t.Errorf("seed %d: rest = %q, want %q", seed, rest, tail)
		}
		if diff := cmp.Diff(s, got, sameBits); diff != "" {
			t.Errorf("seed %d: round trip (-want +got):\n%s", seed, diff)
		}
		if again := l.AppendState(nil, &got); !bytes.Equal(again, enc[len("prefix"):len(enc)-len(tail)]) {
			t.Errorf("seed %d: re-encoding differs", seed)
		}
		for i := range l.Len() {
			if want, v := l.Value(&s, i, t0+100*day), l.Value(&got, i, t0+100*day); !cmp.Equal(want, v) {
				t.Errorf("seed %d: %s = %v after round trip, want %v", seed, l.Spec(i).Name, v, want)
			}
		}
	}
}

func TestDecodeTruncated(t *testing.T) {
	l := mustLayout(t, allKinds...)
	for seed := range uint64(12) {
		s := randomState(l, seed)
		enc := l.AppendState(nil, &s)
		for n := range len(enc) {
			if _, _, err := l.DecodeState(enc[:n]); err == nil {
				t.Fatalf("seed %d: DecodeState of %d of %d bytes succeeded, want an error", seed, n, len(enc))
			}
		}
	}
}

func TestDecodeCorrupt(t *testing.T) {
	l := mustLayout(t,
		Spec{Kind: Count},
		Spec{Kind: Sum, Window: 24 * 60 * 60 * 1e9},
		Spec{Kind: Distinct},
		Spec{Kind: TopK},
	)
	u := binary.AppendUvarint
	head := func() []byte { return u(u(u([]byte{stateVersion}, 1), 1), 1) }
	num := func(b []byte) []byte { return u(b, 0) } // count slot
	// tops encodes no cells, an empty distinct set and one top-k slot.
	tops := func(n int, entries ...any) []byte {
		b := u(u(u(num(head()), 0), 0), uint64(n))
		for _, e := range entries {
			switch e := e.(type) {
			case string:
				b = append(u(b, uint64(len(e))), e...)
			case int:
				b = u(b, uint64(e))
			}
		}
		return b
	}
	tests := []struct {
		name string
		src  []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"version", []byte{9, 1, 1, 1}, "version 9"},
		{"shape", u(u(u([]byte{stateVersion}, 2), 1), 1), "shape 2/1/1"},
		{"cell of unwindowed aggregate", u(u(u(u(num(head()), 1), 0), 5), 1), "aggregate 0 is not windowed"},
		{"cell of unknown aggregate", u(u(u(u(num(head()), 1), 7), 5), 1), "aggregate 7 is not windowed"},
		{"empty cell", u(u(u(u(num(head()), 1), 1), 5), 0), "0 events"},
		{"too many cells", u(num(head()), 1<<40), "window cells"},
		{"too many distinct", u(u(num(head()), 0), MaxExactDistinct+2), "at most 4096"},
		{"distinct overflow", u(u(u(u(num(head()), 0), 2), math.MaxUint64), 0), "overflows"},
		{"sketch register", append(u(u(num(head()), 0), MaxExactDistinct+1), bytes.Repeat([]byte{0xff}, 8*hllWords)...), "register 0 holds 63"},
		{"too many counters", tops(TopCapacity(3) + 1), fmt.Sprintf("top-k counters: %d, at most %d", TopCapacity(3)+1, TopCapacity(3))},
		{"counter error", tops(1, "a", 2, 2), "count 2 error 2"},
		{"zero count", tops(1, "a", 0, 0), "count 0 error 0"},
		{"repeated value", tops(2, "a", 1, 0, "a", 1, 0), "repeated value"},
		{"long value", tops(1, "a", 1), "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := l.DecodeState(tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("DecodeState(%x) error = %v, want %q", tt.src, err, tt.want)
			}
		})
	}
	// The same builders make a valid state, so the cases above fail for
	// the reason they name.
	ok := tops(2, "a", 2, 1, "b", 1, 0)
	if _, rest, err := l.DecodeState(ok); err != nil || len(rest) != 0 {
		t.Errorf("DecodeState(valid %x) = rest %x, %v", ok, rest, err)
	}
}

func FuzzDecodeState(f *testing.F) {
	l := mustLayout(f, allKinds...)
	for seed := range uint64(8) {
		s := randomState(l, seed)
		f.Add(l.AppendState(nil, &s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		s, rest, err := l.DecodeState(src)
		if err != nil {
			return
		}
		enc := l.AppendState(nil, &s)
		got, rest2, err := l.DecodeState(enc)
		if err != nil || len(rest2) != 0 {
			t.Fatalf("re-decoding %x: rest %x, %v", enc, rest2, err)
		}
		if diff := cmp.Diff(s, got, sameBits); diff != "" {
			t.Fatalf("decode(encode(decode(src))) differs (-first +second):\n%s", diff)
		}
		if len(rest) > len(src) {
			t.Fatalf("rest longer than src")
		}
		checkWin(t, l, &s)
		for i := range l.Len() {
			l.Value(&s, i, t0)
			l.Add(&s, i, t0, t0, Input{Num: 1, Str: "x", Hash: 1})
		}
		l.Expire(&s, t0)
		l.Bytes(&s)
	})
}
