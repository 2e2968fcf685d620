package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/ingest"
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
	yamlLineRE   = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
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
	if len(p.problems) > 0 {
		sort.SliceStable(p.problems, func(i, j int) bool {
			a, b := p.problems[i], p.problems[j]
			if a.Line != b.Line {
				return a.Line < b.Line
			}
			return a.Column < b.Column
		})
		return nil, &schema.ValidationError{Problems: p.problems, Subject: "mapping"}
	}
	return m, nil
}

// parser walks the YAML node tree, collecting every problem it meets.
type parser struct {
	src      []byte
	lines    []string
	sc       *schema.Schema
	opts     Options
	m        *Mapping
	problems []schema.Problem
	declared map[string]bool // lookup names, loaded or not
}

func (p *parser) add(n *yaml.Node, path, hint, format string, args ...any) {
	var line, col int
	if n != nil {
		line, col = n.Line, n.Column
	}
	p.problems = append(p.problems, schema.Problem{Line: line, Column: col, Path: path, Message: fmt.Sprintf(format, args...), Hint: hint})
}

func schemaProblem(line, col int, path, msg, hint string) schema.Problem {
	return schema.Problem{Line: line, Column: col, Path: path, Message: msg, Hint: hint}
}

func (p *parser) addAt(w where, hint, format string, args ...any) {
	p.problems = append(p.problems, schema.Problem{Line: w.line, Column: w.col, Path: w.path, Message: fmt.Sprintf(format, args...), Hint: hint})
}

// kv is one key: value pair of a YAML mapping.
type kv struct {
	key  string
	k, v *yaml.Node
	path string
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func resolveNode(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describeNode names what a node is, for "expected X, found Y" messages.
func describeNode(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the bool " + n.Value
	}
	return strconv.Quote(n.Value)
}

// mapping returns the entries of mapping node n, reporting a node that is
// not a mapping, keys that are not names, keys declared twice and, when
// allowed is not nil, unknown keys.
func (p *parser) mapping(n *yaml.Node, path string, allowed []string, what string) []kv {
	n = resolveNode(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.add(n, path, "", "expected %s, found %s", what, describeNode(n))
		return nil
	}
	var out []kv
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolveNode(n.Content[i]), resolveNode(n.Content[i+1])
		if k == nil || k.Kind != yaml.ScalarNode || isNull(k) {
			p.add(n.Content[i], path, "keys are plain names", "expected a name as key, found %s", describeNode(k))
			continue
		}
		key := k.Value
		kp := joinPath(path, key)
		if prev, dup := seen[key]; dup {
			p.add(k, kp, "remove one of them", "%q is declared twice (first at line %d)", key, prev.Line)
			continue
		}
		seen[key] = k
		if allowed != nil && !slices.Contains(allowed, key) {
			p.add(k, kp, suggestOr(key, allowed), "unknown key %q", key)
			continue
		}
		out = append(out, kv{key: key, k: k, v: v, path: kp})
	}
	return out
}

func byKey(kvs []kv) map[string]kv {
	m := make(map[string]kv, len(kvs))
	for _, e := range kvs {
		m[e.key] = e
	}
	return m
}

func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		return n.Value, true
	}
	hint := ""
	if n != nil && n.Kind == yaml.ScalarNode && !isNull(n) {
		hint = "quote it to make it a string"
	}
	p.add(n, path, hint, "expected a string, found %s", describeNode(n))
	return "", false
}

func (p *parser) boolean(n *yaml.Node, path string) (bool, bool) {
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		var b bool
		if n.Decode(&b) == nil {
			return b, true
		}
	}
	p.add(n, path, "use true or false", "expected a bool, found %s", describeNode(n))
	return false, false
}

// scalars reads a list of scalars as their texts (null_values: ["", NA, 0]).
func (p *parser) scalars(n *yaml.Node, path string) ([]string, bool) {
	n = resolveNode(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		p.add(n, path, `write a list, e.g. ["", "NA"]`, "expected a list, found %s", describeNode(n))
		return nil, false
	}
	var out []string
	ok := true
	for i, c := range n.Content {
		c = resolveNode(c)
		if c == nil || c.Kind != yaml.ScalarNode {
			p.add(c, fmt.Sprintf("%s[%d]", path, i), "", "expected a text, found %s", describeNode(c))
			ok = false
			continue
		}
		out = append(out, c.Value)
	}
	return out, ok
}

