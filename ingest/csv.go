package ingest

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/twinhub/twinhub"
)

// csvConf is CSVOptions made ready for scanning. Delimiter, quote and
// comment are matched as UTF-8 byte sequences in the decoded input.
type csvConf struct {
	delim, quote, comment []byte // quote and comment nil when off
	fast                  bool   // one-byte delimiter and quote: lines without a quote are split directly
	charset               *charset
}

// csvScan is the state of a record being scanned; it survives reading
// more input, so that a record split across reads is scanned once.
type csvScan struct {
	i       int // next byte to look at, relative to the record's start
	st      uint8
	fstart  int // start of the current field's text
	qend    int // where the closing quote of a quoted field was seen
	esc     bool
	spans   []span
	bad     string // the first problem in the record
	long    bool   // longer than the limit: its bytes are being skipped
	prefix  []byte // the first bytes of a long record
	skipped int    // bytes of a long record already dropped
}

// span is one field of the record being scanned, relative to its start.
type span struct {
	start, end int
	esc        bool // holds doubled quotes to undo
}

// Scanner states.
const (
	stFieldStart uint8 = iota
	stUnquoted
	stQuoted
	stQuoteSeen // a quote inside a quoted field: its end, or the first of a doubled quote
)

func (r *RecordReader) initCSV() error {
	o := r.f.CSV
	if o.Delimiter == 0 {
		o.Delimiter = ','
	}
	bad := func(format string, args ...any) error {
		return twinhub.Errorf(twinhub.EINVALID, "csv: "+format, args...)
	}
	for _, c := range []struct {
		name string
		r    rune
	}{{"delimiter", o.Delimiter}, {"quote", o.Quote}, {"comment", o.Comment}} {
		if c.r == '\n' || c.r == '\r' || c.r < 0 || c.r == utf8.RuneError || !utf8.ValidRune(c.r) {
			return bad("%s %q cannot be used", c.name, c.r)
		}
	}
	if o.Delimiter == o.Quote {
		return bad("the delimiter and the quote are both %q", o.Delimiter)
	}
	if o.Comment != 0 && (o.Comment == o.Delimiter || o.Comment == o.Quote) {
		return bad("the comment character %q is also the delimiter or the quote", o.Comment)
	}
	switch strings.ToLower(strings.ReplaceAll(o.Encoding, "_", "-")) {
	case "", "utf-8", "utf8":
	case "latin1", "latin-1", "iso-8859-1":
		r.cf.charset = latin1
	case "windows-1252", "cp1252":
		r.cf.charset = windows1252
	default:
		return bad("unknown encoding %q; use utf-8, latin1 or windows-1252", o.Encoding)
	}
	r.cf.delim = utf8.AppendRune(nil, o.Delimiter)
	if o.Quote != 0 {
		r.cf.quote = utf8.AppendRune(nil, o.Quote)
	}
	if o.Comment != 0 {
		r.cf.comment = utf8.AppendRune(nil, o.Comment)
	}
	r.cf.fast = len(r.cf.delim) == 1 && len(r.cf.quote) <= 1
	switch {
	case o.Header:
		// read with the first record
	case len(o.Columns) == 0:
		return bad("without a header row, the columns must be named")
	default:
		r.header = o.Columns
	}
	return nil
}

// nextCSV returns the next data record, reading the header first.
func (r *RecordReader) nextCSV() (*Record, error) {
	for {
		if err := r.readCSV(); err != nil {
			return nil, err
		}
		rec := &r.rec
		if r.header == nil {
			if err := r.setHeader(rec); err != nil {
				return nil, err
			}
			continue
		}
		r.index++
		rec.Index = r.index
		rec.Header = r.header
		if rec.Err == nil && rec.Fields != nil && len(rec.Fields) != len(r.header) {
			rec.Err = recordErr(rec.Line, "%s, %s", plural(len(rec.Fields), "field"), r.headerText())
		}
		return rec, nil
	}
}

func (r *RecordReader) setHeader(rec *Record) error {
	if rec.Err != nil {
		return twinhub.Errorf(twinhub.EINVALID, "the header row cannot be read: %v", rec.Err)
	}
	cols := r.f.CSV.Columns
	if len(cols) > 0 && len(cols) != len(rec.Fields) {
		return recordErr(rec.Line, "the header has %s but %s named (%s)",
			plural(len(rec.Fields), "column"), plural(len(cols), "column is", "columns are"), listText(cols))
	}
	if len(cols) == 0 {
		cols = make([]string, len(rec.Fields))
		for i, f := range rec.Fields {
			cols[i] = strings.Clone(f)
		}
	}
	r.header = cols
	return nil
}

// headerText describes the expected columns in a field count error.
func (r *RecordReader) headerText() string {
	if r.f.CSV.Header {
		return fmt.Sprintf("the header has %d (%s)", len(r.header), listText(r.header))
	}
	return fmt.Sprintf("%s named (%s)", plural(len(r.header), "column is", "columns are"), listText(r.header))
}

