package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/internal/yamlread"
	"github.com/twinhub/twinhub/schema"
)

// Keys allowed at each level of a mapping, in the order the docs list them.
var (
	topKeys      = []string{"source", "description", "format", "csv", "null_values", "time_zone", "decimal", "true_values", "false_values", "lookups", "joins", "events", "debezium"}
	csvKeys      = []string{"delimiter", "quote", "header", "columns", "encoding", "comment"}
	lookupKeys   = []string{"file", "key", "csv"}
	joinKeys     = []string{"lookup", "on", "as", "optional"}
	entryKeys    = []string{"type", "when", "each", "id", "key", "time", "source", "fields"}
	valueKeys    = []string{"from", "const", "template", "format", "default"}
	debeziumKeys = []string{"on_delete", "position"}
	formatNames  = []string{"csv", "ndjson", "json", "debezium"}
	encodings    = map[string]string{"utf-8": "utf-8", "utf8": "utf-8", "latin1": "latin1", "latin-1": "latin1", "iso-8859-1": "latin1",
		"windows-1252": "windows-1252", "cp1252": "windows-1252"}

	defaultTrue  = []string{"true", "yes", "y", "t", "1"}
	defaultFalse = []string{"false", "no", "n", "f", "0"}
)

var (
	sourceNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	identRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

const maxSourceLen = 128

// Parse parses and compiles a mapping against schema sc, reading its lookup
// files. When the mapping has problems it returns a *schema.ValidationError
// that lists every one of them, in document order, each with its line,
// column, YAML path and, where one helps, a hint.
func Parse(src []byte, sc *schema.Schema, o Options) (*Mapping, error) {
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	p := &parser{src: src, lines: strings.Split(strings.ReplaceAll(string(src), "\r\n", "\n"), "\n"), sc: sc, opts: o}
	m := p.document()
	if len(p.Problems) > 0 {
		return nil, &schema.ValidationError{Problems: p.Sorted(), Subject: "mapping"}
	}
	return m, nil
}

// parser walks the YAML node tree, collecting every problem it meets.
type parser struct {
	yamlread.Reader
	src      []byte
	lines    []string
	sc       *schema.Schema
	opts     Options
	m        *Mapping
	declared map[string]bool // lookup names, loaded or not
}

func schemaProblem(line, col int, path, msg, hint string) schema.Problem {
	return schema.Problem{Line: line, Column: col, Path: path, Message: msg, Hint: hint}
}

func (p *parser) addAt(w where, hint, format string, args ...any) {
	p.Problems = append(p.Problems, schema.Problem{Line: w.line, Column: w.col, Path: w.path, Message: fmt.Sprintf(format, args...), Hint: hint})
}

// kv is one key: value pair of a YAML mapping.
type kv = yamlread.Entry

func byKey(kvs []kv) map[string]kv {
	m := make(map[string]kv, len(kvs))
	for _, e := range kvs {
		m[e.Key] = e
	}
	return m
}

// scalars reads a list of scalars as their texts (null_values: ["", NA, 0]).
func (p *parser) scalars(n *yaml.Node, path string) ([]string, bool) {
	n = yamlread.Resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		p.Add(n, path, `write a list, e.g. ["", "NA"]`, "expected a list, found %s", yamlread.Describe(n))
		return nil, false
	}
	var out []string
	ok := true
	for i, c := range n.Content {
		c = yamlread.Resolve(c)
		if c == nil || c.Kind != yaml.ScalarNode {
			p.Add(c, fmt.Sprintf("%s[%d]", path, i), "", "expected a text, found %s", yamlread.Describe(c))
			ok = false
			continue
		}
		out = append(out, c.Value)
	}
	return out, ok
}

// char reads a one-character option; "" gives 0 when allowEmpty.
func (p *parser) char(n *yaml.Node, path string, allowEmpty bool) (rune, bool) {
	s, ok := p.Str(n, path)
	if !ok {
		return 0, false
	}
	switch s {
	case `\t`, "tab":
		return '\t', true
	case "":
		if allowEmpty {
			return 0, true
		}
	}
	if r, size := utf8.DecodeRuneInString(s); size == len(s) && size > 0 && r != utf8.RuneError {
		if r >= utf8.RuneSelf {
			p.Add(n, path, "use an ASCII character", "%q is not an ASCII character", s)
			return 0, false
		}
		if r == '\n' || r == '\r' {
			p.Add(n, path, "", "a line break cannot be used here")
			return 0, false
		}
		return r, true
	}
	p.Add(n, path, `one character, e.g. ";" or "\t"`, "expected one character, found %q", s)
	return 0, false
}

