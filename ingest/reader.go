package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/twinhub/twinhub"
)

// DefaultMaxRecordSize bounds the bytes of one record (a CSV record, an
// NDJSON line, one JSON value) when Format.MaxRecordSize is 0. A longer
// record is returned with Err set and reading goes on after it, so that one
// runaway line cannot exhaust memory.
const DefaultMaxRecordSize = 1 << 20

// initialBuffer is the reader's first buffer size; it grows for records that
// do not fit, up to about twice the record size limit.
const initialBuffer = 64 << 10

// longPrefix is how much of an over-long record Raw keeps: enough for people
// to see what it was.
const longPrefix = 1 << 10

// RecordReader reads the records of one input: CSV, NDJSON or JSON, plain or
// gzip-compressed. It streams: memory stays bounded by the longest record,
// whatever the size of the input. Not safe for concurrent use.
type RecordReader struct {
	f      Format
	src    io.Reader     // decompressed and decoded to UTF-8
	gz     *sourceReader // the compressed source, when src is gzip
	buf    []byte
	pos    int  // first unread byte
	end    int  // end of the bytes read
	eof    bool // src is exhausted
	rerr   error
	done   error // once set, Next returns it
	line   int   // line of buf[pos], 1-based
	index  int   // records returned
	maxRec int
	begun  bool // the byte order mark check is done
	rec    Record

	// CSV
	cf     csvConf
	header []string // nil until read when the input has a header row
	cs     csvScan
	fields []string
	fbuf   []byte // unescaped quoted fields of the current record

	// JSON
	mode jsonMode
	js   jsonScan
}

// NewRecordReader returns a reader of r's records in format f. It reads the
// first two bytes of r to detect gzip (1f 8b), which it then decompresses
// transparently. Format errors (a bad CSV option) are *twinhub.Error.
func NewRecordReader(r io.Reader, f Format) (*RecordReader, error) {
	rr := &RecordReader{f: f, line: 1, maxRec: f.MaxRecordSize}
	if rr.maxRec <= 0 {
		rr.maxRec = DefaultMaxRecordSize
	}
	switch f.Kind {
	case FormatCSV:
		if err := rr.initCSV(); err != nil {
			return nil, err
		}
	case FormatNDJSON:
		rr.mode = jsonLines
	case FormatJSON, FormatDebezium:
		rr.mode = jsonSniff
	case 0:
		return nil, twinhub.Errorf(twinhub.EINVALID, "no input format given")
	default:
		return nil, twinhub.Errorf(twinhub.EINVALID, "unknown input format %d", f.Kind)
	}
	var head [2]byte
	n, err := io.ReadFull(r, head[:])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("read input: %w", err)
	}
	var in io.Reader = r
	if n > 0 {
		in = io.MultiReader(bytes.NewReader(bytes.Clone(head[:n])), r)
	}
	if n == 2 && head[0] == 0x1f && head[1] == 0x8b {
		rr.gz = &sourceReader{r: in}
		zr, err := gzip.NewReader(rr.gz)
		if err != nil {
			if rr.gz.err != nil {
				return nil, fmt.Errorf("read input: %w", rr.gz.err)
			}
			return nil, twinhub.Errorf(twinhub.EINVALID, "the input starts like gzip but is not: %v", err)
		}
		in = zr
	}
	if rr.cf.charset != nil {
		in = &charsetReader{r: in, table: rr.cf.charset}
	}
	rr.src = in
	rr.buf = make([]byte, initialBuffer)
	return rr, nil
}

// Next returns the next record, or io.EOF after the last one. The Record
// and everything it refers to (Raw, the strings in Fields) live in the
// reader's buffers and are valid only until the next call to Next: the
// strings of Fields are not copies, and their bytes are overwritten later.
// Copy what you keep (strings.Clone, bytes.Clone). Header is the exception:
// it stays valid and must not be modified.
//
// A record that cannot be read (bad quoting, a wrong number of fields,
// malformed JSON, longer than the size limit) is returned with Err set, a
// *twinhub.Error that names its line, and reading goes on with the next
// record. An error that ends the input (a read error, corrupt gzip data, a
// JSON array whose syntax is broken, an unreadable CSV header) is returned
// as the error, and so are all later calls; errors about the input's
// content are *twinhub.Error with code EINVALID.
func (r *RecordReader) Next() (*Record, error) {
	if r.done != nil {
		return nil, r.done
	}
	if !r.begun {
		if err := r.begin(); err != nil {
			r.done = err
			return nil, err
		}
	}
	var rec *Record
	var err error
	if r.f.Kind == FormatCSV {
		rec, err = r.nextCSV()
	} else {
		rec, err = r.nextJSON()
	}
	if err != nil {
		r.done = err
		return nil, err
	}
	return rec, nil
}

