package schema

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

var durationUnits = map[string]time.Duration{
	"ns": time.Nanosecond,
	"us": time.Microsecond,
	"µs": time.Microsecond,
	"μs": time.Microsecond,
	"ms": time.Millisecond,
	"s":  time.Second,
	"m":  time.Minute,
	"h":  time.Hour,
	"d":  24 * time.Hour,
	"w":  7 * 24 * time.Hour,
}

var errDurationRange = errors.New("too long")

// ParseDuration parses a duration as time.ParseDuration does, plus the units
// d (24h) and w (7d): "30d", "1d12h", "90m", "1.5h". Negative durations and
// bare numbers other than "0" are errors.
func ParseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if s[0] == '-' || s[0] == '+' {
		return 0, errors.New("sign not allowed")
	}
	var total time.Duration
	for rest := s; rest != ""; {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, errors.New("expected a number")
		}
		num := rest[:i]
		rest = rest[i:]
		j := 0
		for j < len(rest) && !(rest[j] >= '0' && rest[j] <= '9' || rest[j] == '.') {
			j++
		}
		unit := rest[:j]
		rest = rest[j:]
		if unit == "" {
			return 0, errors.New("missing unit")
		}
		scale, ok := durationUnits[unit]
		if !ok {
			return 0, errors.New("unknown unit " + strconv.Quote(unit))
		}
		var d time.Duration
		if strings.Contains(num, ".") {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, errors.New("bad number " + strconv.Quote(num))
			}
			f *= float64(scale)
			if f >= math.MaxInt64 {
				return 0, errDurationRange
			}
			d = time.Duration(math.Round(f))
		} else {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil || n > math.MaxInt64/int64(scale) {
				return 0, errDurationRange
			}
			d = time.Duration(n) * scale
		}
		if total > math.MaxInt64-d {
			return 0, errDurationRange
		}
		total += d
	}
	return total, nil
}

// FormatDuration formats d with the largest of w, d, h, m, s that keep it
// exact, so that 720h reads "30d" and 36h reads "1d12h".
func FormatDuration(d time.Duration) string {
	if d <= 0 || d%time.Second != 0 {
		return d.String()
	}
	var b strings.Builder
	for _, u := range []struct {
		name string
		d    time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if n := d / u.d; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10))
			b.WriteString(u.name)
			d -= n * u.d
		}
	}
	return b.String()
}
