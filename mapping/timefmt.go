package mapping

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/twinhub/twinhub/ingest"
)

// timeKind is how a time format reads text. The common layouts are parsed by
// hand: time.Parse costs more than the rest of a record's mapping.
type timeKind uint8

const (
	tkAuto      timeKind = iota // the default list (see docs/mappings.md)
	tkRFC3339                   // 2006-01-02T15:04:05[.frac](Z|±hh:mm)
	tkDate                      // 2006-01-02
	tkDateTime                  // 2006-01-02 15:04:05[.frac]
	tkDateTimeT                 // 2006-01-02T15:04:05[.frac]
	tkCompact                   // 20060102
	tkUnix                      // seconds since 1970
	tkUnixMs                    // milliseconds
	tkUnixUs                    // microseconds
	tkLayout                    // any other Go layout, through time.ParseInLocation
)

// timeFormat is a compiled `format`.
type timeFormat struct {
	kind   timeKind
	layout string // Go layout for tkLayout
	text   string // as written, for messages
}

// Unix nanoseconds in an int64, which events carry, cover these years.
const (
	minYear = 1678
	maxYear = 2261
)

var fastLayouts = map[string]timeKind{
	"2006-01-02":          tkDate,
	"2006-01-02 15:04:05": tkDateTime,
	"2006-01-02T15:04:05": tkDateTimeT,
	"20060102":            tkCompact,
	time.RFC3339:          tkRFC3339,
	time.RFC3339Nano:      tkRFC3339,
}

// strftime maps strftime directives to Go layout elements.
var strftime = map[byte]string{
	'Y': "2006", 'y': "06", 'm': "01", 'd': "02", 'e': "_2", 'H': "15", 'I': "03", 'M': "04",
	'S': "05", 'f': "000000", 'L': "000", 'b': "Jan", 'h': "Jan", 'B': "January", 'a': "Mon",
	'A': "Monday", 'p': "PM", 'z': "-0700", 'Z': "MST", 'j': "002", 'T': "15:04:05",
	'F': "2006-01-02", 'D': "01/02/06", 'R': "15:04", '%': "%",
}

// parseTimeFormat compiles a `format`: rfc3339, unix, unix_ms, unix_us, a
// strftime pattern (recognised by %) or a Go layout. It returns a problem
// and a hint when the format cannot work.
func parseTimeFormat(s string) (timeFormat, string, string) {
	tf := timeFormat{text: s}
	switch strings.ToLower(s) {
	case "rfc3339":
		tf.kind = tkRFC3339
		return tf, "", ""
	case "unix":
		tf.kind = tkUnix
		return tf, "", ""
	case "unix_ms":
		tf.kind = tkUnixMs
		return tf, "", ""
	case "unix_us":
		tf.kind = tkUnixUs
		return tf, "", ""
	}
	layout := s
	if strings.Contains(s, "%") {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] != '%' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 >= len(s) {
				return tf, fmt.Sprintf("format %q ends with a lone %%", s), "write %% for a literal percent sign"
			}
			el, ok := strftime[s[i+1]]
			if !ok {
				return tf, fmt.Sprintf("format %q: unknown directive %%%c", s, s[i+1]),
					"supported: %Y %y %m %d %e %H %I %M %S %f %L %b %B %a %A %p %z %Z %j %T %F %D %R %%"
			}
			if (s[i+1] == 'f' || s[i+1] == 'L') && (i == 0 || s[i-1] != '.' && s[i-1] != ',') {
				return tf, fmt.Sprintf("format %q: %%%c must follow a . or ,", s, s[i+1]), "write e.g. %H:%M:%S.%f"
			}
			b.WriteString(el)
			i++
		}
		layout = b.String()
	}
	if k, ok := fastLayouts[layout]; ok {
		tf.kind = k
		return tf, "", ""
	}
	ref := time.Date(2011, 11, 23, 21, 47, 58, 123456789, time.UTC) // every element differs from the layout's
	out := ref.Format(layout)
	if out == layout {
		return tf, fmt.Sprintf("format %q has no date or time elements", s),
			"write a Go layout such as 2006-01-02 15:04:05, a strftime pattern such as %Y-%m-%d %H:%M:%S, or rfc3339, unix, unix_ms, unix_us"
	}
	if _, err := time.Parse(layout, out); err != nil {
		return tf, fmt.Sprintf("format %q cannot read the times it writes: %v", s, err), "check the layout's elements"
	}
	tf.kind, tf.layout = tkLayout, layout
	return tf, "", ""
}