const startHint = "start with source:, format: and events:"

func (p *parser) document() *Mapping {
	root := p.Root(p.src, "mapping", startHint)
	if root == nil {
		return nil
	}
	if p.sc == nil {
		p.Add(root, "", "", "no schema to map to")
		return nil
	}
	m := &Mapping{
		Src: bytes.Clone(p.src), schema: p.sc, dec: '.',
		nullValues: []string{""}, nullEmpty: true, trueValues: defaultTrue, falseValues: defaultFalse,
		lookups: map[string]*table{}, keepDeletes: true,
	}
	p.m = m
	top := byKey(p.Mapping(root, "", topKeys, "a mapping"))

	if e, ok := top["source"]; ok {
		if s, ok := p.Str(e.V, e.Path); ok {
			switch {
			case len(s) > maxSourceLen:
				p.Add(e.V, e.Path, "", "the source name is longer than %d characters", maxSourceLen)
			case !sourceNameRE.MatchString(s):
				p.Add(e.V, e.Path, "use letters, digits, _, . and -, e.g. crm or shop.orders", "invalid source name %q", s)
			default:
				m.Source = s
			}
		}
	} else {
		p.Add(root, "source", "name the source, e.g. source: crm", "missing source")
	}
	if e, ok := top["description"]; ok {
		m.Description, _ = p.Str(e.V, e.Path)
	}
	if e, ok := top["format"]; ok {
		if s, ok := p.Str(e.V, e.Path); ok {
			if k, ok := ingest.ParseFormatKind(s); ok {
				m.Format.Kind = k
			} else {
				p.Add(e.V, e.Path, yamlread.SuggestOr(s, formatNames), "unknown format %q", s)
			}
		}
	} else {
		p.Add(root, "format", "one of csv, ndjson, json, debezium", "missing format")
	}
	m.csv = m.Format.Kind == ingest.FormatCSV
	m.debezium = m.Format.Kind == ingest.FormatDebezium
	if m.csv {
		m.Format.CSV = ingest.DefaultCSV()
	}
	if e, ok := top["csv"]; ok {
		if m.Format.Kind != 0 && !m.csv {
			p.Add(e.K, e.Path, "remove it, or use format: csv", "csv options apply only to format csv, not %s", m.Format.Kind)
		} else {
			m.Format.CSV = p.csvOptions(e, ingest.DefaultCSV())
			if m.csv && !m.Format.CSV.Header && len(m.Format.CSV.Columns) == 0 {
				p.Add(e.K, e.Path, "add columns: [name, ...] to name them", "without a header row the columns need names")
			}
		}
	}
	if e, ok := top["null_values"]; ok {
		if vs, ok := p.scalars(e.V, e.Path); ok {
			m.nullValues = vs
			m.nullEmpty = len(vs) == 1 && vs[0] == ""
		}
	}
	if e, ok := top["true_values"]; ok {
		if vs, ok := p.scalars(e.V, e.Path); ok {
			m.trueValues = vs
		}
	}
	if e, ok := top["false_values"]; ok {
		if vs, ok := p.scalars(e.V, e.Path); ok {
			m.falseValues = vs
		}
	}
	for _, t := range m.trueValues {
		for _, f := range m.falseValues {
			if strings.EqualFold(t, f) {
				n := root
				if e, ok := top["false_values"]; ok {
					n = e.V
				}
				p.Add(n, "false_values", "a text cannot mean both true and false", "%q is in both true_values and false_values", f)
			}
		}
	}
	if e, ok := top["time_zone"]; ok {
		if s, ok := p.Str(e.V, e.Path); ok {
			p.timeZone(e, s)
		}
	}
	if e, ok := top["decimal"]; ok {
		if s, ok := p.Str(e.V, e.Path); ok {
			if s == "." || s == "," {
				m.dec = s[0]
			} else {
				p.Add(e.V, e.Path, `"." or ","`, "invalid decimal separator %q", s)
			}
		}
	}
	if e, ok := top["debezium"]; ok {
		if m.Format.Kind != 0 && !m.debezium {
			p.Add(e.K, e.Path, "remove it, or use format: debezium", "debezium options apply only to format debezium, not %s", m.Format.Kind)
		} else {
			p.debeziumOptions(e)
		}
	}
	if e, ok := top["lookups"]; ok {
		p.lookups(e)
	}
	if e, ok := top["joins"]; ok {
		p.joins(e)
	}
	env, err := newCELEnv()
	if err != nil {
		p.Add(root, "", "", "cannot build the expression environment: %v", err)
		return nil
	}
	if e, ok := top["events"]; ok {
		p.events(e, env)
	} else {
		p.Add(root, "events", "add events: with at least one entry, e.g. - {type: purchase, key: customer_id, fields: {amount: amount}}", "missing events")
	}
	p.checkLiterals(m)
	if len(p.Problems) > 0 {
		return nil
	}
	return m
}