// begin skips a UTF-8 byte order mark and refuses UTF-16, which would
// otherwise read as garbage with a NUL in every other byte.
func (r *RecordReader) begin() error {
	r.begun = true
	r.avail(3)
	if r.rerr != nil {
		return r.rerr
	}
	if r.f.Kind == FormatCSV && r.cf.charset != nil {
		return nil
	}
	b := r.buf[r.pos:r.end]
	switch {
	case bytes.HasPrefix(b, []byte("\xef\xbb\xbf")):
		r.pos += 3
	case bytes.HasPrefix(b, []byte("\xff\xfe")), bytes.HasPrefix(b, []byte("\xfe\xff")):
		return twinhub.Errorf(twinhub.EINVALID, "the input is UTF-16 (it starts with a UTF-16 byte order mark); convert it to UTF-8")
	}
	return nil
}

// more reads more of the input after r.end, first moving the unread bytes
// to the front of the buffer, and growing it when it is full. It returns
// false when nothing more could be read: at the end of the input (r.eof),
// or after an error (r.rerr). Offsets relative to r.pos stay valid; slices
// of the buffer do not.
func (r *RecordReader) more() bool {
	if r.eof || r.rerr != nil {
		return false
	}
	if r.pos > 0 {
		r.end = copy(r.buf, r.buf[r.pos:r.end])
		r.pos = 0
	}
	if r.end == len(r.buf) {
		nb := make([]byte, 2*len(r.buf))
		copy(nb, r.buf[:r.end])
		r.buf = nb
	}
	for range 100 {
		n, err := r.src.Read(r.buf[r.end:])
		r.end += n
		if err == io.EOF {
			r.eof = true
			return n > 0
		}
		if err != nil {
			r.rerr = r.readError(err)
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	r.rerr = fmt.Errorf("read input: %w", io.ErrNoProgress)
	return false
}

// readError tells corrupt gzip data, which is the input's fault, from a
// failure to read the input.
func (r *RecordReader) readError(err error) error {
	if r.gz != nil && r.gz.err == nil {
		what := "corrupt"
		if errors.Is(err, io.ErrUnexpectedEOF) {
			what = "truncated"
		}
		return twinhub.Errorf(twinhub.EINVALID, "line %d: the gzip data is %s: %v", r.line, what, err)
	}
	return fmt.Errorf("read input: %w", err)
}

// avail reads until at least n bytes are unread, and reports whether there
// are (false at the end of the input or after a read error).
func (r *RecordReader) avail(n int) bool {
	for r.end-r.pos < n {
		if !r.more() {
			return false
		}
	}
	return true
}

// endErr is what the end of the input means: io.EOF, or the read error
// that ended it.
func (r *RecordReader) endErr() error {
	if r.rerr != nil {
		return r.rerr
	}
	return io.EOF
}

// recordErr is the *twinhub.Error of the record starting on line.
func recordErr(line int, format string, args ...any) *twinhub.Error {
	return twinhub.Errorf(twinhub.EINVALID, "line %d: %s", line, fmt.Sprintf(format, args...))
}

// keepPrefix appends to p what of b fits in longPrefix bytes.
func keepPrefix(p, b []byte) []byte {
	return append(p, b[:min(len(b), max(0, longPrefix-len(p)))]...)
}

// str returns b's bytes as a string without copying them: the string is
// valid only while b's bytes are not overwritten.
func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// sizeText writes a byte count the way people read it.
func sizeText(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// quoteChar shows the input character that b starts with in an error
// message.
func quoteChar(b []byte) string {
	c, n := utf8.DecodeRune(b)
	if c == utf8.RuneError && n <= 1 && len(b) > 0 {
		return fmt.Sprintf("byte 0x%02x", b[0])
	}
	return strconv.QuoteRune(c)
}

// sourceReader remembers the error of the reader under a gzip stream, so
// that a read failure is not blamed on the data.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}
