package mapping

import (
	"math"
	"strconv"
	"strings"
	"unsafe"
)

// maxSafeInt is the largest integer a float64 (and so an integer field) holds exactly.
const maxSafeInt = 1 << 53

// numProblem says why a text is not a number of the wanted kind.
type numProblem uint8

const (
	numOK       numProblem = iota
	numNotNum              // not a number at all
	numNotInt              // a number with a fraction
	numRange               // too large
	numWrongDec            // would be a number with the other decimal separator
)

// trimSpace trims ASCII blanks, which spreadsheets like to leave around
// numbers, times and booleans.
func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// scanNumber reports whether s is [+-]digits[SEP digits][(e|E)[+-]digits]
// with at least one digit before the exponent, SEP being dec. It returns the
// offset of the separator, or -1.
func scanNumber(s string, dec byte) (ok bool, sep int) {
	i, digits := 0, 0
	sep = -1
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == dec {
		sep = i
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false, -1
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			exp++
		}
		if exp == 0 {
			return false, -1
		}
	}
	return i == len(s), sep
}

// parseNumber parses s, a number written with decimal separator dec ('.'
// or ','). The other separator is not accepted, so that 1.234,5 and 1,234.5
// are errors rather than silently wrong; neither are thousands separators,
// NaN, infinities or hexadecimal.
func parseNumber(s string, dec byte) (float64, numProblem) {
	s = trimSpace(s)
	ok, sep := scanNumber(s, dec)
	if !ok {
		other := byte(',')
		if dec == ',' {
			other = '.'
		}
		if ok, _ := scanNumber(s, other); ok && strings.IndexByte(s, other) >= 0 {
			return 0, numWrongDec
		}
		return 0, numNotNum
	}
	if sep >= 0 && dec != '.' {
		var buf [64]byte
		if len(s) <= len(buf) {
			b := buf[:len(s)]
			copy(b, s)
			b[sep] = '.'
			s = unsafe.String(&b[0], len(b))
		} else {
			s = s[:sep] + "." + s[sep+1:]
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, numRange
	}
	return f, numOK
}

// plainJSONNumber reports whether s is -?(0|[1-9][0-9]*)(\.[0-9]+)?, which
// is valid JSON as it stands; dot is the offset of its point or -1, and
// digits counts its integer digits.
func plainJSONNumber(s string) (ok bool, dot, digits int) {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	digits = i - start
	if digits == 0 || digits > 1 && s[start] == '0' {
		return false, -1, 0
	}
	dot = -1
	if i < len(s) && s[i] == '.' {
		dot = i
		i++
		frac := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == frac {
			return false, -1, 0
		}
	}
	return i == len(s), dot, digits
}

// appendNumber appends text s, a number written with separator dec, to dst
// as a JSON number; integer rejects numbers with a fraction ("3.0" is 3).
// Text that is already a plain JSON number is copied, which spares parsing
// and formatting it.
func appendNumber(dst []byte, s string, dec byte, integer bool) ([]byte, numProblem) {
	s = trimSpace(s)
	if dec == '.' && len(s) <= 24 {
		if ok, dot, digits := plainJSONNumber(s); ok {
			if !integer {
				return append(dst, s...), numOK
			}
			if digits <= 15 {
				if dot < 0 {
					if s == "-0" {
						return append(dst, '0'), numOK
					}
					return append(dst, s...), numOK
				}
				if strings.Trim(s[dot+1:], "0") == "" {
					if s[:dot] == "-0" {
						return append(dst, '0'), numOK
					}
					return append(dst, s[:dot]...), numOK
				}
				return dst, numNotInt
			}
			// Too long to trust a float64: read the integer part exactly.
			intPart := s
			if dot >= 0 {
				if strings.Trim(s[dot+1:], "0") != "" {
					return dst, numNotInt
				}
				intPart = s[:dot]
			}
			n, err := strconv.ParseInt(intPart, 10, 64)
			if err != nil || n > maxSafeInt || n < -maxSafeInt {
				return dst, numRange
			}
			return strconv.AppendInt(dst, n, 10), numOK
		}
	}
	f, p := parseNumber(s, dec)
	if p != numOK {
		return dst, p
	}
	return appendFloat(dst, f, integer)
}

// appendFloat appends f as a JSON number; integer requires a whole number
// that a float64 holds exactly.
func appendFloat(dst []byte, f float64, integer bool) ([]byte, numProblem) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, numRange
	}
	if integer {
		if f != math.Trunc(f) {
			return dst, numNotInt
		}
		if math.Abs(f) >= maxSafeInt { // 2^53+1 rounds to 2^53: refuse what may have been rounded
			return dst, numRange
		}
		return strconv.AppendInt(dst, int64(f), 10), numOK
	}
	if f == 0 {
		return append(dst, '0'), numOK // not -0
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64), numOK
}