// char reads a one-character option; "" gives 0 when allowEmpty.
func (p *parser) char(n *yaml.Node, path string, allowEmpty bool) (rune, bool) {
	s, ok := p.str(n, path)
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
			p.add(n, path, "use an ASCII character", "%q is not an ASCII character", s)
			return 0, false
		}
		if r == '\n' || r == '\r' {
			p.add(n, path, "", "a line break cannot be used here")
			return 0, false
		}
		return r, true
	}
	p.add(n, path, `one character, e.g. ";" or "\t"`, "expected one character, found %q", s)
	return 0, false
}

var yamlParserErrors = []string{
	"did not find expected <document start>", "did not find expected node content",
	"did not find expected '-' indicator", "did not find expected key",
	"did not find expected ',' or ']'", "did not find expected ',' or '}'",
}

func (p *parser) yamlError(err error) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if slices.Contains(yamlParserErrors, m[2]) {
			line++
		}
		p.problems = append(p.problems, schema.Problem{Line: line, Column: 1, Message: "YAML syntax: " + m[2],
			Hint: "check indentation, colons, brackets and quotes from this line on"})
		return
	}
	p.problems = append(p.problems, schema.Problem{Message: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: "),
		Hint: "check indentation, colons, brackets and quotes"})
}

const startHint = "start with source:, format: and events:"

// root decodes the YAML document and returns its top mapping.
func (p *parser) root() *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(p.src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add(nil, "", startHint, "the mapping is empty")
		} else {
			p.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.add(&extra, "", "a mapping is one YAML document: remove the --- separator", "more than one YAML document")
	} else if !errors.Is(err, io.EOF) {
		p.yamlError(err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			p.add(nil, "", startHint, "the mapping is empty")
			return nil
		}
		root = resolveNode(root.Content[0])
	}
	if isNull(root) {
		p.add(root, "", startHint, "the mapping is empty")
		return nil
	}
	if root.Kind != yaml.MappingNode {
		p.add(root, "", startHint, "expected a mapping at the top level, found %s", describeNode(root))
		return nil
	}
	return root
}