func (p *parser) timeZone(e kv, s string) {
	switch s {
	case "", "UTC", "utc", "Z":
		return
	case "Local", "local":
		p.Add(e.V, e.Path, "name the zone, e.g. Europe/Berlin: the server's zone differs between machines", "time_zone Local depends on the machine")
		return
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		p.Add(e.V, e.Path, "use an IANA zone name such as America/Sao_Paulo, Europe/Berlin or UTC", "unknown time zone %q", s)
		return
	}
	p.m.loc = loc
}

func (p *parser) csvOptions(e kv, o ingest.CSVOptions) ingest.CSVOptions {
	for _, c := range p.Mapping(e.V, e.Path, csvKeys, "a mapping of CSV options") {
		switch c.Key {
		case "delimiter":
			if r, ok := p.char(c.V, c.Path, false); ok {
				o.Delimiter = r
			}
		case "quote":
			if r, ok := p.char(c.V, c.Path, true); ok {
				o.Quote = r
			}
		case "header":
			if b, ok := p.Bool(c.V, c.Path); ok {
				o.Header = b
			}
		case "columns":
			n := yamlread.Resolve(c.V)
			if n == nil || n.Kind != yaml.SequenceNode {
				p.Add(c.V, c.Path, "write a list, e.g. [customer_id, date, amount]", "expected a list of column names, found %s", yamlread.Describe(n))
				continue
			}
			cols := make([]string, 0, len(n.Content))
			for i, cn := range n.Content {
				cn = yamlread.Resolve(cn)
				if cn == nil || cn.Kind != yaml.ScalarNode || yamlread.IsNull(cn) {
					p.Add(cn, fmt.Sprintf("%s[%d]", c.Path, i), "", "expected a column name, found %s", yamlread.Describe(cn))
					continue
				}
				cols = append(cols, cn.Value)
			}
			o.Columns = cols
		case "encoding":
			if s, ok := p.Str(c.V, c.Path); ok {
				if enc, ok := encodings[strings.ToLower(s)]; ok {
					o.Encoding = enc
				} else {
					p.Add(c.V, c.Path, "one of utf-8, latin1, windows-1252", "unknown encoding %q", s)
				}
			}
		case "comment":
			if r, ok := p.char(c.V, c.Path, true); ok {
				o.Comment = r
			}
		}
	}
	if o.Delimiter != 0 && o.Delimiter == o.Quote {
		p.Add(e.K, e.Path, "", "the delimiter and the quote are the same character %q", o.Delimiter)
	}
	return o
}

func (p *parser) debeziumOptions(e kv) {
	for _, c := range p.Mapping(e.V, e.Path, debeziumKeys, "a mapping of Debezium options") {
		switch c.Key {
		case "on_delete":
			if s, ok := p.Str(c.V, c.Path); ok {
				switch s {
				case "clear":
					p.m.keepDeletes = true
				case "ignore":
					p.m.keepDeletes = false
				default:
					p.Add(c.V, c.Path, yamlread.SuggestOr(s, []string{"clear", "ignore"}), "unknown on_delete policy %q", s)
				}
			}
		case "position":
			if s, ok := p.Str(c.V, c.Path); ok {
				pt, err := compilePath(s, pathScope{debezium: true})
				if err != nil {
					p.Add(c.V, c.Path, "e.g. position: source.sequence", "%v", err)
				} else {
					p.m.position = pt
				}
			}
		}
	}
}

