package ingest

import (
	"unsafe"

	"github.com/valyala/fastjson"
)

// scanFlat splits rec, when it is a JSON object whose members are all
// scalars, into its members, appended to ms. It takes only the plain form
// of JSON that encoders write: strings without escapes or control
// characters, numbers in JSON's grammar. It reports false for anything
// else, malformed input included, and the caller then parses rec with
// fastjson, which reads all of JSON and says what is wrong. So scanFlat
// decides nothing about validity; it only takes the common case's work off
// the full parser, which copies the record and builds a tree of values.
// FuzzFlatMatchesFastjson holds it to the same members as fastjson.
func scanFlat(rec []byte, ms []memberAt) ([]memberAt, bool) {
	i := skipSpace(rec, 0)
	if i >= len(rec) || rec[i] != '{' {
		return ms, false
	}
	i = skipSpace(rec, i+1)
	if i < len(rec) && rec[i] == '}' {
		return ms, skipSpace(rec, i+1) == len(rec)
	}
	for {
		if i >= len(rec) || rec[i] != '"' {
			return ms, false
		}
		m := memberAt{key0: int32(i + 1)}
		j, ok := plainString(rec, i+1)
		if !ok {
			return ms, false
		}
		m.key1 = int32(j - 1)
		i = skipSpace(rec, j)
		if i >= len(rec) || rec[i] != ':' {
			return ms, false
		}
		i = skipSpace(rec, i+1)
		if i >= len(rec) {
			return ms, false
		}
		switch c := rec[i]; {
		case c == '"':
			m.t, m.s0 = fastjson.TypeString, int32(i+1)
			i, ok = plainString(rec, i+1)
			m.s1 = int32(i - 1)
		case c == '-' || c >= '0' && c <= '9':
			m.t, m.s0 = fastjson.TypeNumber, int32(i)
			i, ok = number(rec, i)
			m.s1 = int32(i)
		case c == 't':
			m.t, i, ok = fastjson.TypeTrue, i+4, hasAt(rec, i, "true")
		case c == 'f':
			m.t, i, ok = fastjson.TypeFalse, i+5, hasAt(rec, i, "false")
		case c == 'n':
			m.t, i, ok = fastjson.TypeNull, i+4, hasAt(rec, i, "null")
		default:
			return ms, false
		}
		if !ok {
			return ms, false
		}
		ms = append(ms, m)
		i = skipSpace(rec, i)
		if i >= len(rec) {
			return ms, false
		}
		switch rec[i] {
		case ',':
			i = skipSpace(rec, i+1)
		case '}':
			return ms, skipSpace(rec, i+1) == len(rec)
		default:
			return ms, false
		}
	}
}

// plainString finds the end of the string whose contents start at rec[i]
// and returns the index after its closing quote; ok is false for a string
// with an escape or a control character, or without an end.
func plainString(rec []byte, i int) (next int, ok bool) {
	for i < len(rec) && plainByte[rec[i]] {
		i++
	}
	if i < len(rec) && rec[i] == '"' {
		return i + 1, true
	}
	return 0, false
}

// plainByte is true for the bytes a string holds as they are: not the
// quote, the backslash or a control character.
var plainByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

// number returns the end of the JSON number at rec[i:]: -?int frac? exp?
// with int 0 or without leading zeros. ok is false when the text there is
// not exactly that, or runs on into something other than a delimiter.
func number(rec []byte, i int) (end int, ok bool) {
	if rec[i] == '-' {
		i++
	}
	switch {
	case i < len(rec) && rec[i] == '0':
		i++
	case i < len(rec) && rec[i] >= '1' && rec[i] <= '9':
		i = digits(rec, i)
	default:
		return 0, false
	}
	if i < len(rec) && rec[i] == '.' {
		j := digits(rec, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(rec) && (rec[i] == 'e' || rec[i] == 'E') {
		i++
		if i < len(rec) && (rec[i] == '+' || rec[i] == '-') {
			i++
		}
		j := digits(rec, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	if i < len(rec) && !delimiter(rec[i]) {
		return 0, false
	}
	return i, true
}

func digits(rec []byte, i int) int {
	for i < len(rec) && rec[i] >= '0' && rec[i] <= '9' {
		i++
	}
	return i
}

// hasAt reports whether rec holds lit at i, followed by a delimiter or the end.
func hasAt(rec []byte, i int, lit string) bool {
	end := i + len(lit)
	return end <= len(rec) && string(rec[i:end]) == lit && (end == len(rec) || delimiter(rec[end]))
}

func delimiter(c byte) bool { return c == ',' || c == '}' || isSpace(c) }

// skipSpace skips JSON's white space, the bytes fastjson skips too.
func skipSpace(rec []byte, i int) int {
	for i < len(rec) && isSpace(rec[i]) {
		i++
	}
	return i
}

// b2s views b as a string without copying; b must not change while the
// string is in use.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