func (p *parser) document() *Mapping {
	root := p.root()
	if root == nil {
		return nil
	}
	if p.sc == nil {
		p.add(root, "", "", "no schema to map to")
		return nil
	}
	m := &Mapping{
		Src: bytes.Clone(p.src), schema: p.sc, dec: '.',
		nullValues: []string{""}, nullEmpty: true, trueValues: defaultTrue, falseValues: defaultFalse,
		lookups: map[string]*table{}, keepDeletes: true,
	}
	p.m = m
	top := byKey(p.mapping(root, "", topKeys, "a mapping"))

	if e, ok := top["source"]; ok {
		if s, ok := p.str(e.v, e.path); ok {
			switch {
			case len(s) > maxSourceLen:
				p.add(e.v, e.path, "", "the source name is longer than %d characters", maxSourceLen)
			case !sourceNameRE.MatchString(s):
				p.add(e.v, e.path, "use letters, digits, _, . and -, e.g. crm or shop.orders", "invalid source name %q", s)
			default:
				m.Source = s
			}
		}
	} else {
		p.add(root, "source", "name the source, e.g. source: crm", "missing source")
	}
	if e, ok := top["description"]; ok {
		m.Description, _ = p.str(e.v, e.path)
	}
	if e, ok := top["format"]; ok {
		if s, ok := p.str(e.v, e.path); ok {
			if k, ok := ingest.ParseFormatKind(s); ok {
				m.Format.Kind = k
			} else {
				p.add(e.v, e.path, suggestOr(s, formatNames), "unknown format %q", s)
			}
		}
	} else {
		p.add(root, "format", "one of csv, ndjson, json, debezium", "missing format")
	}
	m.csv = m.Format.Kind == ingest.FormatCSV
	m.debezium = m.Format.Kind == ingest.FormatDebezium
	if m.csv {
		m.Format.CSV = ingest.DefaultCSV()
	}
	if e, ok := top["csv"]; ok {
		if m.Format.Kind != 0 && !m.csv {
			p.add(e.k, e.path, "remove it, or use format: csv", "csv options apply only to format csv, not %s", m.Format.Kind)
		} else {
			m.Format.CSV = p.csvOptions(e, ingest.DefaultCSV())
			if m.csv && !m.Format.CSV.Header && len(m.Format.CSV.Columns) == 0 {
				p.add(e.k, e.path, "add columns: [name, ...] to name them", "without a header row the columns need names")
			}
		}
	}
	if e, ok := top["null_values"]; ok {
		if vs, ok := p.scalars(e.v, e.path); ok {
			m.nullValues = vs
			m.nullEmpty = len(vs) == 1 && vs[0] == ""
		}
	}
	if e, ok := top["true_values"]; ok {
		if vs, ok := p.scalars(e.v, e.path); ok {
			m.trueValues = vs
		}
	}
	if e, ok := top["false_values"]; ok {
		if vs, ok := p.scalars(e.v, e.path); ok {
			m.falseValues = vs
		}
	}
	for _, t := range m.trueValues {
		for _, f := range m.falseValues {
			if strings.EqualFold(t, f) {
				n := root
				if e, ok := top["false_values"]; ok {
					n = e.v
				}
				p.add(n, "false_values", "a text cannot mean both true and false", "%q is in both true_values and false_values", f)
			}
		}
	}
	if e, ok := top["time_zone"]; ok {
		if s, ok := p.str(e.v, e.path); ok {
			p.timeZone(e, s)
		}
	}
	if e, ok := top["decimal"]; ok {
		if s, ok := p.str(e.v, e.path); ok {
			if s == "." || s == "," {
				m.dec = s[0]
			} else {
				p.add(e.v, e.path, `"." or ","`, "invalid decimal separator %q", s)
			}
		}
	}
	if e, ok := top["debezium"]; ok {
		if m.Format.Kind != 0 && !m.debezium {
			p.add(e.k, e.path, "remove it, or use format: debezium", "debezium options apply only to format debezium, not %s", m.Format.Kind)
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
		p.add(root, "", "", "cannot build the expression environment: %v", err)
		return nil
	}
	if e, ok := top["events"]; ok {
		p.events(e, env)
	} else {
		p.add(root, "events", "add events: with at least one entry, e.g. - {type: purchase, key: customer_id, fields: {amount: amount}}", "missing events")
	}
	p.checkLiterals(m)
	if len(p.problems) > 0 {
		return nil
	}
	return m
}

func (p *parser) timeZone(e kv, s string) {
	switch s {
	case "", "UTC", "utc", "Z":
		return
	case "Local", "local":
		p.add(e.v, e.path, "name the zone, e.g. Europe/Berlin: the server's zone differs between machines", "time_zone Local depends on the machine")
		return
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		p.add(e.v, e.path, "use an IANA zone name such as America/Sao_Paulo, Europe/Berlin or UTC", "unknown time zone %q", s)
		return
	}
	p.m.loc = loc
}

func (p *parser) csvOptions(e kv, o ingest.CSVOptions) ingest.CSVOptions {
	for _, c := range p.mapping(e.v, e.path, csvKeys, "a mapping of CSV options") {
		switch c.key {
		case "delimiter":
			if r, ok := p.char(c.v, c.path, false); ok {
				o.Delimiter = r
			}
		case "quote":
			if r, ok := p.char(c.v, c.path, true); ok {
				o.Quote = r
			}
		case "header":
			if b, ok := p.boolean(c.v, c.path); ok {
				o.Header = b
			}
		case "columns":
			n := resolveNode(c.v)
			if n == nil || n.Kind != yaml.SequenceNode {
				p.add(c.v, c.path, "write a list, e.g. [customer_id, date, amount]", "expected a list of column names, found %s", describeNode(n))
				continue
			}
			cols := make([]string, 0, len(n.Content))
			for i, cn := range n.Content {
				cn = resolveNode(cn)
				if cn == nil || cn.Kind != yaml.ScalarNode || isNull(cn) {
					p.add(cn, fmt.Sprintf("%s[%d]", c.path, i), "", "expected a column name, found %s", describeNode(cn))
					continue
				}
				cols = append(cols, cn.Value)
			}
			o.Columns = cols
		case "encoding":
			if s, ok := p.str(c.v, c.path); ok {
				if enc, ok := encodings[strings.ToLower(s)]; ok {
					o.Encoding = enc
				} else {
					p.add(c.v, c.path, "one of utf-8, latin1, windows-1252", "unknown encoding %q", s)
				}
			}
		case "comment":
			if r, ok := p.char(c.v, c.path, true); ok {
				o.Comment = r
			}
		}
	}
	if o.Delimiter != 0 && o.Delimiter == o.Quote {
		p.add(e.k, e.path, "", "the delimiter and the quote are the same character %q", o.Delimiter)
	}
	return o
}

func (p *parser) debeziumOptions(e kv) {
	for _, c := range p.mapping(e.v, e.path, debeziumKeys, "a mapping of Debezium options") {
		switch c.key {
		case "on_delete":
			if s, ok := p.str(c.v, c.path); ok {
				switch s {
				case "clear":
					p.m.keepDeletes = true
				case "ignore":
					p.m.keepDeletes = false
				default:
					p.add(c.v, c.path, suggestOr(s, []string{"clear", "ignore"}), "unknown on_delete policy %q", s)
				}
			}
		case "position":
			if s, ok := p.str(c.v, c.path); ok {
				pt, err := compilePath(s, pathScope{debezium: true})
				if err != nil {
					p.add(c.v, c.path, "e.g. position: source.sequence", "%v", err)
				} else {
					p.m.position = pt
				}
			}
		}
	}
}

func (p *parser) lookups(e kv) {
	p.declared = map[string]bool{}
	for _, le := range p.mapping(e.v, e.path, nil, "a mapping of lookup names to their files") {
		p.declared[le.key] = true
		f := byKey(p.mapping(le.v, le.path, lookupKeys, "a mapping with file: and key:"))
		fe, okFile := f["file"]
		ke, okKey := f["key"]
		if !okFile {
			p.add(le.k, le.path+".file", "name the file, e.g. file: orders.csv", "missing file")
		}
		if !okKey {
			p.add(le.k, le.path+".key", "name the column that identifies a row, e.g. key: order_id", "missing key")
		}
		if !okFile || !okKey {
			continue
		}
		file, ok1 := p.str(fe.v, fe.path)
		key, ok2 := p.str(ke.v, ke.path)
		if !ok1 || !ok2 {
			continue
		}
		kind, ok := lookupKind(file)
		if !ok {
			p.add(fe.v, fe.path, "use a file ending in .csv, .tsv, .ndjson, .jsonl or .json (optionally .gz)", "cannot tell the format of %q from its name", file)
			continue
		}
		o := ingest.DefaultCSV()
		if kind == "tsv" {
			o.Delimiter = '\t'
		}
		if ce, ok := f["csv"]; ok {
			if kind != "csv" && kind != "tsv" {
				p.add(ce.k, ce.path, "remove it", "csv options apply only to CSV lookups, and %s is %s", file, kind)
			} else {
				o = p.csvOptions(ce, o)
				if !o.Header && len(o.Columns) == 0 {
					p.add(ce.k, ce.path, "add columns: [name, ...] to name them", "without a header row the columns need names")
					continue
				}
			}
		}
		if !filepath.IsLocal(file) {
			p.add(fe.v, fe.path, "put the file in the mapping's directory (or below it) and name it relative to it",
				"lookup file %q must be a relative path inside the mapping's directory", file)
			continue
		}
		data, err := p.opts.ReadFile(filepath.Join(p.opts.Dir, file))
		if err != nil {
			var pe *fs.PathError
			switch {
			case errors.Is(err, fs.ErrNotExist):
				p.add(fe.v, fe.path, "lookup files are relative to the mapping's directory", "lookup file %q does not exist", file)
			case errors.As(err, &pe):
				p.add(fe.v, fe.path, "", "cannot read lookup file %q: %v", file, pe.Err)
			default:
				p.add(fe.v, fe.path, "", "cannot read lookup file %q: %v", file, err)
			}
			continue
		}
		if data, err = readAllInput(data); err != nil {
			p.add(fe.v, fe.path, "", "cannot read lookup file %q: %v", file, err)
			continue
		}
		if len(data) > maxLookupSize {
			p.add(fe.v, fe.path, "", "lookup file %q is larger than %d bytes", file, maxLookupSize)
			continue
		}
		var t *table
		var probs []tableProblem
		if kind == "csv" || kind == "tsv" {
			t, probs = loadCSV(le.key, file, toUTF8(data, o.Encoding), o, key)
		} else {
			t, probs = loadJSON(le.key, file, data, key)
		}
		for _, pr := range probs {
			n, path := fe.v, fe.path
			if pr.atKey {
				n, path = ke.v, ke.path
			}
			p.add(n, path, pr.hint, "%s", pr.msg)
		}
		if t != nil {
			p.m.lookups[le.key] = t
		}
	}
}

func (p *parser) joins(e kv) {
	n := resolveNode(e.v)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n, e.path, "write a list, e.g. - {lookup: orders, on: order_id, as: order}", "expected a list of joins, found %s", describeNode(n))
		return
	}
	var later []string // as names, to explain an `on` that names a later join
	for _, c := range n.Content {
		if c = resolveNode(c); c != nil && c.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(c.Content); i += 2 {
				if c.Content[i].Value == "as" {
					later = append(later, c.Content[i+1].Value)
				}
			}
		}
	}
	for i, c := range n.Content {
		path := fmt.Sprintf("%s[%d]", e.path, i)
		c = resolveNode(c)
		f := byKey(p.mapping(c, path, joinKeys, "a mapping with lookup:, on: and as:"))
		if c == nil || c.Kind != yaml.MappingNode {
			continue
		}
		j := &join{}
		ok := true
		for _, k := range []string{"lookup", "on", "as"} {
			if _, has := f[k]; !has {
				p.add(c, path+"."+k, "a join needs lookup:, on: and as:", "missing %s", k)
				ok = false
			}
		}
		if !ok {
			continue
		}
		if s, good := p.str(f["lookup"].v, f["lookup"].path); good {
			j.lookup = s
			if t, found := p.m.lookups[s]; found {
				j.table = t
			} else if !p.declared[s] {
				var names []string
				for name := range p.declared {
					names = append(names, name)
				}
				sort.Strings(names)
				hint := suggestOr(s, names)
				if len(names) == 0 {
					hint = "declare it under lookups:"
				}
				p.add(f["lookup"].v, f["lookup"].path, hint, "unknown lookup %q", s)
			}
		}
		if s, good := p.str(f["as"].v, f["as"].path); good {
			switch {
			case !identRE.MatchString(s):
				p.add(f["as"].v, f["as"].path, "use letters, digits and underscores, e.g. order", "invalid join name %q", s)
			case s == "item":
				p.add(f["as"].v, f["as"].path, "pick another name", "item is the element of each; a join cannot be called item")
			case slices.ContainsFunc(p.m.joins, func(o *join) bool { return o.as == s }):
				p.add(f["as"].v, f["as"].path, "give each join its own name", "two joins are called %q", s)
			default:
				j.as = s
			}
		}
		if s, good := p.str(f["on"].v, f["on"].path); good {
			pt, err := compilePath(s, pathScope{joins: p.m.joins, debezium: p.m.debezium, csv: p.m.csv})
			if err != nil {
				p.add(f["on"].v, f["on"].path, "", "%v", err)
			} else {
				first := strings.SplitN(s, ".", 2)[0]
				if pt.root == rootRecord && len(pt.segs) > 1 && slices.Contains(later, first) && first != j.as {
					p.add(f["on"].v, f["on"].path, "joins apply in order: move the join called "+first+" before this one", "%s is joined after this join", first)
				} else if first == j.as && len(pt.segs) > 1 {
					p.add(f["on"].v, f["on"].path, "", "a join cannot use its own row")
				}
				j.on = pt
				p.checkCSVPath(pt, f["on"].v, f["on"].path)
			}
		}
		if o, has := f["optional"]; has {
			j.optional, _ = p.boolean(o.v, o.path)
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
	p.add(n, path, suggestOr(pt.whole, cols), "there is no column %q in csv.columns", pt.whole)
}

// registerCSV gives a CSV record path its slot in Mapper.cols.
func (p *parser) registerCSV(pt *path) {
	if pt != nil && pt.csv && pt.root == rootRecord {
		pt.col = len(p.m.csvPaths)
		p.m.csvPaths = append(p.m.csvPaths, pt)
	}
}

func (p *parser) events(e kv, env *celEnv) {
	n := resolveNode(e.v)
	if isNull(n) || n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		p.add(e.k, e.path, "add at least one entry, e.g. - {type: purchase, key: customer_id, fields: {amount: amount}}", "no events entries")
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n, e.path, "events is a list: start each entry with -", "expected a list of entries, found %s", describeNode(n))
		return
	}
	for i, c := range n.Content {
		if isNull(resolveNode(c)) {
			p.add(c, fmt.Sprintf("%s[%d]", e.path, i), "e.g. - {type: purchase, key: customer_id, fields: {amount: amount}}", "empty events entry")
			continue
		}
		if en := p.entry(i, resolveNode(c), fmt.Sprintf("%s[%d]", e.path, i), env); en != nil {
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
	f := byKey(p.mapping(n, path, entryKeys, "a mapping with type:, key: and fields:"))
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	m := p.m
	en := &entry{index: i, name: path}
	ok := true
	if te, has := f["type"]; has {
		if s, good := p.str(te.v, te.path); good {
			if et, found := p.sc.EventType(s); found {
				en.et = et
			} else {
				names := make([]string, len(p.sc.Events))
				for k, t := range p.sc.Events {
					names[k] = t.Name
				}
				p.add(te.v, te.path, suggestOr(s, names), "unknown event type %q", s)
				ok = false
			}
		} else {
			ok = false
		}
	} else {
		p.add(n, path+".type", "name an event type of the schema, e.g. type: purchase", "missing type")
		ok = false
	}
	sc := pathScope{joins: m.joins, debezium: m.debezium, csv: m.csv}
	if ee, has := f["each"]; has {
		if s, good := p.str(ee.v, ee.path); good {
			pt, err := compilePath(s, sc)
			switch {
			case err != nil:
				p.add(ee.v, ee.path, "", "%v", err)
			case pt.root == rootSpecial:
				p.add(ee.v, ee.path, "name an array, e.g. each: items", "each needs an array, not %s", s)
			default:
				p.checkCSVPath(pt, ee.v, ee.path)
				p.registerCSV(pt)
				en.each = pt
			}
		}
		sc.each = true
	}
	if we, has := f["when"]; has {
		if s, good := p.str(we.v, we.path); good {
			en.whenText = s
			en.when = p.compileWhen(we.v, we.path, s, env, sc)
		}
	}
	keyName := p.sc.Key
	if ke, has := f["key"]; has {
		en.key, _ = p.spec(ke.v, ke.path, target{typ: twinhub.TypeString, name: keyName}, sc, false)
	} else {
		p.add(n, path+".key", fmt.Sprintf("name the path of the twin key, e.g. key: %s", keyName), "missing key")
	}
	if ie, has := f["id"]; has {
		s, good := p.spec(ie.v, ie.path, target{typ: twinhub.TypeString, name: schema.IDField}, sc, true)
		en.id = &s
		if good && en.each != nil && s.kind != skConst && !usesItem(&s) {
			p.add(ie.v, ie.path, "add {$index} or an item path, e.g. \"{order_id}-{$index}\"",
				"the id does not depend on the element, so every element of each would get the same id and count once")
		}
	}
	if te, has := f["time"]; has {
		s, _ := p.spec(te.v, te.path, target{typ: twinhub.TypeTime, name: schema.TimeField}, sc, false)
		en.time = &s
	}
	if se, has := f["source"]; has {
		if s, good := p.str(se.v, se.path); good {
			t, off, err := compileTemplate(s, sc)
			if err != nil {
				p.addAt(p.scalarPos(se.v, se.path, s, off), "", "%v", err)
			} else {
				for _, pt := range t.paths() {
					p.checkCSVPath(pt, se.v, se.path)
					p.registerCSV(pt)
				}
				en.source = t
			}
		}
	}
	mapped := map[string]bool{}
	var fieldsNode *yaml.Node = n
	if fe, has := f["fields"]; has {
		fieldsNode = fe.k
		for _, c := range p.mapping(fe.v, fe.path, nil, "a mapping of event fields to paths") {
			if en.et == nil {
				continue
			}
			if c.key == schema.IDField || c.key == schema.TypeField || c.key == schema.TimeField || c.key == schema.SourceField || c.key == keyName {
				set := c.key
				if c.key == keyName {
					set = "key"
				}
				p.add(c.k, c.path, fmt.Sprintf("set it with the entry's %s: instead", set),
					"%q is a common field, not one of %s's fields", c.key, en.et.Name)
				continue
			}
			sf, found := en.et.Field(c.key)
			if !found {
				names := make([]string, len(en.et.Fields))
				for k, ff := range en.et.Fields {
					names[k] = ff.Name
				}
				hint := suggestOr(c.key, names)
				if len(names) == 0 {
					hint = en.et.Name + " declares no fields"
				}
				p.add(c.k, c.path, hint, "unknown field %q for event type %s", c.key, en.et.Name)
				continue
			}
			mapped[c.key] = true
			s, good := p.spec(c.v, c.path, target{typ: sf.Type, field: sf, name: sf.Name}, sc, false)
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
				p.add(fieldsNode, path+".fields", fmt.Sprintf("add e.g. %s: COLUMN", sf.Name),
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
	n = resolveNode(n)
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
	case n != nil && n.Kind == yaml.ScalarNode && !isNull(n):
		what := "a path"
		if plainIsTemplate {
			what = "a template"
		}
		p.add(n, path, fmt.Sprintf("for a constant write {const: %s}; for a column named %s write \"%s\"", n.Value, n.Value, n.Value),
			"expected %s (a string), found %s", what, describeNode(n))
		return s, false
	case n != nil && n.Kind == yaml.MappingNode:
		f := byKey(p.mapping(n, path, valueKeys, ""))
		var forms []string
		for _, k := range []string{"from", "const", "template"} {
			if _, has := f[k]; has {
				forms = append(forms, k)
			}
		}
		if len(forms) != 1 {
			hint := "e.g. {from: amount}, {const: store} or {template: \"{first} {last}\"}"
			if len(forms) == 0 {
				p.add(n, path, hint, "give one of from, const or template")
			} else {
				p.add(n, path, hint, "give only one of from, const or template, not %s", strings.Join(forms, " and "))
			}
			return s, false
		}
		switch forms[0] {
		case "from":
			if str, good := p.str(f["from"].v, f["from"].path); good {
				ok = p.path(&s, f["from"].v, f["from"].path, str, sc)
			} else {
				ok = false
			}
		case "template":
			if str, good := p.str(f["template"].v, f["template"].path); good {
				ok = p.template(&s, f["template"].v, f["template"].path, str, sc)
			} else {
				ok = false
			}
		case "const":
			s.kind = skConst
			s.lit, ok = p.literal(f["const"].v, f["const"].path, litConst)
			s.at = where{line: f["const"].v.Line, col: f["const"].v.Column, path: f["const"].path}
			if _, has := f["default"]; has {
				p.add(f["default"].k, f["default"].path, "remove it", "a const needs no default")
				ok = false
			}
		}
		if d, has := f["default"]; has && s.kind != skConst {
			s.def, _ = p.literal(d.v, d.path, litDefault)
			s.defAt = where{line: d.v.Line, col: d.v.Column, path: d.path}
		}
		if fe, has := f["format"]; has {
			if str, good := p.str(fe.v, fe.path); good {
				fmtNode, fmtText = fe.v, str
			}
			if t.typ != twinhub.TypeTime {
				p.add(fe.k, fe.path, "remove it: format applies only to time fields", "%s is a %s field, not a time", t.name, t.typ)
				fmtNode = nil
				ok = false
			}
		}
	default:
		p.add(n, path, "write a path, e.g. amount, or {from: ...}, {const: ...} or {template: ...}", "expected a path or a mapping, found %s", describeNode(n))
		return s, false
	}
	if t.typ == twinhub.TypeTime && fmtNode != nil {
		tf, prob, hint := parseTimeFormat(fmtText)
		if prob != "" {
			p.add(fmtNode, joinPath(path, "format"), hint, "%s", prob)
			ok = false
		}
		s.tf = tf
	}
	return s, ok
}

func (p *parser) path(s *valueSpec, n *yaml.Node, path, text string, sc pathScope) bool {
	pt, err := compilePath(text, sc)
	if err != nil {
		p.add(n, path, "", "%v", err)
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
	n = resolveNode(n)
	if n == nil || n.Kind != yaml.ScalarNode || isNull(n) {
		p.add(n, path, "write a single value, e.g. store, 5 or true", "expected a single value, found %s", describeNode(n))
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