func (p *parser) lookups(e kv) {
	p.declared = map[string]bool{}
	for _, le := range p.Mapping(e.V, e.Path, nil, "a mapping of lookup names to their files") {
		p.declared[le.Key] = true
		f := byKey(p.Mapping(le.V, le.Path, lookupKeys, "a mapping with file: and key:"))
		fe, okFile := f["file"]
		ke, okKey := f["key"]
		if !okFile {
			p.Add(le.K, le.Path+".file", "name the file, e.g. file: orders.csv", "missing file")
		}
		if !okKey {
			p.Add(le.K, le.Path+".key", "name the column that identifies a row, e.g. key: order_id", "missing key")
		}
		if !okFile || !okKey {
			continue
		}
		file, ok1 := p.Str(fe.V, fe.Path)
		key, ok2 := p.Str(ke.V, ke.Path)
		if !ok1 || !ok2 {
			continue
		}
		kind, ok := lookupKind(file)
		if !ok {
			p.Add(fe.V, fe.Path, "use a file ending in .csv, .tsv, .ndjson, .jsonl or .json (optionally .gz)", "cannot tell the format of %q from its name", file)
			continue
		}
		o := ingest.DefaultCSV()
		if kind == "tsv" {
			o.Delimiter = '\t'
		}
		if ce, ok := f["csv"]; ok {
			if kind != "csv" && kind != "tsv" {
				p.Add(ce.K, ce.Path, "remove it", "csv options apply only to CSV lookups, and %s is %s", file, kind)
			} else {
				o = p.csvOptions(ce, o)
				if !o.Header && len(o.Columns) == 0 {
					p.Add(ce.K, ce.Path, "add columns: [name, ...] to name them", "without a header row the columns need names")
					continue
				}
			}
		}
		if !filepath.IsLocal(file) {
			p.Add(fe.V, fe.Path, "put the file in the mapping's directory (or below it) and name it relative to it",
				"lookup file %q must be a relative path inside the mapping's directory", file)
			continue
		}
		data, err := p.opts.ReadFile(filepath.Join(p.opts.Dir, file))
		if err != nil {
			var pe *fs.PathError
			switch {
			case errors.Is(err, fs.ErrNotExist):
				p.Add(fe.V, fe.Path, "lookup files are relative to the mapping's directory", "lookup file %q does not exist", file)
			case errors.As(err, &pe):
				p.Add(fe.V, fe.Path, "", "cannot read lookup file %q: %v", file, pe.Err)
			default:
				p.Add(fe.V, fe.Path, "", "cannot read lookup file %q: %v", file, err)
			}
			continue
		}
		if data, err = readAllInput(data); err != nil {
			p.Add(fe.V, fe.Path, "", "cannot read lookup file %q: %v", file, err)
			continue
		}
		if len(data) > maxLookupSize {
			p.Add(fe.V, fe.Path, "", "lookup file %q is larger than %d bytes", file, maxLookupSize)
			continue
		}
		var t *table
		var probs []tableProblem
		if kind == "csv" || kind == "tsv" {
			t, probs = loadCSV(le.Key, file, toUTF8(data, o.Encoding), o, key)
		} else {
			t, probs = loadJSON(le.Key, file, data, key)
		}
		for _, pr := range probs {
			n, path := fe.V, fe.Path
			if pr.atKey {
				n, path = ke.V, ke.Path
			}
			p.Add(n, path, pr.hint, "%s", pr.msg)
		}
		if t != nil {
			p.m.lookups[le.Key] = t
		}
	}
}

