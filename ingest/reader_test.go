package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/twinhub/twinhub"
	"golang.org/x/text/encoding/charmap"
)

// got is what a test keeps of a record: copies, since the reader reuses
// its buffers.
type got struct {
	Line, Index int
	Raw         string
	Fields      []string
	Err         string
}

// readAll reads every record of in and the error that ended it (nil for
// io.EOF).
func readAll(tb testing.TB, in io.Reader, f Format) ([]got, error) {
	tb.Helper()
	r, err := NewRecordReader(in, f)
	if err != nil {
		return nil, err
	}
	var out []got
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			if _, again := r.Next(); again != err {
				tb.Errorf("Next after the error %q returned %v", err, again)
			}
			return out, err
		}
		g := got{Line: rec.Line, Index: rec.Index, Raw: string(rec.Raw)}
		for _, f := range rec.Fields {
			g.Fields = append(g.Fields, strings.Clone(f))
		}
		if rec.Err != nil {
			var te *twinhub.Error
			if !errors.As(rec.Err, &te) || te.Code != twinhub.EINVALID {
				tb.Errorf("record %d: Err %v is not an EINVALID *twinhub.Error", rec.Index, rec.Err)
			}
			g.Err = rec.Err.Error()
		}
		out = append(out, g)
	}
}

// readers returns ways to feed in to a reader: at once, a byte at a time
// (every record is split across reads), and in halves.
func readers(in []byte) map[string]func() io.Reader {
	return map[string]func() io.Reader{
		"whole":   func() io.Reader { return bytes.NewReader(in) },
		"bytes":   func() io.Reader { return iotest.OneByteReader(bytes.NewReader(in)) },
		"halves":  func() io.Reader { return iotest.HalfReader(bytes.NewReader(in)) },
		"dataEOF": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(in)) },
	}
}

func gzipped(tb testing.TB, s string) string {
	tb.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return b.String()
}

func csvFormat(change func(*CSVOptions)) Format {
	o := DefaultCSV()
	if change != nil {
		change(&o)
	}
	return Format{Kind: FormatCSV, CSV: o}
}

