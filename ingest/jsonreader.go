package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// jsonMode is where a JSON reader is in its input.
type jsonMode uint8

const (
	jsonSniff      jsonMode = iota // nothing read yet: the first byte decides
	jsonLines                      // NDJSON: one value per line
	jsonValues                     // values one after another, over any number of lines
	jsonArrayFirst                 // after '[': an element or ']'
	jsonArrayNext                  // after an element: ',' or ']'
	jsonArrayElem                  // after ',': an element (or ']': a trailing comma is let pass)
	jsonAfterArray                 // after ']': only white space may follow
)

// jsonScan finds the end of one JSON value without parsing it: it tracks
// strings and the nesting depth. It survives reading more input.
type jsonScan struct {
	i       int // next byte, relative to the value's start
	depth   int
	started bool
	inStr   bool
	esc     bool
	scalar  bool   // a number or a literal: it ends at a delimiter or white space
	prefix  []byte // the first bytes of a value longer than the limit
}

// scan advances over b, the value's bytes read so far, and returns the
// value's end once it is found.
func (s *jsonScan) scan(b []byte) (int, bool) {
	if !s.started {
		s.started = true
		s.i = 1
		switch b[0] {
		case '{', '[':
			s.depth = 1
		case '"':
			s.inStr = true
		default:
			s.scalar = true
		}
	}
	for i := s.i; i < len(b); i++ {
		c := b[i]
		switch {
		case s.scalar:
			if c == ',' || c == ']' || c == '}' || isSpace(c) {
				s.i = i
				return i, true
			}
		case s.inStr:
			if s.esc {
				s.esc = false
			} else if c == '\\' {
				s.esc = true
			} else if c == '"' {
				s.inStr = false
				if s.depth == 0 {
					s.i = i + 1
					return i + 1, true
				}
			}
		case c == '"':
			s.inStr = true
		case c == '{' || c == '[':
			s.depth++
		case c == '}' || c == ']':
			s.depth--
			if s.depth == 0 {
				s.i = i + 1
				return i + 1, true
			}
		}
	}
	s.i = len(b)
	return 0, false
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// nextJSON returns the next record of an NDJSON or JSON input.
func (r *RecordReader) nextJSON() (*Record, error) {
	for {
		switch r.mode {
		case jsonLines:
			return r.nextLine()
		case jsonSniff:
			if err := r.sniff(); err != nil {
				return nil, err
			}
		case jsonValues:
			if !r.skipSpace() {
				return nil, r.endErr()
			}
			v, line, long, open, err := r.readValue()
			if err != nil {
				return nil, err
			}
			rec := r.valueRecord(v, line, long)
			if open && !long {
				rec.Err = recordErr(line, "the JSON value that starts here is not closed at the end of the input")
			}
			return rec, nil
		case jsonAfterArray:
			if !r.skipSpace() {
				return nil, r.endErr()
			}
			return nil, recordErr(r.line, "unexpected %s after the end of the JSON array", quoteChar(r.buf[r.pos:r.end]))
		default: // in the array
			if !r.skipSpace() {
				if r.rerr != nil {
					return nil, r.rerr
				}
				return nil, recordErr(r.line, "the JSON array is not closed: the input ends before its ']'")
			}
			c := r.buf[r.pos]
			switch {
			case c == ']':
				r.pos++
				r.mode = jsonAfterArray
				continue
			case r.mode == jsonArrayNext:
				if c == ',' {
					r.pos++
					r.mode = jsonArrayElem
					continue
				}
				return nil, recordErr(r.line, "expected ',' or ']' after an element of the JSON array, found %s", quoteChar(r.buf[r.pos:r.end]))
			case c == ',':
				return nil, recordErr(r.line, "expected an element of the JSON array, found ','")
			}
			v, line, long, open, err := r.readValue()
			if err != nil {
				return nil, err
			}
			if open {
				return nil, recordErr(line, "the input ends inside the element of the JSON array that starts here")
			}
			r.mode = jsonArrayNext
			return r.valueRecord(v, line, long), nil
		}
	}
}

// sniff decides from the first byte how a JSON input is laid out: '[' is an
// array of objects; '{' is NDJSON when the first line is a whole value, and
// otherwise values spread over several lines (a pretty-printed object, or
// several, as jq writes them), unless the first line looks like broken
// NDJSON (see pretty). A Debezium input may also start with null.
func (r *RecordReader) sniff() error {
	r.mode = jsonLines
	if !r.skipSpace() {
		return r.rerr
	}
	switch c := r.buf[r.pos]; {
	case c == '[':
		r.pos++
		r.mode = jsonArrayFirst
	case c == '{':
		if !r.firstLineWhole() && r.pretty() {
			r.mode = jsonValues
		}
	case c == 'n' && r.f.Kind == FormatDebezium:
		// A tombstone first: one change event per line, as Kafka dumps
		// are written.
	default:
		return recordErr(r.line, "expected a JSON array or object, found %s", quoteChar(r.buf[r.pos:r.end]))
	}
	return nil
}

// firstLineWhole reports whether the line at r.pos is one valid JSON value,
// or cannot be anything else (it is the whole input, or too long).
func (r *RecordReader) firstLineWhole() bool {
	seen := 0
	for {
		b := r.buf[r.pos:r.end]
		if i := bytes.IndexByte(b[seen:], '\n'); i >= 0 {
			return fastjson.ValidateBytes(b[:seen+i]) == nil
		}
		seen = len(b)
		if len(b) > r.maxRec || !r.more() {
			return true
		}
	}
}

// pretty reports whether the value at r.pos is better read as a value
// spread over several lines than as a broken NDJSON line: it is, unless a
// line inside it starts with '{'. Pretty-printers indent what is nested,
// and a JSON string cannot hold a line break, so such a line starts the
// next record of an NDJSON input whose first line is broken; reading on
// would take all the following lines into one broken value.
func (r *RecordReader) pretty() bool {
	s := &r.js
	*s = jsonScan{prefix: s.prefix}
	seen := 0
	for {
		b := r.buf[r.pos:r.end]
		end, ok := s.scan(b)
		if ok {
			b = b[:end]
		}
		if bytes.Contains(b[max(seen-1, 0):], []byte("\n{")) {
			return false
		}
		seen = len(b)
		if ok || len(b) > r.maxRec || !r.more() {
			return true
		}
	}
}

// skipSpace skips JSON white space and reports whether anything follows.
func (r *RecordReader) skipSpace() bool {
	for {
		for r.pos < r.end {
			switch r.buf[r.pos] {
			case '\n':
				r.line++
			case ' ', '\t', '\r':
			default:
				return true
			}
			r.pos++
		}
		if !r.more() {
			return false
		}
	}
}

// readValue reads the JSON value at r.pos and returns its bytes and the
// line it starts on. When it is longer than the limit, long is set and v
// holds its first bytes; open is set when the input ends inside it.
func (r *RecordReader) readValue() (v []byte, line int, long, open bool, err error) {
	s := &r.js
	*s = jsonScan{prefix: s.prefix[:0]}
	line = r.line
	dropped := 0
	var b []byte
	end := 0
	for {
		b = r.buf[r.pos:r.end]
		var ok bool
		if end, ok = s.scan(b); ok {
			break
		}
		if !long && dropped+len(b) > r.maxRec {
			long = true
		}
		if long {
			s.prefix = keepPrefix(s.prefix, b)
			r.line += bytes.Count(b, []byte{'\n'})
			dropped += len(b)
			r.pos = r.end
			s.i = 0
		}
		if !r.more() {
			if r.rerr != nil {
				return nil, 0, false, false, r.rerr
			}
			b = r.buf[r.pos:r.end]
			end, open = len(b), !s.scalar
			break
		}
	}
	v = b[:end:end]
	r.line += bytes.Count(v, []byte{'\n'})
	r.pos += end
	if !long && end > r.maxRec {
		long = true
	}
	if long {
		s.prefix = keepPrefix(s.prefix, v)
		v = s.prefix
	}
	return v, line, long, open, nil
}

// valueRecord makes the record of one JSON value.
func (r *RecordReader) valueRecord(v []byte, line int, long bool) *Record {
	r.index++
	r.rec = Record{Raw: v, Line: line, Index: r.index}
	if long {
		r.rec.Err = recordErr(line, "the JSON value is longer than %s, the limit", sizeText(r.maxRec))
		r.rec.Truncated = true
	} else if err := r.checkRecord(v, line); err != nil {
		r.rec.Err = err
	}
	return &r.rec
}

// nextLine returns the record of the next non-blank line, as NDJSON.
func (r *RecordReader) nextLine() (*Record, error) {
	for {
		v, line, long, err := r.readLine()
		if err != nil {
			return nil, err
		}
		if !long {
			v = bytes.TrimSuffix(v, []byte{'\r'})
			if len(bytes.Trim(v, " \t\r")) == 0 {
				continue
			}
		}
		r.index++
		r.rec = Record{Raw: v[:len(v):len(v)], Line: line, Index: r.index}
		if long {
			r.rec.Err = recordErr(line, "the line is longer than %s, the limit", sizeText(r.maxRec))
			r.rec.Truncated = true
		} else if err := r.checkRecord(v, line); err != nil {
			r.rec.Err = err
		}
		return &r.rec, nil
	}
}

// readLine returns the next line without its "\n", and its number. When
// the line is longer than the limit, long is set and v holds its first
// bytes; the rest is skipped without being kept.
func (r *RecordReader) readLine() (v []byte, line int, long bool, err error) {
	line = r.line
	i, dropped := 0, 0
	s := &r.js
	for {
		b := r.buf[r.pos:r.end]
		if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
			n := i + j
			v = b[:n]
			r.pos += n + 1
			r.line++
			break
		}
		i = len(b)
		if !long && dropped+i > r.maxRec {
			long = true
			s.prefix = s.prefix[:0]
		}
		if long {
			s.prefix = keepPrefix(s.prefix, b)
			dropped += i
			r.pos, i = r.end, 0
		}
		if !r.more() {
			if r.rerr != nil {
				return nil, 0, false, r.rerr
			}
			v = r.buf[r.pos:r.end]
			if len(v) == 0 && !long {
				return nil, 0, false, io.EOF
			}
			r.pos = r.end
			break
		}
	}
	if !long && len(v) > r.maxRec {
		long = true
		s.prefix = s.prefix[:0]
	}
	if long {
		s.prefix = keepPrefix(s.prefix, v)
		v = s.prefix
	}
	return v, line, long, nil
}