func (p *parser) joins(e kv) {
	n := yamlread.Resolve(e.V)
	if yamlread.IsNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.Add(n, e.Path, "write a list, e.g. - {lookup: orders, on: order_id, as: order}", "expected a list of joins, found %s", yamlread.Describe(n))
		return
	}
	var later []string // as names, to explain an `on` that names a later join
	for _, c := range n.Content {
		if c = yamlread.Resolve(c); c != nil && c.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(c.Content); i += 2 {
				if c.Content[i].Value == "as" {
					later = append(later, c.Content[i+1].Value)
				}
			}
		}
	}
	for i, c := range n.Content {
		path := fmt.Sprintf("%s[%d]", e.Path, i)
		c = yamlread.Resolve(c)
		f := byKey(p.Mapping(c, path, joinKeys, "a mapping with lookup:, on: and as:"))
		if c == nil || c.Kind != yaml.MappingNode {
			continue
		}
		j := &join{}
		ok := true
		for _, k := range []string{"lookup", "on", "as"} {
			if _, has := f[k]; !has {
				p.Add(c, path+"."+k, "a join needs lookup:, on: and as:", "missing %s", k)
				ok = false
			}
		}
		if !ok {
			continue
		}
		if s, good := p.Str(f["lookup"].V, f["lookup"].Path); good {
			j.lookup = s
			if t, found := p.m.lookups[s]; found {
				j.table = t
			} else if !p.declared[s] {
				var names []string
				for name := range p.declared {
					names = append(names, name)
				}
				sort.Strings(names)
				hint := yamlread.SuggestOr(s, names)
				if len(names) == 0 {
					hint = "declare it under lookups:"
				}
				p.Add(f["lookup"].V, f["lookup"].Path, hint, "unknown lookup %q", s)
			}
		}
		if s, good := p.Str(f["as"].V, f["as"].Path); good {
			switch {
			case !identRE.MatchString(s):
				p.Add(f["as"].V, f["as"].Path, "use letters, digits and underscores, e.g. order", "invalid join name %q", s)
			case s == "item":
				p.Add(f["as"].V, f["as"].Path, "pick another name", "item is the element of each; a join cannot be called item")
			case slices.ContainsFunc(p.m.joins, func(o *join) bool { return o.as == s }):
				p.Add(f["as"].V, f["as"].Path, "give each join its own name", "two joins are called %q", s)
			default:
				j.as = s
			}
		}
		if s, good := p.Str(f["on"].V, f["on"].Path); good {
			pt, err := compilePath(s, pathScope{joins: p.m.joins, debezium: p.m.debezium, csv: p.m.csv})
			if err != nil {
				p.Add(f["on"].V, f["on"].Path, "", "%v", err)
			} else {
				first := strings.SplitN(s, ".", 2)[0]
				if pt.root == rootRecord && len(pt.segs) > 1 && slices.Contains(later, first) && first != j.as {
					p.Add(f["on"].V, f["on"].Path, "joins apply in order: move the join called "+first+" before this one", "%s is joined after this join", first)
				} else if first == j.as && len(pt.segs) > 1 {
					p.Add(f["on"].V, f["on"].Path, "", "a join cannot use its own row")
				}
				j.on = pt
				p.checkCSVPath(pt, f["on"].V, f["on"].Path)
			}
		}
		if o, has := f["optional"]; has {
			j.optional, _ = p.Bool(o.V, o.Path)
		}
		if j.as != "" && j.lookup != "" {
			p.m.joins = append(p.m.joins, j)
		}
	}
}

// checkCSVPath checks a CSV record path against csv.columns, when the
// mapping names the columns; otherwise the header is only known per input.
func (p *parser) checkCSVPath(pt *path, n *yaml.Node, path string) {
	if pt == nil || !pt.csv || pt.root != rootRecord {
		return
	}
	cols := p.m.Format.CSV.Columns
	if len(cols) == 0 {
		return
	}
	if slices.Contains(cols, pt.whole) {
		return
	}
	p.Add(n, path, yamlread.SuggestOr(pt.whole, cols), "there is no column %q in csv.columns", pt.whole)
}

// registerCSV gives a CSV record path its slot in Mapper.cols.
func (p *parser) registerCSV(pt *path) {
	if pt != nil && pt.csv && pt.root == rootRecord {
		pt.col = len(p.m.csvPaths)
		p.m.csvPaths = append(p.m.csvPaths, pt)
	}
}

func (p *parser) events(e kv, env *celEnv) {
	n := yamlread.Resolve(e.V)
	if yamlread.IsNull(n) || n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		p.Add(e.K, e.Path, "add at least one entry, e.g. - {type: purchase, key: customer_id, fields: {amount: amount}}", "no events entries")
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.Add(n, e.Path, "events is a list: start each entry with -", "expected a list of entries, found %s", yamlread.Describe(n))
		return
	}
	for i, c := range n.Content {
		if yamlread.IsNull(yamlread.Resolve(c)) {
			p.Add(c, fmt.Sprintf("%s[%d]", e.Path, i), "e.g. - {type: purchase, key: customer_id, fields: {amount: amount}}", "empty events entry")
			continue
		}
		if en := p.entry(i, yamlread.Resolve(c), fmt.Sprintf("%s[%d]", e.Path, i), env); en != nil {
			p.m.entries = append(p.m.entries, en)
		}
	}
	for _, j := range p.m.joins {
		p.registerCSV(j.on)
	}
	if p.m.position != nil {
		p.registerCSV(p.m.position)
	}
}

// target is what a value spec produces.
type target struct {
	typ   twinhub.FieldType
	field *schema.Field // nil for the key, id and time
	name  string        // the event field, for messages
}

