package ingest

// FormatKind is the shape of a source's input.
type FormatKind uint8

// Input formats. See docs/mappings.md.
const (
	FormatCSV      FormatKind = iota + 1 // RFC 4180 with options
	FormatNDJSON                         // one JSON object per line
	FormatJSON                           // an array of objects, one object, or NDJSON (sniffed)
	FormatDebezium                       // Debezium change events as JSON (one per line or an array)
)

var formatNames = [...]string{FormatCSV: "csv", FormatNDJSON: "ndjson", FormatJSON: "json", FormatDebezium: "debezium"}

func (k FormatKind) String() string {
	if int(k) < len(formatNames) && formatNames[k] != "" {
		return formatNames[k]
	}
	return "unknown"
}

// ParseFormatKind returns the FormatKind named s.
func ParseFormatKind(s string) (FormatKind, bool) {
	for i, n := range formatNames {
		if n != "" && n == s {
			return FormatKind(i), true
		}
	}
	return 0, false
}

// Format says how to read a source's input.
type Format struct {
	Kind FormatKind
	CSV  CSVOptions // for FormatCSV
	// MaxRecordSize bounds one record in bytes (a CSV record, an NDJSON
	// line, a JSON value); a longer one is read as a record with Err and
	// only its first KiB in Raw. 0 means DefaultMaxRecordSize.
	MaxRecordSize int
}

// CSVOptions configure the CSV reader. The zero value is not ready; use
// DefaultCSV and change what differs.
type CSVOptions struct {
	Delimiter rune     // field separator; 0 means ','
	Quote     rune     // quote character, usually '"'; 0 turns quoting off
	Header    bool     // the first row names the columns
	Columns   []string // column names; with Header, they replace the header's
	Encoding  string   // "utf-8" (default; a BOM is skipped), "latin1" or "windows-1252"
	Comment   rune     // lines starting with it are skipped; 0 for none
}

// DefaultCSV returns the default CSV options: comma, double quote, a header row, UTF-8.
func DefaultCSV() CSVOptions {
	return CSVOptions{Delimiter: ',', Quote: '"', Header: true, Encoding: "utf-8"}
}

// Record is one record read from a source's input by a RecordReader. The
// reader reuses it: a Record and the bytes and strings it refers to are
// valid until the reader's next call to Next, except Header.
type Record struct {
	// Raw is the record's bytes as read (after gzip and, for CSV in
	// latin1 or windows-1252, decoding to UTF-8), without the line ending
	// that ends it: a CSV record (its lines, if quoted fields span several),
	// an NDJSON line, or one JSON value. Dead letters keep it.
	Raw []byte
	// Fields are a CSV record's cells, in column order, quotes removed;
	// nil for JSON. The strings share the reader's buffers: copy one to
	// keep it past the next call to Next.
	Fields []string
	// Header names a CSV record's columns; nil for JSON. It is the same
	// slice for every record of an input; do not modify it.
	Header []string
	Line   int // line where the record starts, 1-based (a CSV header is line 1)
	Index  int // ordinal of the record in its input, 1-based, not counting a header
	// Err is set when the record could not be read (bad quoting, a wrong
	// number of fields, malformed JSON, too long); the reader goes on with
	// the next record. It is a *twinhub.Error meant for people, and starts
	// with the line: "line 17: 5 fields, the header has 4 (…)".
	Err error
	// Truncated says that Raw holds only the first bytes of a record longer
	// than the size limit: it can be shown, never mapped again.
	Truncated bool
}