func TestCSVReader(t *testing.T) {
	cols := []string{"a", "b", "c"}
	tests := []struct {
		name string
		in   string
		opts func(*CSVOptions)
		max  int
		want []got
		err  string // the error that ends the input
	}{
		{
			name: "simple",
			in:   "a,b,c\n1,2,3\nx,,z\n",
			want: []got{
				{Line: 2, Index: 1, Raw: "1,2,3", Fields: []string{"1", "2", "3"}},
				{Line: 3, Index: 2, Raw: "x,,z", Fields: []string{"x", "", "z"}},
			},
		},
		{
			name: "no final newline, empty last field",
			in:   "a,b,c\n1,2,",
			want: []got{{Line: 2, Index: 1, Raw: "1,2,", Fields: []string{"1", "2", ""}}},
		},
		{
			name: "quotes",
			in:   "a,b,c\n\"x, y\",\"say \"\"hi\"\"\",\"\"\n\"1\",2,\"3\"\n",
			want: []got{
				{Line: 2, Index: 1, Raw: `"x, y","say ""hi""",""`, Fields: []string{"x, y", `say "hi"`, ""}},
				{Line: 3, Index: 2, Raw: `"1",2,"3"`, Fields: []string{"1", "2", "3"}},
			},
		},
		{
			name: "CRLF",
			in:   "a,b,c\r\n1,2,3\r\n\"q\",\"r\",\"s\"\r\n4,5,6",
			want: []got{
				{Line: 2, Index: 1, Raw: "1,2,3", Fields: []string{"1", "2", "3"}},
				{Line: 3, Index: 2, Raw: `"q","r","s"`, Fields: []string{"q", "r", "s"}},
				{Line: 4, Index: 3, Raw: "4,5,6", Fields: []string{"4", "5", "6"}},
			},
		},
		{
			name: "multi-line fields",
			in:   "a,b,c\n1,\"two\nlines\",3\n4,\"three\r\nCRLF\r\nlines\",6\r\n7,8,9\n",
			want: []got{
				{Line: 2, Index: 1, Raw: "1,\"two\nlines\",3", Fields: []string{"1", "two\nlines", "3"}},
				{Line: 4, Index: 2, Raw: "4,\"three\r\nCRLF\r\nlines\",6", Fields: []string{"4", "three\r\nCRLF\r\nlines", "6"}},
				{Line: 7, Index: 3, Raw: "7,8,9", Fields: []string{"7", "8", "9"}},
			},
		},
		{
			name: "a quoted header spanning lines",
			in:   "\"a\nx\",b,c\n1,2,3\n",
			want: []got{{Line: 3, Index: 1, Raw: "1,2,3", Fields: []string{"1", "2", "3"}}},
		},
		{
			name: "BOM",
			in:   "\xef\xbb\xbfa,b,c\n1,2,3\n",
			want: []got{{Line: 2, Index: 1, Raw: "1,2,3", Fields: []string{"1", "2", "3"}}},
		},
		{
			name: "UTF-16 is refused",
			in:   "\xff\xfea\x00,\x00",
			err:  "the input is UTF-16 (it starts with a UTF-16 byte order mark); convert it to UTF-8",
		},
		{
			name: "invalid UTF-8 passes",
			in:   "a,b,c\n\xff,caf\xe9,3\n",
			want: []got{{Line: 2, Index: 1, Raw: "\xff,caf\xe9,3", Fields: []string{"\xff", "caf\xe9", "3"}}},
		},
		{
			name: "latin1",
			in:   "a;b;c\ncaf\xe9;\"na\xefve\";\xa3\n",
			opts: func(o *CSVOptions) { o.Encoding, o.Delimiter = "latin1", ';' },
			want: []got{{Line: 2, Index: 1, Raw: "café;\"naïve\";£", Fields: []string{"café", "naïve", "£"}}},
		},
		{
			name: "windows-1252",
			in:   "a,b,c\n\x80 5,\x93quoted\x94,\xe9\x81\n",
			opts: func(o *CSVOptions) { o.Encoding = "windows-1252" },
			want: []got{{Line: 2, Index: 1, Raw: "€ 5,“quoted”,é\u0081", Fields: []string{"€ 5", "“quoted”", "é\u0081"}}},
		},
		{
			name: "latin1 with a delimiter outside ASCII",
			in:   "a\xa7b\xa7c\n1\xa7\"x\xa7y\"\xa73\n",
			opts: func(o *CSVOptions) { o.Encoding, o.Delimiter = "latin1", '§' },
			want: []got{{Line: 2, Index: 1, Raw: "1§\"x§y\"§3", Fields: []string{"1", "x§y", "3"}}},
		},
		{
			name: "multi-byte quote",
			in:   "a,b,c\n«x,y«,«say ««hi«««,3\n«1«x,2,3\n",
			opts: func(o *CSVOptions) { o.Quote = '«' },
			want: []got{
				{Line: 2, Index: 1, Raw: "«x,y«,«say ««hi«««,3", Fields: []string{"x,y", "say «hi«", "3"}},
				{Line: 3, Index: 2, Raw: "«1«x,2,3", Fields: []string{"1«x", "2", "3"}, Err: "line 3: field 1: 'x' after the closing quote (a quote inside a quoted field must be doubled)"},
			},
		},
		{
			name: "tab and no quoting",
			in:   "a\tb\tc\n\"1\t2\"\t3\n",
			opts: func(o *CSVOptions) { o.Delimiter, o.Quote = '\t', 0 },
			want: []got{{Line: 2, Index: 1, Raw: "\"1\t2\"\t3", Fields: []string{`"1`, `2"`, "3"}}},
		},
		{
			name: "wrong field counts",
			in:   "customer_id,date,quantity,amount\n1,2,3,4\n1,2,3,4,5\n1\n",
			want: []got{
				{Line: 2, Index: 1, Raw: "1,2,3,4", Fields: []string{"1", "2", "3", "4"}},
				{Line: 3, Index: 2, Raw: "1,2,3,4,5", Fields: []string{"1", "2", "3", "4", "5"}, Err: "line 3: 5 fields, the header has 4 (customer_id, date, quantity, amount)"},
				{Line: 4, Index: 3, Raw: "1", Fields: []string{"1"}, Err: "line 4: 1 field, the header has 4 (customer_id, date, quantity, amount)"},
			},
		},
		{
			name: "blank lines",
			in:   "\n\r\na,b,c\n\n1,2,3\r\n\r\n\n4,5,6\n\n",
			want: []got{
				{Line: 5, Index: 1, Raw: "1,2,3", Fields: []string{"1", "2", "3"}},
				{Line: 8, Index: 2, Raw: "4,5,6", Fields: []string{"4", "5", "6"}},
			},
		},
		{
			name: "comments",
			in:   "# export of 2024-01-01\na,b,c\n#1,2,3\n4,\"#5\n#x\",6\n #7,8,9\n",
			opts: func(o *CSVOptions) { o.Comment = '#' },
			want: []got{
				{Line: 4, Index: 1, Raw: "4,\"#5\n#x\",6", Fields: []string{"4", "#5\n#x", "6"}},
				{Line: 6, Index: 2, Raw: " #7,8,9", Fields: []string{" #7", "8", "9"}},
			},
		},
		{
			name: "gzip",
			in:   gzipped(t, "a,b,c\n1,2,3\n4,5,6\n"),
			want: []got{
				{Line: 2, Index: 1, Raw: "1,2,3", Fields: []string{"1", "2", "3"}},
				{Line: 3, Index: 2, Raw: "4,5,6", Fields: []string{"4", "5", "6"}},
			},
		},
		{
			name: "gzip truncated",
			in:   gzipped(t, "a,b,c\n1,2,3\n4,5,6\n")[:30],
			err:  "the gzip data is truncated",
		},
		{
			name: "unterminated quote",
			in:   "a,b,c\n1,2,3\n4,\"5,6\n7,8,9\n",
			want: []got{
				{Line: 2, Index: 1, Raw: "1,2,3", Fields: []string{"1", "2", "3"}},
				{Line: 3, Index: 2, Raw: "4,\"5,6\n7,8,9\n", Fields: []string{"4", "5,6\n7,8,9\n"}, Err: "line 3: field 2: the quote that opens it is never closed"},
			},
		},
		{
			name: "text after the closing quote",
			in:   "a,b,c\n1,\"2\"x,3\n4,5,6\n",
			want: []got{
				{Line: 2, Index: 1, Raw: "1,\"2\"x,3", Fields: []string{"1", "2\"x", "3"}, Err: "line 2: field 2: 'x' after the closing quote (a quote inside a quoted field must be doubled)"},
				{Line: 3, Index: 2, Raw: "4,5,6", Fields: []string{"4", "5", "6"}},
			},
		},
		{
			name: "bare quotes kept",
			in:   "a,b,c\n1,2\" tall,3\"\n",
			want: []got{{Line: 2, Index: 1, Raw: "1,2\" tall,3\"", Fields: []string{"1", "2\" tall", "3\""}}},
		},
		{
			name: "columns without header",
			in:   "1,2,3\n4,5\n",
			opts: func(o *CSVOptions) { o.Header, o.Columns = false, cols },
			want: []got{
				{Line: 1, Index: 1, Raw: "1,2,3", Fields: []string{"1", "2", "3"}},
				{Line: 2, Index: 2, Raw: "4,5", Fields: []string{"4", "5"}, Err: "line 2: 2 fields, 3 columns are named (a, b, c)"},
			},
		},
		{
			name: "columns replace the header",
			in:   "x,y,z\n1,2,3\n",
			opts: func(o *CSVOptions) { o.Columns = cols },
			want: []got{{Line: 2, Index: 1, Raw: "1,2,3", Fields: []string{"1", "2", "3"}}},
		},
		{
			name: "columns do not match the header",
			in:   "x,y\n1,2\n",
			opts: func(o *CSVOptions) { o.Columns = cols },
			err:  "line 1: the header has 2 columns but 3 columns are named (a, b, c)",
		},
		{
			name: "broken header",
			in:   "a,\"b\n",
			err:  "the header row cannot be read: line 1: field 2: the quote that opens it is never closed",
		},
		{
			name: "header only",
			in:   "a,b,c\n",
		},
		{
			name: "empty",
			in:   "",
		},
		{
			name: "lone CR at the end",
			in:   "a,b,c\n1,2,3\r",
			want: []got{{Line: 2, Index: 1, Raw: "1,2,3", Fields: []string{"1", "2", "3"}}},
		},
		{
			name: "longer than the limit",
			in:   "a,b,c\n1,2,3\n" + strings.Repeat("x", 150) + ",2,3\n\"" + strings.Repeat("y\n", 100) + "\",2,3\n4,5,6\n",
			max:  100,
			want: []got{
				{Line: 2, Index: 1, Raw: "1,2,3", Fields: []string{"1", "2", "3"}},
				{Line: 3, Index: 2, Raw: strings.Repeat("x", 150) + ",2,3", Err: "line 3: the record is longer than 100 bytes, the limit"},
				{Line: 4, Index: 3, Raw: "\"" + strings.Repeat("y\n", 100) + "\",2,3", Err: "line 4: the record is longer than 100 bytes, the limit (it spans 101 lines: is a closing quote missing?)"},
				{Line: 105, Index: 4, Raw: "4,5,6", Fields: []string{"4", "5", "6"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := csvFormat(tt.opts)
			f.MaxRecordSize = tt.max
			for how, in := range readers([]byte(tt.in)) {
				recs, err := readAll(t, in(), f)
				if diff := cmp.Diff(tt.want, recs); diff != "" {
					t.Errorf("read %s: records differ (-want +got):\n%s", how, diff)
				}
				switch {
				case err == nil && tt.err != "":
					t.Errorf("read %s: no error, want %q", how, tt.err)
				case err != nil && (tt.err == "" || !strings.Contains(err.Error(), tt.err)):
					t.Errorf("read %s: error %q, want %q", how, err, tt.err)
				case err != nil && twinhub.ErrorCode(err) != twinhub.EINVALID:
					t.Errorf("read %s: error %q has code %s, want %s", how, err, twinhub.ErrorCode(err), twinhub.EINVALID)
				}
			}
		})
	}
}

func TestCSVOptionErrors(t *testing.T) {
	tests := []struct {
		name string
		opts func(*CSVOptions)
		err  string
	}{
		{"no header, no columns", func(o *CSVOptions) { o.Header = false }, "csv: without a header row, the columns must be named"},
		{"delimiter is the quote", func(o *CSVOptions) { o.Delimiter = '"' }, `csv: the delimiter and the quote are both '"'`},
		{"newline delimiter", func(o *CSVOptions) { o.Delimiter = '\n' }, `csv: delimiter '\n' cannot be used`},
		{"comment is the delimiter", func(o *CSVOptions) { o.Comment = ',' }, `csv: the comment character ',' is also the delimiter or the quote`},
		{"unknown encoding", func(o *CSVOptions) { o.Encoding = "utf-16" }, `csv: unknown encoding "utf-16"; use utf-8, latin1 or windows-1252`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRecordReader(strings.NewReader("a\n"), csvFormat(tt.opts))
			if err == nil || err.Error() != tt.err || twinhub.ErrorCode(err) != twinhub.EINVALID {
				t.Errorf("NewRecordReader error = %v, want EINVALID %q", err, tt.err)
			}
		})
	}
	if _, err := NewRecordReader(strings.NewReader(""), Format{}); err == nil {
		t.Error("NewRecordReader accepted a Format without a Kind")
	}
}

func TestJSONReader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		kind FormatKind
		max  int
		want []got
		err  string
	}{
		{
			name: "NDJSON",
			kind: FormatNDJSON,
			in:   "{\"a\":1}\r\n\n  \n{\"a\":2}\n{\"a\":\n[1,2]\n\"s\"\n{\"a\":3}\n{\"a\":1,\"b\":2,}",
			want: []got{
				{Line: 1, Index: 1, Raw: `{"a":1}`},
				{Line: 4, Index: 2, Raw: `{"a":2}`},
				{Line: 5, Index: 3, Raw: `{"a":`, Err: "line 5: malformed JSON: unexpected end of JSON input"},
				{Line: 6, Index: 4, Raw: `[1,2]`, Err: "line 6: expected a JSON object, found an array"},
				{Line: 7, Index: 5, Raw: `"s"`, Err: "line 7: expected a JSON object, found a string"},
				{Line: 8, Index: 6, Raw: `{"a":3}`},
				{Line: 9, Index: 7, Raw: `{"a":1,"b":2,}`, Err: "line 9: malformed JSON: invalid character '}' looking for beginning of object key string (column 14)"},
			},
		},
		{
			name: "NDJSON line longer than the limit",
			kind: FormatNDJSON,
			max:  100,
			in:   "{\"a\":1}\n{\"pad\":\"" + strings.Repeat("p", 200) + "\"}\n{\"a\":3}\n",
			want: []got{
				{Line: 1, Index: 1, Raw: `{"a":1}`},
				{Line: 2, Index: 2, Raw: "{\"pad\":\"" + strings.Repeat("p", 200) + "\"}", Err: "line 2: the line is longer than 100 bytes, the limit"},
				{Line: 3, Index: 3, Raw: `{"a":3}`},
			},
		},
		{
			name: "NDJSON gzip",
			kind: FormatNDJSON,
			in:   gzipped(t, "{\"a\":1}\n{\"a\":2}\n"),
			want: []got{{Line: 1, Index: 1, Raw: `{"a":1}`}, {Line: 2, Index: 2, Raw: `{"a":2}`}},
		},
		{
			name: "JSON sniffs NDJSON",
			kind: FormatJSON,
			in:   "\xef\xbb\xbf\n{\"a\":1}\n{\"a\":2}\n",
			want: []got{{Line: 2, Index: 1, Raw: `{"a":1}`}, {Line: 3, Index: 2, Raw: `{"a":2}`}},
		},
		{
			name: "array over several lines",
			kind: FormatJSON,
			in:   "[\n  {\"a\": 1},\n  {\n    \"a\": \"x,]}\\\"{\"\n  },\n\n  {\"a\": [3, {\"b\": 4}]}, {\"a\":5}\n]\n",
			want: []got{
				{Line: 2, Index: 1, Raw: `{"a": 1}`},
				{Line: 3, Index: 2, Raw: "{\n    \"a\": \"x,]}\\\"{\"\n  }"},
				{Line: 7, Index: 3, Raw: `{"a": [3, {"b": 4}]}`},
				{Line: 7, Index: 4, Raw: `{"a":5}`},
			},
		},
		{
			name: "array with bad elements",
			kind: FormatJSON,
			in:   "[{\"a\":1},\n 7,\n {\"a\" 2},\n null, {\"a\":3},]",
			want: []got{
				{Line: 1, Index: 1, Raw: `{"a":1}`},
				{Line: 2, Index: 2, Raw: `7`, Err: "line 2: expected a JSON object, found a number"},
				{Line: 3, Index: 3, Raw: `{"a" 2}`, Err: `line 3: malformed JSON: invalid character '2' after object key (column 6)`},
				{Line: 4, Index: 4, Raw: `null`, Err: "line 4: expected a JSON object, found null"},
				{Line: 4, Index: 5, Raw: `{"a":3}`},
			},
		},
		{
			// Kafka keeps a tombstone after each delete; dumps print it as
			// null. It is a record, which the mapping skips.
			name: "Debezium tombstones",
			kind: FormatDebezium,
			in:   "null\n{\"op\":\"d\"}\r\n null \n\n[null]\n\"null\"\n",
			want: []got{
				{Line: 1, Index: 1, Raw: `null`},
				{Line: 2, Index: 2, Raw: `{"op":"d"}`},
				{Line: 3, Index: 3, Raw: ` null `},
				{Line: 5, Index: 4, Raw: `[null]`, Err: "line 5: expected a JSON object, found an array"},
				{Line: 6, Index: 5, Raw: `"null"`, Err: "line 6: expected a JSON object, found a string"},
			},
		},
		{
			name: "Debezium array with tombstones",
			kind: FormatDebezium,
			in:   "[{\"op\":\"c\"},\n null, {\"op\":\"d\"}]",
			want: []got{
				{Line: 1, Index: 1, Raw: `{"op":"c"}`},
				{Line: 2, Index: 2, Raw: `null`},
				{Line: 2, Index: 3, Raw: `{"op":"d"}`},
			},
		},
		{
			name: "JSON does not start with null",
			kind: FormatJSON,
			in:   "null\n{\"a\":1}\n",
			err:  "line 1: expected a JSON array or object, found 'n'",
		},
		{
			name: "array element longer than the limit",
			kind: FormatJSON,
			max:  50,
			in:   "[{\"a\":1},{\"pad\":\n\"" + strings.Repeat("p", 100) + "\"},\n{\"a\":3}]",
			want: []got{
				{Line: 1, Index: 1, Raw: `{"a":1}`},
				{Line: 1, Index: 2, Raw: "{\"pad\":\n\"" + strings.Repeat("p", 100) + "\"}", Err: "line 1: the JSON value is longer than 50 bytes, the limit"},
				{Line: 3, Index: 3, Raw: `{"a":3}`},
			},
		},
		{
			name: "empty array",
			kind: FormatJSON,
			in:   " [ ] \n",
		},
		{
			name: "array missing a comma",
			kind: FormatJSON,
			in:   "[{\"a\":1}\n{\"a\":2}]",
			want: []got{{Line: 1, Index: 1, Raw: `{"a":1}`}},
			err:  "line 2: expected ',' or ']' after an element of the JSON array, found '{'",
		},
		{
			name: "array not closed",
			kind: FormatJSON,
			in:   "[{\"a\":1},\n",
			want: []got{{Line: 1, Index: 1, Raw: `{"a":1}`}},
			err:  "line 2: the JSON array is not closed: the input ends before its ']'",
		},
		{
			name: "array ends inside an element",
			kind: FormatJSON,
			in:   "[{\"a\":1},\n{\"a\":",
			want: []got{{Line: 1, Index: 1, Raw: `{"a":1}`}},
			err:  "line 2: the input ends inside the element of the JSON array that starts here",
		},
		{
			name: "text after the array",
			kind: FormatJSON,
			in:   "[{\"a\":1}]\nx",
			want: []got{{Line: 1, Index: 1, Raw: `{"a":1}`}},
			err:  "line 2: unexpected 'x' after the end of the JSON array",
		},
		{
			name: "pretty-printed object",
			kind: FormatJSON,
			in:   "{\n  \"a\": 1,\n  \"b\": {\n    \"c\": [1, 2]\n  }\n}\n",
			want: []got{{Line: 1, Index: 1, Raw: "{\n  \"a\": 1,\n  \"b\": {\n    \"c\": [1, 2]\n  }\n}"}},
		},
		{
			name: "syntax error inside a pretty-printed object",
			kind: FormatJSON,
			in:   "{\n  \"a\": 1,\n  \"b\": [1,, 2]\n}\n",
			want: []got{{Line: 1, Index: 1, Raw: "{\n  \"a\": 1,\n  \"b\": [1,, 2]\n}", Err: "line 1: malformed JSON: invalid character ',' looking for beginning of value (line 3, column 11)"}},
		},
		{
			name: "pretty-printed objects one after another",
			kind: FormatDebezium,
			in:   "{\n  \"a\": 1\n}\n{\n  \"a\": 2\n}{\"a\":3}\n\n{\"a\" 4}\n{\n  \"a\": 5\n",
			want: []got{
				{Line: 1, Index: 1, Raw: "{\n  \"a\": 1\n}"},
				{Line: 4, Index: 2, Raw: "{\n  \"a\": 2\n}"},
				{Line: 6, Index: 3, Raw: `{"a":3}`},
				{Line: 8, Index: 4, Raw: `{"a" 4}`, Err: `line 8: malformed JSON: invalid character '4' after object key (column 6)`},
				{Line: 9, Index: 5, Raw: "{\n  \"a\": 5\n", Err: "line 9: the JSON value that starts here is not closed at the end of the input"},
			},
		},
		{
			name: "NDJSON whose first line is broken",
			kind: FormatJSON,
			in:   "{\"a\":1\n{\"a\":2}\n{\"a\":3}\n",
			want: []got{
				{Line: 1, Index: 1, Raw: `{"a":1`, Err: "line 1: malformed JSON: unexpected end of JSON input"},
				{Line: 2, Index: 2, Raw: `{"a":2}`},
				{Line: 3, Index: 3, Raw: `{"a":3}`},
			},
		},
		{
			name: "pretty-printed object longer than the limit",
			kind: FormatJSON,
			max:  30,
			in:   "{\n  \"a\": [\n    1,\n    2,\n    3,\n    4,\n    5,\n    6\n  ]\n}\n{\n  \"a\": 1\n}\n",
			want: []got{
				{Line: 1, Index: 1, Raw: "{\n  \"a\": [\n    1,\n    2,\n    3,\n    4,\n    5,\n    6\n  ]\n}", Err: "line 1: the JSON value is longer than 30 bytes, the limit"},
				{Line: 11, Index: 2, Raw: "{\n  \"a\": 1\n}"},
			},
		},
		{
			name: "long NDJSON whose first line is broken",
			kind: FormatJSON,
			max:  30,
			in:   "{\"a\":[1,\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}\n{\"a\":5}\n{\"a\":6}\n",
			want: []got{
				{Line: 1, Index: 1, Raw: `{"a":[1,`, Err: "line 1: malformed JSON: unexpected end of JSON input"},
				{Line: 2, Index: 2, Raw: `{"a":2}`},
				{Line: 3, Index: 3, Raw: `{"a":3}`},
				{Line: 4, Index: 4, Raw: `{"a":4}`},
				{Line: 5, Index: 5, Raw: `{"a":5}`},
				{Line: 6, Index: 6, Raw: `{"a":6}`},
			},
		},
		{
			name: "JSON gzip array",
			kind: FormatJSON,
			in:   gzipped(t, "[{\"a\":1},\n{\"a\":2}]"),
			want: []got{{Line: 1, Index: 1, Raw: `{"a":1}`}, {Line: 2, Index: 2, Raw: `{"a":2}`}},
		},
		{
			name: "neither array nor object",
			kind: FormatJSON,
			in:   "\n\nid,name\n",
			err:  "line 3: expected a JSON array or object, found 'i'",
		},
		{
			name: "empty",
			kind: FormatJSON,
			in:   " \n\t",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Format{Kind: tt.kind, MaxRecordSize: tt.max}
			for how, in := range readers([]byte(tt.in)) {
				recs, err := readAll(t, in(), f)
				want := tt.want
				if tt.max > 0 {
					// Raw of a long record is its first KiB.
					want = append([]got(nil), want...)
					for i := range want {
						if strings.Contains(want[i].Err, "the limit") && len(want[i].Raw) > tt.max {
							want[i].Raw = want[i].Raw[:min(len(want[i].Raw), longPrefix)]
						}
					}
				}
				if diff := cmp.Diff(want, recs); diff != "" {
					t.Errorf("read %s: records differ (-want +got):\n%s", how, diff)
				}
				switch {
				case err == nil && tt.err != "":
					t.Errorf("read %s: no error, want %q", how, tt.err)
				case err != nil && (tt.err == "" || err.Error() != tt.err):
					t.Errorf("read %s: error %q, want %q", how, err, tt.err)
				}
			}
		})
	}
}