func (p *parser) entry(i int, n *yaml.Node, path string, env *celEnv) *entry {
	f := byKey(p.Mapping(n, path, entryKeys, "a mapping with type:, key: and fields:"))
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	m := p.m
	en := &entry{index: i, name: path}
	ok := true
	if te, has := f["type"]; has {
		if s, good := p.Str(te.V, te.Path); good {
			if et, found := p.sc.EventType(s); found {
				en.et = et
			} else {
				names := make([]string, len(p.sc.Events))
				for k, t := range p.sc.Events {
					names[k] = t.Name
				}
				p.Add(te.V, te.Path, yamlread.SuggestOr(s, names), "unknown event type %q", s)
				ok = false
			}
		} else {
			ok = false
		}
	} else {
		p.Add(n, path+".type", "name an event type of the schema, e.g. type: purchase", "missing type")
		ok = false
	}
	sc := pathScope{joins: m.joins, debezium: m.debezium, csv: m.csv}
	if ee, has := f["each"]; has {
		if s, good := p.Str(ee.V, ee.Path); good {
			pt, err := compilePath(s, sc)
			switch {
			case err != nil:
				p.Add(ee.V, ee.Path, "", "%v", err)
			case pt.root == rootSpecial:
				p.Add(ee.V, ee.Path, "name an array, e.g. each: items", "each needs an array, not %s", s)
			default:
				p.checkCSVPath(pt, ee.V, ee.Path)
				p.registerCSV(pt)
				en.each = pt
			}
		}
		sc.each = true
	}
	if we, has := f["when"]; has {
		if s, good := p.Str(we.V, we.Path); good {
			en.whenText = s
			en.when = p.compileWhen(we.V, we.Path, s, env, sc)
		}
	}
	keyName := p.sc.Key
	if ke, has := f["key"]; has {
		en.key, _ = p.spec(ke.V, ke.Path, target{typ: twinhub.TypeString, name: keyName}, sc, false)
	} else {
		p.Add(n, path+".key", fmt.Sprintf("name the path of the twin key, e.g. key: %s", keyName), "missing key")
	}
	if ie, has := f["id"]; has {
		s, good := p.spec(ie.V, ie.Path, target{typ: twinhub.TypeString, name: schema.IDField}, sc, true)
		en.id = &s
		if good && en.each != nil && s.kind != skConst && !usesItem(&s) {
			p.Add(ie.V, ie.Path, "add {$index} or an item path, e.g. \"{order_id}-{$index}\"",
				"the id does not depend on the element, so every element of each would get the same id and count once")
		}
	}
	if te, has := f["time"]; has {
		s, _ := p.spec(te.V, te.Path, target{typ: twinhub.TypeTime, name: schema.TimeField}, sc, false)
		en.time = &s
	}
	if se, has := f["source"]; has {
		if s, good := p.Str(se.V, se.Path); good {
			t, off, err := compileTemplate(s, sc)
			if err != nil {
				p.addAt(p.scalarPos(se.V, se.Path, s, off), "", "%v", err)
			} else {
				for _, pt := range t.paths() {
					p.checkCSVPath(pt, se.V, se.Path)
					p.registerCSV(pt)
				}
				en.source = t
			}
		}
	}
	mapped := map[string]bool{}
	var fieldsNode *yaml.Node = n
	if fe, has := f["fields"]; has {
		fieldsNode = fe.K
		for _, c := range p.Mapping(fe.V, fe.Path, nil, "a mapping of event fields to paths") {
			if en.et == nil {
				continue
			}
			if c.Key == schema.IDField || c.Key == schema.TypeField || c.Key == schema.TimeField || c.Key == schema.SourceField || c.Key == keyName {
				set := c.Key
				if c.Key == keyName {
					set = "key"
				}
				p.Add(c.K, c.Path, fmt.Sprintf("set it with the entry's %s: instead", set),
					"%q is a common field, not one of %s's fields", c.Key, en.et.Name)
				continue
			}
			sf, found := en.et.Field(c.Key)
			if !found {
				names := make([]string, len(en.et.Fields))
				for k, ff := range en.et.Fields {
					names[k] = ff.Name
				}
				hint := yamlread.SuggestOr(c.Key, names)
				if len(names) == 0 {
					hint = en.et.Name + " declares no fields"
				}
				p.Add(c.K, c.Path, hint, "unknown field %q for event type %s", c.Key, en.et.Name)
				continue
			}
			mapped[c.Key] = true
			s, good := p.spec(c.V, c.Path, target{typ: sf.Type, field: sf, name: sf.Name}, sc, false)
			if !good {
				continue
			}
			fm := fieldMap{f: sf, spec: s}
			fm.name = ingest.AppendJSONString([]byte{','}, sf.Name)
			fm.name = append(fm.name, ':')
			en.fields = append(en.fields, fm)
		}
	}
	if en.et != nil {
		for _, sf := range en.et.Fields {
			if sf.Required && !mapped[sf.Name] {
				p.Add(fieldsNode, path+".fields", fmt.Sprintf("add e.g. %s: COLUMN", sf.Name),
					"event type %s requires field %s, which is not mapped", en.et.Name, sf.Name)
			}
		}
	}
	if !ok || en.et == nil {
		return nil
	}
	head := []byte(`","type":`)
	head = ingest.AppendJSONString(head, en.et.Name)
	head = append(head, ',')
	head = ingest.AppendJSONString(head, keyName)
	en.head = append(head, ':', '"')
	return en
}

