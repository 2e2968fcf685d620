package mapping

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/internal/yamlread"
	"github.com/valyala/fastjson"
)

// table is a lookup file held in memory, compactly: every cell (CSV) or
// every row's JSON text lives in one string, rows are offsets into it, and
// the index maps each key, a substring of data, to its row. It is immutable
// after load and safe for concurrent use.
type table struct {
	name   string
	file   string
	csv    bool
	cols   []string // CSV: column names
	colIdx map[string]int
	ncols  int
	data   string
	// offs delimits cells (CSV: row r, column c is data[offs[r*ncols+c]:offs[r*ncols+c+1]])
	// or rows (JSON: row r is data[offs[r]:offs[r+1]]).
	offs  []uint32
	index map[string]int32
}

// rows returns how many rows the table has.
func (t *table) rows() int {
	if t.csv {
		if t.ncols == 0 {
			return 0
		}
		return (len(t.offs) - 1) / t.ncols
	}
	return len(t.offs) - 1
}

// cell returns row r's column c of a CSV table.
func (t *table) cell(r int32, c int) string {
	i := int(r)*t.ncols + c
	return t.data[t.offs[i]:t.offs[i+1]]
}

// rowJSON returns row r of a JSON table.
func (t *table) rowJSON(r int32) string {
	return t.data[t.offs[r]:t.offs[r+1]]
}

// lookupKind returns the format of a lookup file from its name.
func lookupKind(file string) (kind string, ok bool) {
	name := strings.ToLower(strings.TrimSuffix(strings.ToLower(file), ".gz"))
	switch filepath.Ext(name) {
	case ".csv", ".txt":
		return "csv", true
	case ".tsv", ".tab":
		return "tsv", true
	case ".ndjson", ".jsonl":
		return "ndjson", true
	case ".json":
		return "json", true
	}
	return "", false
}

// tableProblem is one thing wrong with a lookup; atKey places it at the
// lookup's key rather than its file.
type tableProblem struct {
	msg, hint string
	atKey     bool
}

// maxTableProblems bounds the problems reported per lookup file: a file
// with thousands of duplicates needs one message, not thousands.
const maxTableProblems = 5

// loadCSV builds a table from CSV data; key is the column that identifies
// a row.
func loadCSV(name, file string, data []byte, o ingest.CSVOptions, key string) (*table, []tableProblem) {
	t := &table{name: name, file: file, csv: true}
	var probs []tableProblem
	add := func(msg, hint string) bool {
		if len(probs) == maxTableProblems {
			probs = append(probs, tableProblem{msg: fmt.Sprintf("lookup %s: more problems in %s not shown", name, file)})
		}
		if len(probs) > maxTableProblems {
			return false
		}
		probs = append(probs, tableProblem{msg: msg, hint: hint})
		return true
	}
	var buf []byte
	header := !o.Header && len(o.Columns) > 0
	if header {
		t.cols = o.Columns
	}
	var lines []int32
	keyCol := -1
	setCols := func() bool {
		t.ncols = len(t.cols)
		t.colIdx = make(map[string]int, len(t.cols))
		for i, c := range t.cols {
			if _, dup := t.colIdx[c]; !dup {
				t.colIdx[c] = i
			}
		}
		k, ok := t.colIdx[key]
		if !ok {
			probs = append(probs, tableProblem{msg: fmt.Sprintf("lookup %s: %s has no column %q", name, file, key), hint: yamlread.SuggestOr(key, t.cols), atKey: true})
			return false
		}
		keyCol = k
		return true
	}
	if header && !setCols() {
		return nil, probs
	}
	err := readCSV(data, o, func(line int, fields [][]byte) bool {
		if !header {
			header = true
			if len(o.Columns) > 0 {
				t.cols = o.Columns
			} else {
				t.cols = make([]string, len(fields))
				for i, f := range fields {
					t.cols[i] = string(f)
				}
			}
			return setCols()
		}
		if len(fields) != t.ncols {
			return add(fmt.Sprintf("lookup %s: line %d of %s has %s, the header has %d", name, line, file, plural(len(fields), "field"), t.ncols), "")
		}
		if len(buf) > maxLookupSize {
			add(fmt.Sprintf("lookup %s: %s is larger than %d bytes", name, file, maxLookupSize), "")
			return false
		}
		if len(t.offs) == 0 {
			t.offs = append(t.offs, 0)
		}
		for _, f := range fields {
			buf = append(buf, f...)
			t.offs = append(t.offs, uint32(len(buf)))
		}
		lines = append(lines, int32(line))
		return true
	})
	if err != nil {
		add(fmt.Sprintf("lookup %s: %s: %v", name, file, err), "")
	}
	if !header {
		add(fmt.Sprintf("lookup %s: %s is empty", name, file), "a lookup needs a header row (or csv: {columns: [...]}) and rows")
	}
	if len(probs) > 0 {
		return nil, probs
	}
	if len(t.offs) == 0 {
		t.offs = []uint32{0}
	}
	buf, t.offs = shrink(buf), shrink(t.offs)
	t.data = unsafe.String(unsafe.SliceData(buf), len(buf))
	n := t.rows()
	t.index = make(map[string]int32, n)
	for r := 0; r < n; r++ {
		k := t.cell(int32(r), keyCol)
		if !indexRow(t, k, int32(r), lines, add) {
			break
		}
	}
	return t, probs
}