// civil is a parsed wall-clock time, with its offset when the text had one.
type civil struct {
	y, mo, d, h, mi, s, ns int
	off                    int // seconds east of UTC
	hasOff                 bool
}

func digits(s string, n int) (int, bool) {
	if len(s) < n {
		return 0, false
	}
	v := 0
	for i := 0; i < n; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// scanCivil parses the hand-parsed layouts. kind says which shapes it
// accepts; tkAuto accepts a date, optionally followed by a space or T, a
// time, a fraction and a zone (Z, ±hh, ±hhmm, ±hh:mm), or 8 digits.
func scanCivil(s string, kind timeKind) (c civil, ok bool) {
	if kind == tkCompact || kind == tkAuto && len(s) == 8 {
		y, ok1 := digits(s, 4)
		mo, ok2 := digits(s[min(4, len(s)):], 2)
		d, ok3 := digits(s[min(6, len(s)):], 2)
		if len(s) != 8 || !ok1 || !ok2 || !ok3 {
			return c, false
		}
		c.y, c.mo, c.d = y, mo, d
		return c, validDate(c)
	}
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return c, false
	}
	var ok1, ok2, ok3 bool
	c.y, ok1 = digits(s, 4)
	c.mo, ok2 = digits(s[5:], 2)
	c.d, ok3 = digits(s[8:], 2)
	if !ok1 || !ok2 || !ok3 || !validDate(c) {
		return c, false
	}
	rest := s[10:]
	if len(rest) == 0 {
		return c, kind == tkDate || kind == tkAuto
	}
	if kind == tkDate {
		return c, false
	}
	switch rest[0] {
	case ' ':
		if kind != tkDateTime && kind != tkAuto {
			return c, false
		}
	case 'T', 't':
		if kind == tkDateTime {
			return c, false
		}
	default:
		return c, false
	}
	rest = rest[1:]
	if len(rest) < 8 || rest[2] != ':' || rest[5] != ':' {
		return c, false
	}
	var ok4, ok5, ok6 bool
	c.h, ok4 = digits(rest, 2)
	c.mi, ok5 = digits(rest[3:], 2)
	c.s, ok6 = digits(rest[6:], 2)
	if !ok4 || !ok5 || !ok6 || c.h > 23 || c.mi > 59 || c.s > 59 {
		return c, false
	}
	rest = rest[8:]
	if len(rest) > 0 && (rest[0] == '.' || rest[0] == ',') {
		i := 1
		ns, scale := 0, 100_000_000
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			ns += int(rest[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == 1 {
			return c, false
		}
		c.ns = ns
		rest = rest[i:]
	}
	if len(rest) == 0 {
		return c, kind != tkRFC3339
	}
	if kind != tkRFC3339 && kind != tkAuto {
		return c, false
	}
	if kind == tkAuto && rest[0] == ' ' && len(rest) > 1 && (rest[1] == '+' || rest[1] == '-') {
		rest = rest[1:]
	}
	if rest == "Z" || rest == "z" {
		c.hasOff = true
		return c, true
	}
	if rest[0] != '+' && rest[0] != '-' {
		return c, false
	}
	sign := 1
	if rest[0] == '-' {
		sign = -1
	}
	rest = rest[1:]
	hh, ok7 := digits(rest, 2)
	if !ok7 {
		return c, false
	}
	mm := 0
	switch {
	case len(rest) == 2 && kind == tkAuto:
	case len(rest) == 4 && kind == tkAuto:
		mm, ok7 = digits(rest[2:], 2)
	case len(rest) == 5 && rest[2] == ':':
		mm, ok7 = digits(rest[3:], 2)
	default:
		return c, false
	}
	if !ok7 || hh > 23 || mm > 59 {
		return c, false
	}
	c.off, c.hasOff = sign*(hh*3600+mm*60), true
	return c, true
}

func validDate(c civil) bool {
	return c.mo >= 1 && c.mo <= 12 && c.d >= 1 && c.d <= ingest.DaysIn(c.y, c.mo)
}

// instant turns a civil time into unix seconds and nanoseconds, reading it
// in loc (nil: UTC) when it has no offset.
func (c civil) instant(loc *time.Location) (int64, int) {
	if c.hasOff || loc == nil {
		return ingest.DaysFromCivil(c.y, c.mo, c.d)*86400 + int64(c.h*3600+c.mi*60+c.s) - int64(c.off), c.ns
	}
	t := time.Date(c.y, time.Month(c.mo), c.d, c.h, c.mi, c.s, c.ns, loc)
	return t.Unix(), t.Nanosecond()
}

// parseTimeText reads text s in format tf. ok is false when s does not match.
func parseTimeText(s string, tf *timeFormat, loc *time.Location) (sec int64, nsec int, ok bool) {
	s = trimSpace(s)
	switch tf.kind {
	case tkUnix, tkUnixMs, tkUnixUs:
		return unixText(s, tf.kind)
	case tkLayout:
		l := loc
		if l == nil {
			l = time.UTC
		}
		t, err := time.ParseInLocation(tf.layout, s, l)
		if err != nil {
			return 0, 0, false
		}
		return t.Unix(), t.Nanosecond(), true
	}
	c, ok := scanCivil(s, tf.kind)
	if !ok {
		return 0, 0, false
	}
	sec, nsec = c.instant(loc)
	return sec, nsec, true
}

// unixText reads a unix time written as text: an integer, or a decimal
// number with a fraction.
func unixText(s string, kind timeKind) (int64, int, bool) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return unixInt(n, kind)
	}
	f, p := parseNumber(s, '.')
	if p != numOK {
		return 0, 0, false
	}
	return unixFloat(f, kind)
}