// usesItem reports whether a spec depends on the element of each.
func usesItem(s *valueSpec) bool {
	var ps []*path
	switch s.kind {
	case skPath:
		ps = []*path{s.path}
	case skTemplate:
		ps = s.tmpl.paths()
	}
	for _, pt := range ps {
		if pt != nil && pt.root == rootItem || pt.root == rootSpecial && pt.special == spIndex {
			return true
		}
	}
	return false
}

// spec parses a value: a path (or, for ids, a template) written as a
// string, or a mapping with from, const or template and the options.
func (p *parser) spec(n *yaml.Node, path string, t target, sc pathScope, plainIsTemplate bool) (valueSpec, bool) {
	n = yamlread.Resolve(n)
	s := valueSpec{at: where{path: path}}
	if n != nil {
		s.at.line, s.at.col = n.Line, n.Column
	}
	ok := true
	var fmtNode *yaml.Node
	var fmtText string
	switch {
	case n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		if plainIsTemplate {
			ok = p.template(&s, n, path, n.Value, sc)
		} else {
			ok = p.path(&s, n, path, n.Value, sc)
		}
	case n != nil && n.Kind == yaml.ScalarNode && !yamlread.IsNull(n):
		what := "a path"
		if plainIsTemplate {
			what = "a template"
		}
		p.Add(n, path, fmt.Sprintf("for a constant write {const: %s}; for a column named %s write \"%s\"", n.Value, n.Value, n.Value),
			"expected %s (a string), found %s", what, yamlread.Describe(n))
		return s, false
	case n != nil && n.Kind == yaml.MappingNode:
		f := byKey(p.Mapping(n, path, valueKeys, ""))
		var forms []string
		for _, k := range []string{"from", "const", "template"} {
			if _, has := f[k]; has {
				forms = append(forms, k)
			}
		}
		if len(forms) != 1 {
			hint := "e.g. {from: amount}, {const: store} or {template: \"{first} {last}\"}"
			if len(forms) == 0 {
				p.Add(n, path, hint, "give one of from, const or template")
			} else {
				p.Add(n, path, hint, "give only one of from, const or template, not %s", strings.Join(forms, " and "))
			}
			return s, false
		}
		switch forms[0] {
		case "from":
			if str, good := p.Str(f["from"].V, f["from"].Path); good {
				ok = p.path(&s, f["from"].V, f["from"].Path, str, sc)
			} else {
				ok = false
			}
		case "template":
			if str, good := p.Str(f["template"].V, f["template"].Path); good {
				ok = p.template(&s, f["template"].V, f["template"].Path, str, sc)
			} else {
				ok = false
			}
		case "const":
			s.kind = skConst
			s.lit, ok = p.literal(f["const"].V, f["const"].Path, litConst)
			s.at = where{line: f["const"].V.Line, col: f["const"].V.Column, path: f["const"].Path}
			if _, has := f["default"]; has {
				p.Add(f["default"].K, f["default"].Path, "remove it", "a const needs no default")
				ok = false
			}
		}
		if d, has := f["default"]; has && s.kind != skConst {
			s.def, _ = p.literal(d.V, d.Path, litDefault)
			s.defAt = where{line: d.V.Line, col: d.V.Column, path: d.Path}
		}
		if fe, has := f["format"]; has {
			if str, good := p.Str(fe.V, fe.Path); good {
				fmtNode, fmtText = fe.V, str
			}
			if t.typ != twinhub.TypeTime {
				p.Add(fe.K, fe.Path, "remove it: format applies only to time fields", "%s is a %s field, not a time", t.name, t.typ)
				fmtNode = nil
				ok = false
			}
		}
	default:
		p.Add(n, path, "write a path, e.g. amount, or {from: ...}, {const: ...} or {template: ...}", "expected a path or a mapping, found %s", yamlread.Describe(n))
		return s, false
	}
	if t.typ == twinhub.TypeTime && fmtNode != nil {
		tf, prob, hint := parseTimeFormat(fmtText)
		if prob != "" {
			p.Add(fmtNode, yamlread.Join(path, "format"), hint, "%s", prob)
			ok = false
		}
		s.tf = tf
	}
	return s, ok
}