// indexRow adds row r under key k, reporting empty and duplicate keys.
func indexRow(t *table, k string, r int32, lines []int32, add func(msg, hint string) bool) bool {
	where := func(r int32) string {
		if t.csv {
			return fmt.Sprintf("line %d", lines[r])
		}
		return fmt.Sprintf("row %d", r+1)
	}
	if k == "" {
		return add(fmt.Sprintf("lookup %s: %s of %s has an empty key", t.name, where(r), t.file), "every row needs a key")
	}
	if prev, dup := t.index[k]; dup {
		return add(fmt.Sprintf("lookup %s: key %s appears twice in %s (%s and %s)", t.name, quote(k), t.file, where(prev), where(r)),
			"a lookup key identifies one row; remove the duplicates or choose another key")
	}
	t.index[k] = r
	return true
}

// loadJSON builds a table from a JSON array of objects, one object or
// NDJSON; key is the path, within each row, of its key.
func loadJSON(name, file string, data []byte, key string) (*table, []tableProblem) {
	t := &table{name: name, file: file}
	var probs []tableProblem
	add := func(msg, hint string) bool {
		if len(probs) == maxTableProblems {
			probs = append(probs, tableProblem{msg: fmt.Sprintf("lookup %s: more problems in %s not shown", name, file)})
		}
		if len(probs) > maxTableProblems {
			return false
		}
		probs = append(probs, tableProblem{msg: msg, hint: hint})
		return true
	}
	segs, _, err := splitPath(key)
	if err != nil {
		return nil, []tableProblem{{msg: fmt.Sprintf("lookup %s: %v", name, err), atKey: true}}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var buf []byte
	var keys []string // texts of the keys, in row order
	var p fastjson.Parser
	addRow := func(v *fastjson.Value, where string) bool {
		if v.Type() != fastjson.TypeObject {
			return add(fmt.Sprintf("lookup %s: %s of %s is a JSON %s, not an object", name, where, file, v.Type()), "")
		}
		kv := walkJSON(v, segs)
		var k string
		switch {
		case kv == nil || kv.Type() == fastjson.TypeNull:
		case kv.Type() == fastjson.TypeString:
			k = string(kv.GetStringBytes())
		case kv.Type() == fastjson.TypeNumber:
			k = string(kv.MarshalTo(nil))
		default:
			return add(fmt.Sprintf("lookup %s: %s of %s: key %s is a JSON %s, not text or a number", name, where, file, key, kv.Type()), "")
		}
		if len(t.offs) == 0 {
			t.offs = append(t.offs, 0)
		}
		buf = v.MarshalTo(buf)
		if len(buf) > maxLookupSize {
			add(fmt.Sprintf("lookup %s: %s is larger than %d bytes", name, file, maxLookupSize), "")
			return false
		}
		t.offs = append(t.offs, uint32(len(buf)))
		keys = append(keys, k)
		return true
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		v, err := p.ParseBytes(trimmed)
		if err != nil {
			add(fmt.Sprintf("lookup %s: %s is not valid JSON: %v", name, file, err), "")
			return nil, probs
		}
		for i, e := range v.GetArray() {
			if !addRow(e, fmt.Sprintf("element %d", i+1)) {
				break
			}
		}
	} else {
		line := 0
		for len(data) > 0 {
			line++
			var l []byte
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				l, data = data[:i], data[i+1:]
			} else {
				l, data = data, nil
			}
			if len(bytes.TrimSpace(l)) == 0 {
				continue
			}
			v, err := p.ParseBytes(l)
			if err != nil {
				if !add(fmt.Sprintf("lookup %s: line %d of %s is not valid JSON: %v", name, line, file, err), "") {
					break
				}
				continue
			}
			if !addRow(v, "line "+strconv.Itoa(line)) {
				break
			}
		}
	}
	if len(probs) > 0 {
		return nil, probs
	}
	if len(t.offs) == 0 {
		t.offs = []uint32{0}
	}
	buf, t.offs = shrink(buf), shrink(t.offs)
	t.data = unsafe.String(unsafe.SliceData(buf), len(buf))
	t.index = make(map[string]int32, len(keys))
	for r, k := range keys {
		if !indexRow(t, k, int32(r), nil, add) {
			break
		}
	}
	return t, probs
}

// walkJSON follows segs from v; nil when a step is missing.
func walkJSON(v *fastjson.Value, segs []seg) *fastjson.Value {
	for _, s := range segs {
		if v == nil {
			return nil
		}
		switch v.Type() {
		case fastjson.TypeObject:
			o, _ := v.Object()
			v = o.Get(s.name)
		case fastjson.TypeArray:
			a, _ := v.Array()
			if s.index < 0 || s.index >= len(a) {
				return nil
			}
			v = a[s.index]
		default:
			return nil
		}
	}
	return v
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// shrink returns s without the spare capacity append doubling left, which
// for a large lookup is as much memory again as its rows.
func shrink[T any](s []T) []T {
	if cap(s)-len(s) <= len(s)/8 {
		return s
	}
	return append(make([]T, 0, len(s)), s...)
}
