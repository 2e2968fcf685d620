package schema

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{in: "0", want: 0},
		{in: "90m", want: 90 * time.Minute},
		{in: "30d", want: 30 * day},
		{in: "2w", want: 14 * day},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "1.5h", want: 90 * time.Minute},
		{in: "1h30m15s", want: time.Hour + 30*time.Minute + 15*time.Second},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "3µs", want: 3 * time.Microsecond},
		{in: "365d1ns", want: 365*day + 1},
		{in: "", err: true},
		{in: "30", err: true},
		{in: "30x", err: true},
		{in: "-1d", err: true},
		{in: "d", err: true},
		{in: "1..5h", err: true},
		{in: "99999999999999999999d", err: true},
		{in: "106752d", err: true}, // beyond the int64 nanosecond range
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * day:                     "30d",
		36 * time.Hour:               "1d12h",
		90 * time.Minute:             "1h30m",
		5*time.Hour + 36*time.Minute: "5h36m",
		1500 * time.Millisecond:      "1.5s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := ParseDuration(FormatDuration(d)); err != nil || back != d {
			t.Errorf("ParseDuration(FormatDuration(%v)) = %v, %v", d, back, err)
		}
	}
}

func TestDivisorBucket(t *testing.T) {
	tests := []struct{ window, want, got time.Duration }{
		{30 * day, day, day},
		{30 * day, 7 * day, 6 * day},
		{100 * time.Minute, 3 * time.Minute, 2 * time.Minute},
		{7 * day, 5*time.Hour + 36*time.Minute, 5*time.Hour + 36*time.Minute},
		{day, 2 * day, day},
		{97 * time.Minute, 3 * time.Minute, time.Minute}, // prime
		{100000 * day, 100000 * day / 30, 100000 * day / 30},
		{1_000_003 * time.Minute, 33333 * time.Minute, time.Minute}, // prime: no divisor but 1m
	}
	for _, tt := range tests {
		if got := divisorBucket(tt.window, tt.want); got != tt.got {
			t.Errorf("divisorBucket(%v, %v) = %v, want %v", tt.window, tt.want, got, tt.got)
		}
	}
}