// TestLongRecordKeepsPrefix checks that a record longer than the limit is
// skipped in bounded memory and keeps only its first KiB.
func TestLongRecordKeepsPrefix(t *testing.T) {
	long := strings.Repeat("z", 3<<20)
	for _, f := range []Format{csvFormat(nil), {Kind: FormatNDJSON}, {Kind: FormatJSON}} {
		var in string
		switch f.Kind {
		case FormatCSV:
			in = "a\n" + long + "\n1\n"
		case FormatNDJSON:
			in = `{"a":"` + long + "\"}\n{}\n"
		default:
			in = `[{"a":"` + long + "\"},{}]"
		}
		r, err := NewRecordReader(iotest.HalfReader(strings.NewReader(in)), f)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if rec.Err == nil || !strings.Contains(rec.Err.Error(), "longer than 1 MiB") || len(rec.Raw) != longPrefix {
			t.Errorf("%s: long record: Err %v, %d bytes of Raw; want an error and %d bytes", f.Kind, rec.Err, len(rec.Raw), longPrefix)
		}
		if len(r.buf) > 4*DefaultMaxRecordSize {
			t.Errorf("%s: buffer grew to %d bytes reading a long record", f.Kind, len(r.buf))
		}
		rec, err = r.Next()
		if err != nil || rec.Err != nil || rec.Index != 2 {
			t.Errorf("%s: record after the long one: %+v, %v", f.Kind, rec, err)
		}
	}
}