// plural writes "1 field", "2 fields"; with a second form, "1 column is",
// "2 columns are".
func plural(n int, one string, many ...string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	if len(many) > 0 {
		return fmt.Sprintf("%d %s", n, many[0])
	}
	return fmt.Sprintf("%d %ss", n, one)
}

// listText lists names, eliding the middle of long lists.
func listText(names []string) string {
	const most = 12
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:most-2], ", ") + fmt.Sprintf(", … (%d more), ", len(names)-most+1) + names[len(names)-1]
}

// readCSV reads the next record, header included, into r.rec; blank and
// comment lines are skipped. It returns io.EOF at the end of the input.
func (r *RecordReader) readCSV() error {
	for {
		if r.pos == r.end && !r.more() {
			return r.endErr()
		}
		c := r.buf[r.pos]
		if c == '\n' {
			r.pos++
			r.line++
			continue
		}
		if c == '\r' {
			// "\r\n" is a blank line, and so is a lone "\r" at the end.
			if !r.avail(2) {
				if r.rerr != nil {
					return r.rerr
				}
				r.pos++
				continue
			}
			if r.buf[r.pos+1] == '\n' {
				r.pos += 2
				r.line++
				continue
			}
		}
		if cm := r.cf.comment; cm != nil && c == cm[0] {
			if !r.avail(len(cm)) && r.rerr != nil {
				return r.rerr
			}
			if bytes.HasPrefix(r.buf[r.pos:r.end], cm) {
				if err := r.skipLine(); err != nil {
					return err
				}
				continue
			}
		}
		break
	}
	r.rec = Record{Line: r.line}
	if r.cf.fast {
		b := r.buf[r.pos:r.end]
		if nl := bytes.IndexByte(b, '\n'); nl >= 0 && nl <= r.maxRec &&
			(r.cf.quote == nil || bytes.IndexByte(b[:nl], r.cf.quote[0]) < 0) {
			line := b[:nl]
			if nl > 0 && line[nl-1] == '\r' {
				line = line[:nl-1]
			}
			r.split(line)
			r.rec.Raw = line[:len(line):len(line)]
			r.rec.Fields = r.fields
			r.pos += nl + 1
			r.line++
			return nil
		}
	}
	return r.scanCSV()
}

// split is the fast path: line holds no quote, so its fields are the text
// between delimiters.
func (r *RecordReader) split(line []byte) {
	f := r.fields[:0]
	d := r.cf.delim[0]
	for {
		i := bytes.IndexByte(line, d)
		if i < 0 {
			break
		}
		f = append(f, str(line[:i]))
		line = line[i+1:]
	}
	r.fields = append(f, str(line))
}

// skipLine drops the rest of the line at r.pos, its line ending included.
func (r *RecordReader) skipLine() error {
	for {
		if i := bytes.IndexByte(r.buf[r.pos:r.end], '\n'); i >= 0 {
			r.pos += i + 1
			r.line++
			return nil
		}
		r.pos = r.end
		if !r.more() {
			return r.rerr
		}
	}
}