// checkRecord returns the error of a record that is not one JSON object,
// except that a Debezium input may hold null: a tombstone, which Kafka
// keeps after a delete for log compaction and a console consumer prints as
// null. It is a record, for the mapping to skip.
func (r *RecordReader) checkRecord(v []byte, line int) error {
	if r.f.Kind == FormatDebezium && string(bytes.Trim(v, " \t\r\n")) == "null" {
		return nil
	}
	return checkObject(v, line)
}

// checkObject returns the error of a record that is not one JSON object.
func checkObject(v []byte, line int) error {
	if err := fastjson.ValidateBytes(v); err != nil {
		return malformed(v, line, err)
	}
	i := 0
	for isSpace(v[i]) { // valid JSON is not all white space
		i++
	}
	if c := v[i]; c != '{' {
		return recordErr(line, "expected a JSON object, found %s", jsonKind(c))
	}
	return nil
}

// malformed describes a JSON syntax error. fastjson's messages chain every
// level of nesting; encoding/json's name the character and give an offset,
// which becomes a line and column. Only rejected records pay for it.
func malformed(v []byte, line int, ferr error) error {
	var raw json.RawMessage
	var se *json.SyntaxError
	if !errors.As(json.Unmarshal(v, &raw), &se) {
		return recordErr(line, "malformed JSON: %s", strings.TrimPrefix(ferr.Error(), "cannot parse JSON: "))
	}
	if se.Offset <= 0 || se.Offset > int64(len(v)) || strings.HasPrefix(se.Error(), "unexpected end") {
		return recordErr(line, "malformed JSON: %s", se)
	}
	at := int(se.Offset) - 1 // the offending byte
	start := bytes.LastIndexByte(v[:at], '\n') + 1
	col := utf8.RuneCount(v[start:at]) + 1
	if n := bytes.Count(v[:at], []byte{'\n'}); n > 0 {
		return recordErr(line, "malformed JSON: %s (line %d, column %d)", se, line+n, col)
	}
	return recordErr(line, "malformed JSON: %s (column %d)", se, col)
}

func jsonKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
