package mapping

import (
	"time"

	"cel.dev/cel-go/cel"

	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/schema"
)

// Options for Parse.
type Options struct {
	// Dir is the directory lookup files are relative to ("" = the current
	// directory). A lookup file must stay inside it: mappings may arrive
	// over HTTP, and must not read arbitrary files of the server.
	Dir string
	// ReadFile reads a lookup file; nil means os.ReadFile.
	ReadFile func(name string) ([]byte, error)
}

// Mapping is a parsed and compiled mapping. It is immutable and safe for
// concurrent use; each goroutine maps records with its own Mapper.
type Mapping struct {
	Source      string        // the source's name, and the default lineage of its events
	Description string        // free text
	Format      ingest.Format // how the source's input is read
	Src         []byte        // the YAML text it was parsed from

	schema      *schema.Schema
	csv         bool
	debezium    bool
	nullValues  []string
	nullEmpty   bool // nullValues is exactly [""]: the common case, one length test
	trueValues  []string
	falseValues []string
	dec         byte           // decimal separator: '.' or ','
	loc         *time.Location // zone of times without an offset; nil for UTC
	lookups     map[string]*table
	joins       []*join
	entries     []*entry
	csvPaths    []*path // record paths of a CSV mapping, by slot (path.col)
	keepDeletes bool    // on_delete: clear
	position    *path   // debezium.position; nil for the connector's own
}

// Schema returns the schema the mapping was compiled against. A mapping
// must be parsed again when the schema changes.
func (m *Mapping) Schema() *schema.Schema { return m.schema }

// join is one compiled join.
type join struct {
	lookup   string
	as       string
	on       *path
	optional bool
	table    *table
}

// entry is one compiled events entry.
type entry struct {
	index    int
	name     string // events[i], for messages
	et       *schema.EventType
	when     cel.Program // nil when the entry has no condition
	whenText string
	each     *path
	id       *valueSpec // nil: the default id
	key      valueSpec
	time     *valueSpec // nil: no time (Debezium: $source_ts)
	source   *template  // nil: the default source
	fields   []fieldMap
	head     []byte // `","type":"NAME","KEY":"`, between the id and the key
}

// fieldMap maps one event field.
type fieldMap struct {
	f    *schema.Field
	spec valueSpec
	name []byte // `,"NAME":`
}

// specKind is the form of a value: a path, a constant or a template.
type specKind uint8

const (
	skPath specKind = iota
	skConst
	skTemplate
)

// valueSpec is a compiled field value (or key, id, time).
type valueSpec struct {
	kind  specKind
	path  *path
	tmpl  *template
	lit   value // skConst
	def   value // the default; kind kAbsent when there is none
	tf    timeFormat
	at    where // where it is declared, for Parse problems
	defAt where // where its default is declared
}

// where is a position in the mapping's YAML.
type where struct {
	line, col int
	path      string
}

// describe names what a spec reads, for messages.
func (s *valueSpec) describe() string {
	switch s.kind {
	case skConst:
		return "const"
	case skTemplate:
		return "template " + quote(s.tmpl.text)
	}
	return s.path.describe()
}