// scanCSV reads a record with the full RFC 4180 state machine: quoted
// fields, doubled quotes, line breaks inside quotes, multi-byte delimiters.
func (r *RecordReader) scanCSV() error {
	s := &r.cs
	s.i, s.st, s.fstart, s.esc, s.bad, s.long, s.skipped = 0, stFieldStart, 0, false, "", false, 0
	s.spans = s.spans[:0]
	d, q := r.cf.delim, r.cf.quote
	var q0 byte
	if q != nil {
		q0 = q[0]
	}
	d0 := d[0]
	var b []byte
	recEnd, next := -1, 0 // end of the record's text and of its line ending
	// at reports whether seq is at b[i]; more is true when that cannot be
	// told before reading more input.
	at := func(seq []byte) (ok, more bool) {
		if len(seq) == 1 {
			return true, false // the caller compared the first byte
		}
		if len(b)-s.i < len(seq) && !r.eof {
			return false, true
		}
		return bytes.HasPrefix(b[s.i:], seq), false
	}
	for recEnd < 0 {
		b = r.buf[r.pos:r.end]
	scan:
		for s.i < len(b) {
			c := b[s.i]
			switch s.st {
			case stFieldStart:
				if q != nil && c == q0 {
					ok, more := at(q)
					if more {
						break scan
					}
					if ok {
						s.i += len(q)
						s.fstart, s.st, s.esc = s.i, stQuoted, false
						continue
					}
				}
				s.fstart, s.st = s.i, stUnquoted
			case stUnquoted:
				// Most bytes are neither: skip them in a tight loop.
				i := s.i
				for i < len(b) && b[i] != d0 && b[i] != '\n' {
					i++
				}
				s.i = i
				if i == len(b) {
					break scan
				}
				if b[i] == '\n' {
					e := i
					if e > max(s.fstart, 0) && b[e-1] == '\r' {
						e--
					}
					s.field(s.fstart, e, false)
					recEnd, next = e, i+1
					break scan
				}
				ok, more := at(d)
				if more {
					break scan
				}
				if ok {
					s.field(s.fstart, i, false)
					s.i += len(d)
					s.st = stFieldStart
				} else {
					s.i++
				}
			case stQuoted:
				j := bytes.IndexByte(b[s.i:], q0)
				if j < 0 {
					s.i = len(b)
					break scan
				}
				s.i += j
				ok, more := at(q)
				if more {
					break scan
				}
				if ok {
					s.qend = s.i
					s.i += len(q)
					s.st = stQuoteSeen
				} else {
					s.i++
				}
			case stQuoteSeen:
				// Not a switch: a multi-byte quote and delimiter may share
				// their first byte.
				if c == q0 {
					ok, more := at(q)
					if more {
						break scan
					}
					if ok {
						s.esc = true
						s.i += len(q)
						s.st = stQuoted
						continue
					}
				}
				if c == d0 {
					ok, more := at(d)
					if more {
						break scan
					}
					if ok {
						s.field(s.fstart, s.qend, s.esc)
						s.i += len(d)
						s.st = stFieldStart
						continue
					}
				}
				if c == '\n' {
					s.field(s.fstart, s.qend, s.esc)
					recEnd, next = s.i, s.i+1
					break scan
				}
				if c == '\r' {
					if s.i+1 == len(b) && !r.eof {
						break scan
					}
					if s.i+1 == len(b) || b[s.i+1] == '\n' {
						s.field(s.fstart, s.qend, s.esc)
						recEnd, next = s.i, min(s.i+2, len(b))
						break scan
					}
				}
				// Text after the closing quote: keep it in the field, as
				// if the field were not quoted, and reject the record.
				if s.bad == "" {
					s.bad = fmt.Sprintf("field %d: %s after the closing quote (a quote inside a quoted field must be doubled)",
						len(s.spans)+1, quoteChar(b[s.i:]))
				}
				s.st, s.esc = stUnquoted, false
			}
		}
		if recEnd >= 0 {
			break
		}
		if !s.long && s.skipped+s.i > r.maxRec {
			s.long = true
			s.prefix = s.prefix[:0]
		}
		if s.long {
			// Drop what was scanned; the state machine goes on.
			s.prefix = keepPrefix(s.prefix, b[:s.i])
			r.line += bytes.Count(b[:s.i], []byte{'\n'})
			s.skipped += s.i
			r.pos += s.i
			s.fstart -= s.i
			s.qend -= s.i
			s.i = 0
			s.spans = s.spans[:0]
		}
		if !r.more() {
			if r.rerr != nil {
				return r.rerr
			}
			b = r.buf[r.pos:r.end]
			s.atEOF(b)
			recEnd, next = len(b), len(b)
			if recEnd > 0 && b[recEnd-1] == '\r' && s.st != stQuoted {
				recEnd--
			}
		}
	}
	rec := &r.rec
	if !s.long && recEnd > r.maxRec {
		s.long = true
		s.prefix = s.prefix[:0]
	}
	if s.long {
		s.prefix = keepPrefix(s.prefix, b[:recEnd])
	}
	r.line += bytes.Count(b[:next], []byte{'\n'})
	r.pos += next
	if s.long {
		rec.Raw = s.prefix
		lines := r.line - rec.Line
		hint := ""
		if lines > 1 {
			hint = fmt.Sprintf(" (it spans %d lines: is a closing quote missing?)", lines)
		}
		rec.Err = recordErr(rec.Line, "the record is longer than %s, the limit%s", sizeText(r.maxRec), hint)
		rec.Truncated = true
		return nil
	}
	rec.Raw = b[:recEnd:recEnd]
	f := r.fields[:0]
	r.fbuf = r.fbuf[:0]
	for _, sp := range s.spans {
		v := b[sp.start:sp.end]
		if sp.esc {
			n := len(r.fbuf)
			r.fbuf = unescape(r.fbuf, v, q)
			v = r.fbuf[n:]
		}
		f = append(f, str(v))
	}
	r.fields = f
	rec.Fields = f
	if s.bad != "" {
		rec.Err = recordErr(rec.Line, "%s", s.bad)
	}
	return nil
}

// atEOF ends the record at the end of the input.
func (s *csvScan) atEOF(b []byte) {
	switch s.st {
	case stFieldStart:
		s.field(len(b), len(b), false)
	case stUnquoted:
		e := len(b)
		if e > max(s.fstart, 0) && b[e-1] == '\r' {
			e--
		}
		s.field(s.fstart, e, false)
	case stQuoted:
		if s.bad == "" {
			s.bad = fmt.Sprintf("field %d: the quote that opens it is never closed", len(s.spans)+1)
		}
		s.field(s.fstart, len(b), s.esc)
	case stQuoteSeen:
		s.field(s.fstart, s.qend, s.esc)
	}
}

func (s *csvScan) field(start, end int, esc bool) {
	if !s.long {
		s.spans = append(s.spans, span{start, end, esc})
	}
}

// unescape appends v to dst with each doubled quote made single.
func unescape(dst, v, q []byte) []byte {
	for {
		i := bytes.Index(v, q)
		if i < 0 {
			return append(dst, v...)
		}
		dst = append(dst, v[:i+len(q)]...)
		v = v[i+len(q):]
		if bytes.HasPrefix(v, q) {
			v = v[len(q):]
		}
	}
}