func (p *parser) path(s *valueSpec, n *yaml.Node, path, text string, sc pathScope) bool {
	pt, err := compilePath(text, sc)
	if err != nil {
		p.Add(n, path, "", "%v", err)
		return false
	}
	p.checkCSVPath(pt, n, path)
	p.registerCSV(pt)
	s.kind, s.path = skPath, pt
	return true
}

func (p *parser) template(s *valueSpec, n *yaml.Node, path, text string, sc pathScope) bool {
	t, off, err := compileTemplate(text, sc)
	if err != nil {
		p.addAt(p.scalarPos(n, path, text, off), "", "%v", err)
		return false
	}
	for _, pt := range t.paths() {
		p.checkCSVPath(pt, n, path)
		p.registerCSV(pt)
	}
	if len(t.parts) == 1 && t.parts[0].path == nil {
		// No substitutions: a constant text.
		s.kind, s.lit = skConst, value{kind: kText, text: t.parts[0].lit, lit: litConst}
		return true
	}
	s.kind, s.tmpl = skTemplate, t
	return true
}

// literal reads a const or default: a scalar, kept as JSON when YAML typed
// it as a number or bool, as text otherwise.
func (p *parser) literal(n *yaml.Node, path string, origin uint8) (value, bool) {
	n = yamlread.Resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || yamlread.IsNull(n) {
		p.Add(n, path, "write a single value, e.g. store, 5 or true", "expected a single value, found %s", yamlread.Describe(n))
		return value{}, false
	}
	switch n.ShortTag() {
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return value{kind: kBool, n: map[bool]int64{true: 1}[b], lit: origin}, true
		}
	case "!!int", "!!float":
		if ok, _ := scanNumber(n.Value, '.'); ok {
			if _, prob := parseNumber(n.Value, '.'); prob == numOK {
				return value{kind: kFloat, text: n.Value, lit: origin}, true
			}
		}
	}
	return value{kind: kText, text: n.Value, lit: origin}, true
}

// scalarPos is where byte offset off of scalar n's text is, for template
// errors; it falls back to the scalar's own position.
func (p *parser) scalarPos(n *yaml.Node, path, text string, off int) where {
	if n == nil {
		return where{path: path}
	}
	line, col := p.exprPos(n, text, 1, utf8.RuneCountInString(text[:min(off, len(text))]))
	return where{line: line, col: col, path: path}
}

// exprPos maps a position inside scalar n's value (1-based line, 0-based
// column in code points) to a YAML line and column. Escapes in quoted
// scalars can shift it by a few columns.
func (p *parser) exprPos(n *yaml.Node, expr string, line, col int) (int, int) {
	return schema.ExprPosition(p.lines, n, expr, line, col)
}

// checkLiterals coerces every const and default to its target once, so
// that a constant that could never be valid is a Parse problem rather than
// a rejection of every record.
func (p *parser) checkLiterals(m *Mapping) {
	mp := m.NewMapper()
	keyName := m.schema.Key
	for _, en := range m.entries {
		check := func(s *valueSpec, t target) {
			if s == nil {
				return
			}
			try := func(v value, at where) {
				if v.kind == kAbsent {
					return
				}
				var err error
				switch {
				case t.field != nil:
					_, err = mp.appendTyped(nil, t.field.Type, t.field, &s.tf, &v, t.name)
				case t.typ == twinhub.TypeTime:
					_, err = mp.appendTyped(nil, twinhub.TypeTime, nil, &s.tf, &v, t.name)
				default:
					_, err = mp.text(&v, t.name)
				}
				if err != nil {
					msg := err.Error()
					var te *twinhub.Error
					if errors.As(err, &te) {
						msg = te.Message
					}
					p.addAt(at, "", "%s", msg)
				}
			}
			if s.kind == skConst {
				try(s.lit, s.at)
			}
			try(s.def, s.defAt)
		}
		check(&en.key, target{typ: twinhub.TypeString, name: keyName})
		check(en.id, target{typ: twinhub.TypeString, name: schema.IDField})
		check(en.time, target{typ: twinhub.TypeTime, name: schema.TimeField})
		for i := range en.fields {
			fm := &en.fields[i]
			check(&fm.spec, target{typ: fm.f.Type, field: fm.f, name: fm.f.Name})
		}
	}
}