// TestReaderErrors checks that a read failure ends the input, is not
// blamed on the data, and is returned by every later call.
func TestReaderErrors(t *testing.T) {
	boom := errors.New("connection reset")
	for _, f := range []Format{csvFormat(nil), {Kind: FormatNDJSON}, {Kind: FormatJSON}} {
		for _, gz := range []bool{false, true} {
			in := "a\n1\n2\n"
			if f.Kind != FormatCSV {
				in = "{}\n{}\n{}\n"
			}
			if gz {
				in = gzipped(t, in)
			}
			src := io.MultiReader(strings.NewReader(in[:len(in)-3]), iotest.ErrReader(boom))
			_, err := readAll(t, src, f)
			if !errors.Is(err, boom) || twinhub.ErrorCode(err) != twinhub.EINTERNAL {
				t.Errorf("%s gzip=%v: error %v, want the read error", f.Kind, gz, err)
			}
		}
	}
}

// TestFieldsDoNotAllocate checks the steady state of the CSV reader: no
// allocation per record, quoted fields included.
func TestFieldsDoNotAllocate(t *testing.T) {
	for _, row := range []string{"12345,2024-01-02,3,19.99,abc\n", "\"12345\",\"2024-01-02\",\"3\",\"19.99\",\"say \"\"hi\"\"\"\n"} {
		r, err := NewRecordReader(&cycleReader{data: []byte(strings.Repeat(row, 1000))}, csvFormat(func(o *CSVOptions) {
			o.Header, o.Columns = false, []string{"id", "date", "n", "amount", "note"}
		}))
		if err != nil {
			t.Fatal(err)
		}
		for range 5000 {
			r.Next()
		}
		allocs := testing.AllocsPerRun(10000, func() {
			rec, err := r.Next()
			if err != nil || rec.Err != nil || len(rec.Fields) != 5 {
				t.Fatalf("Next = %+v, %v", rec, err)
			}
		})
		if allocs != 0 {
			t.Errorf("%q: %.2f allocations per record, want 0", row, allocs)
		}
	}
}

