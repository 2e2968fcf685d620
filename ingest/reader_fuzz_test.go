package ingest

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var csvSeeds = []string{
	"a,b,c\n1,2,3\n",
	"a,\"b,c\"\r\n\"x\"\"y\",\"multi\nline\"\n",
	"\n\n#c\n1\n\"\"\n,\n",
	"\"a\r\nb\",c\r\n\"\r\",d\r",
	"a;b\tc|d§e\n",
	"x\r\r\n\"q\"\"\"\n",
}

// FuzzCSVReader compares the CSV reader with encoding/csv (LazyQuotes off,
// any number of fields) on the inputs encoding/csv accepts. They read the
// same records, fields and starting lines, except where they differ on
// purpose, which the comparison allows for:
//   - encoding/csv turns "\r\n" inside a quoted field into "\n"; the reader
//     keeps the field's bytes as they are;
//   - the reader skips a UTF-8 byte order mark and refuses a UTF-16 one;
//     encoding/csv reads them as text (such inputs are given to it without
//     the mark, or skipped);
//   - the reader decompresses input that starts with the gzip magic bytes
//     (skipped).
//
// Inputs encoding/csv rejects (a bare quote in an unquoted field, text
// after a closing quote, an unterminated quote) are only checked for the
// invariants every input must keep. The reader is lenient with bare quotes
// and rejects the other two per record.
func FuzzCSVReader(f *testing.F) {
	for i, s := range csvSeeds {
		f.Add([]byte(s), uint8(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		delims := []rune{',', ';', '\t', '|', '§'}
		o := CSVOptions{Delimiter: delims[int(mode&0x7f)%len(delims)], Quote: '"', Columns: []string{"c"}}
		if mode&0x80 != 0 {
			o.Comment = '#'
		}
		recs := checkInvariants(t, data, Format{Kind: FormatCSV, CSV: o})
		if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) || bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) {
			return
		}
		cr := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
		cr.Comma, cr.Comment, cr.FieldsPerRecord, cr.ReuseRecord = o.Delimiter, o.Comment, -1, false
		var want []got
		for {
			fields, err := cr.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return // encoding/csv rejects the input
			}
			line, _ := cr.FieldPos(0)
			want = append(want, got{Line: line, Index: len(want) + 1, Fields: fields})
		}
		for i := range recs {
			g := &recs[i]
			if g.Err != "" && !strings.Contains(g.Err, "columns are named") && !strings.Contains(g.Err, "column is named") {
				t.Errorf("record %d: %s; encoding/csv reads it", g.Index, g.Err)
			}
			g.Raw, g.Err = "", ""
			for j, f := range g.Fields {
				g.Fields[j] = strings.ReplaceAll(f, "\r\n", "\n")
			}
		}
		if diff := cmp.Diff(want, recs); diff != "" {
			t.Errorf("records differ from encoding/csv's (-csv +reader):\n%s", diff)
		}
	})
}

// FuzzJSONReader checks that the NDJSON and JSON readers never panic, that
// a record's Raw is a part of the input, and that an array encoding/json
// accepts is read as exactly its elements.
func FuzzJSONReader(f *testing.F) {
	for _, s := range []string{
		`{"a":1}` + "\n" + `{"b":[1,2,{"c":"}"}]}`,
		"[\n {\"a\": 1},\n {\"a\": \"\\\"]\"}\n]",
		"{\n  \"a\": 1\n}\n{\n}",
		"[1, \"x\", null, {}, []]",
		"{\"a\":1\n{}\n",
		"\xef\xbb\xbf[{}]",
	} {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		fm := Format{Kind: FormatJSON}
		if mode&1 != 0 {
			fm.Kind = FormatNDJSON
		}
		if mode&2 != 0 {
			fm.MaxRecordSize = 16 // exercise skipping long records
		}
		recs := checkInvariants(t, data, fm)
		var elems []json.RawMessage
		if fm.Kind != FormatJSON || fm.MaxRecordSize != 0 || json.Unmarshal(data, &elems) != nil {
			return
		}
		if len(recs) != len(elems) {
			t.Fatalf("read %d records, encoding/json finds %d elements", len(recs), len(elems))
		}
		for i, e := range elems {
			if recs[i].Raw != string(e) {
				t.Errorf("record %d: Raw %q, encoding/json finds %q", i+1, recs[i].Raw, e)
			}
			if (recs[i].Err == "") != (e[0] == '{') {
				t.Errorf("record %d: %q: Err %q", i+1, e, recs[i].Err)
			}
		}
	})
}

// checkInvariants reads data and checks what holds for any input: no
// panic, Raw a part of the (decoded) input, lines and indexes increasing.
func checkInvariants(t *testing.T, data []byte, f Format) []got {
	t.Helper()
	recs, _ := readAll(t, bytes.NewReader(data), f)
	gz := bytes.HasPrefix(data, []byte{0x1f, 0x8b})
	lines := bytes.Count(data, []byte{'\n'}) + 1
	last := 0
	for i, g := range recs {
		if !gz && !bytes.Contains(data, []byte(g.Raw)) {
			t.Errorf("record %d: Raw %q is not in the input", g.Index, g.Raw)
		}
		if g.Index != i+1 {
			t.Errorf("record %d has Index %d", i+1, g.Index)
		}
		if g.Line < max(last, 1) || (!gz && g.Line > lines) {
			t.Errorf("record %d: line %d after line %d, in an input of %d lines", g.Index, g.Line, last, lines)
		}
		last = g.Line
	}
	if f.Kind == FormatCSV && !gz && slices.ContainsFunc(recs, func(g got) bool { return g.Err == "" && g.Fields == nil }) {
		t.Errorf("a CSV record without error has no fields")
	}
	return recs
}
