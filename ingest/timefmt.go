package ingest

import "time"

// parseTime parses an RFC 3339 timestamp. The common UTC form
// 2006-01-02T15:04:05[.fraction]Z is parsed by hand because time.Parse costs
// as much as the rest of an event's decoding; anything else falls back to it.
func parseTime(s []byte) (time.Time, bool) {
	if t, ok := parseUTC(s); ok {
		return t, true
	}
	t, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// Unix nanoseconds in an int64 cover these years; times outside would wrap.
// minUnix and endUnix are the first second of minYear and of the year after
// maxYear, which a test checks against the calendar.
const (
	minYear = 1678
	maxYear = 2261
	minUnix = -9214560000
	endUnix = 9214646400
)

// representable reports whether t is within the years minYear to maxYear;
// comparing seconds costs less than asking for t's year.
func representable(t time.Time) bool {
	u := t.Unix()
	return u >= minUnix && u < endUnix
}

func parseUTC(s []byte) (time.Time, bool) {
	if len(s) < 20 || s[len(s)-1] != 'Z' || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(b []byte) (int, bool) {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(s[0:4])
	month, ok2 := num(s[5:7])
	day, ok3 := num(s[8:10])
	hour, ok4 := num(s[11:13])
	minute, ok5 := num(s[14:16])
	sec, ok6 := num(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	nanos := 0
	if rest := s[19 : len(s)-1]; len(rest) > 0 {
		if rest[0] != '.' || len(rest) < 2 || len(rest) > 10 {
			return time.Time{}, false
		}
		digits := rest[1:]
		n, ok := num(digits)
		if !ok {
			return time.Time{}, false
		}
		for i := len(digits); i < 9; i++ {
			n *= 10
		}
		nanos = n
	}
	if day > DaysIn(year, month) { // 2026-02-31 is not a date
		return time.Time{}, false
	}
	secs := DaysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	return time.Unix(secs, int64(nanos)).UTC(), true
}