// cycleReader repeats data forever.
type cycleReader struct {
	data []byte
	off  int
}

func (c *cycleReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], c.data[c.off:])
		n += k
		c.off = (c.off + k) % len(c.data)
	}
	return n, nil
}

func BenchmarkCSVReader(b *testing.B) {
	for _, bc := range []struct{ name, row string }{
		{"plain", "%d,2024-01-%02d,3,19.99,abc\n"},
		{"quoted", "\"%d\",\"2024-01-%02d\",\"3\",\"19.99\",\"abc\"\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var data bytes.Buffer
			for i := range 10000 {
				fmt.Fprintf(&data, bc.row, 10000+i*7, 1+i%28)
			}
			r, err := NewRecordReader(&cycleReader{data: data.Bytes()}, csvFormat(func(o *CSVOptions) {
				o.Header, o.Columns = false, []string{"id", "date", "n", "amount", "note"}
			}))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(data.Len() / 10000))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				rec, err := r.Next()
				if err != nil || rec.Err != nil {
					b.Fatal(rec, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// TestCharsets checks the hand-written tables against golang.org/x/text,
// through the reader: every byte value, split across reads.
func TestCharsets(t *testing.T) {
	var all []byte
	for b := 0x20; b < 0x100; b++ {
		if b != ',' && b != '"' {
			all = append(all, byte(b))
		}
	}
	for _, c := range []struct {
		name string
		enc  *charmap.Charmap
	}{{"latin1", charmap.ISO8859_1}, {"windows-1252", charmap.Windows1252}} {
		want, err := c.enc.NewDecoder().Bytes(all)
		if err != nil {
			t.Fatal(err)
		}
		if c.name == "windows-1252" {
			// x/text maps the five undefined bytes to U+FFFD; the reader
			// keeps them as the C1 controls of the same value.
			for _, u := range []string{"\u0081", "\u008d", "\u008f", "\u0090", "\u009d"} {
				want = bytes.Replace(want, []byte("\ufffd"), []byte(u), 1)
			}
		}
		in := append([]byte("col\n"), all...)
		for how, rd := range readers(in) {
			recs, err := readAll(t, rd(), csvFormat(func(o *CSVOptions) { o.Encoding = c.name }))
			if err != nil || len(recs) != 1 || recs[0].Fields[0] != string(want) {
				t.Errorf("%s read %s: %+v, %v; want the field %q", c.name, how, recs, err, want)
			}
		}
	}
}

func BenchmarkJSONReader(b *testing.B) {
	const n = 10000
	row := `{"customer_id":"c-%d","type":"purchase","time":"2024-01-%02dT10:00:00Z","amount":19.99,"items":[{"sku":"p-1","qty":2}]}`
	for _, bc := range []struct {
		name   string
		kind   FormatKind
		before string
		sep    string
	}{
		{"ndjson", FormatNDJSON, "", "\n"},
		{"array", FormatJSON, "[\n", ",\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var data bytes.Buffer
			data.WriteString(bc.before)
			for i := range n {
				fmt.Fprintf(&data, row, i, 1+i%28)
				data.WriteString(bc.sep)
			}
			if bc.kind == FormatJSON {
				data.WriteString("{}]")
			}
			b.SetBytes(int64(data.Len() / n))
			b.ReportAllocs()
			var r *RecordReader
			for b.Loop() {
				if r == nil {
					var err error
					if r, err = NewRecordReader(bytes.NewReader(data.Bytes()), Format{Kind: bc.kind}); err != nil {
						b.Fatal(err)
					}
				}
				rec, err := r.Next()
				if err == io.EOF {
					r = nil
					continue
				}
				if err != nil || rec.Err != nil {
					b.Fatal(rec, err)
				}
			}
		})
	}
}