func unixInt(n int64, kind timeKind) (int64, int, bool) {
	var unit int64
	switch kind {
	case tkUnix:
		unit = 1
	case tkUnixMs:
		unit = 1000
	default:
		unit = 1_000_000
	}
	sec, rem := n/unit, n%unit
	if rem < 0 {
		sec--
		rem += unit
	}
	return sec, int(rem * (1_000_000_000 / unit)), true
}

func unixFloat(f float64, kind timeKind) (int64, int, bool) {
	switch kind {
	case tkUnixMs:
		f /= 1e3
	case tkUnixUs:
		f /= 1e6
	}
	if math.IsNaN(f) || math.Abs(f) > 4e11 {
		return 0, 0, false
	}
	sec := math.Floor(f)
	return int64(sec), int(math.Round((f - sec) * 1e9)), true
}

// appendRFC3339 appends sec/nsec as RFC 3339 in UTC with the shortest
// fraction, as time.RFC3339Nano writes it. It fails for years an event
// cannot carry.
func appendRFC3339(dst []byte, sec int64, nsec int) ([]byte, bool) {
	if nsec >= 1_000_000_000 {
		sec += int64(nsec / 1_000_000_000)
		nsec %= 1_000_000_000
	}
	days := sec / 86400
	rem := sec % 86400
	if rem < 0 {
		days--
		rem += 86400
	}
	y, m, d := ingest.CivilFromDays(days)
	if y < minYear || y > maxYear {
		return dst, false
	}
	h, mi, s := int(rem/3600), int(rem%3600/60), int(rem%60)
	dst = append(dst, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':', byte('0'+s/10), byte('0'+s%10))
	if nsec > 0 {
		var frac [9]byte
		n := nsec
		for i := 8; i >= 0; i-- {
			frac[i] = byte('0' + n%10)
			n /= 10
		}
		end := 9
		for end > 0 && frac[end-1] == '0' {
			end--
		}
		dst = append(dst, '.')
		dst = append(dst, frac[:end]...)
	}
	return append(dst, 'Z'), true
}
