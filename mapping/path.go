package mapping

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/twinhub/twinhub/internal/yamlread"
)

// special is a value that is not in the record: $line, $table, ...
type special uint8

const (
	spNone special = iota
	spSource
	spFile
	spLine
	spRecord
	spIndex
	spOp
	spTable
	spPosition
	spSourceTS
)

var specialNames = map[string]special{
	"$source": spSource, "$file": spFile, "$line": spLine, "$record": spRecord, "$index": spIndex,
	"$op": spOp, "$table": spTable, "$position": spPosition, "$source_ts": spSourceTS,
}

var specialList = []string{"$source", "$file", "$line", "$record", "$index", "$op", "$table", "$position", "$source_ts"}

// root is where a path starts.
type root uint8

const (
	rootRecord   root = iota // the record: a CSV row, a JSON object, a Debezium row image
	rootItem                 // the element of the entry's each
	rootJoin                 // a joined lookup row
	rootSpecial              // a special value
	rootEnvelope             // a Debezium envelope member: after., before., source.
)

// seg is one step of a path: a member name, which is also an array index
// when it is a decimal number.
type seg struct {
	name  string
	index int // >= 0 when name is an array index
}

// path is a compiled path.
type path struct {
	text    string // as written
	root    root
	special special
	join    int    // rootJoin: index in Mapping.joins
	segs    []seg  // after the root (rootRecord, rootEnvelope: every segment)
	whole   string // the column name the whole path would be (CSV)
	col     int    // CSV record: slot in Mapper.cols; CSV join: column in the table; -1 otherwise
	csv     bool   // rootRecord of a CSV mapping
}

// splitPath splits a path into its segments. Backquoted segments are taken
// literally (they may contain dots and start with $); quoted reports
// whether the first one was, which keeps it from being read as item, a
// join, an envelope member or a $special.
func splitPath(s string) (segs []seg, quoted bool, err error) {
	if s == "" {
		return nil, false, fmt.Errorf("empty path")
	}
	for i := 0; ; {
		var name string
		isQuoted := false
		if i < len(s) && s[i] == '`' {
			j := strings.IndexByte(s[i+1:], '`')
			if j < 0 {
				return nil, false, fmt.Errorf("unclosed backquote in path %q", s)
			}
			name, isQuoted = s[i+1:i+1+j], true
			i += j + 2
			if i < len(s) && s[i] != '.' {
				return nil, false, fmt.Errorf("path %q: expected a dot after the backquoted name", s)
			}
		} else {
			j := strings.IndexByte(s[i:], '.')
			if j < 0 {
				j = len(s) - i
			}
			name = s[i : i+j]
			if strings.IndexByte(name, '`') >= 0 {
				return nil, false, fmt.Errorf("path %q: a backquote must start a name", s)
			}
			i += j
		}
		if name == "" {
			return nil, false, fmt.Errorf("path %q has an empty name", s)
		}
		if len(segs) == 0 {
			quoted = isQuoted
		} else if !isQuoted && name[0] == '$' {
			return nil, false, fmt.Errorf("path %q: %s can only stand alone", s, name)
		}
		idx := -1
		if n, err := strconv.Atoi(name); err == nil && n >= 0 && (name == "0" || name[0] != '0') && name[0] != '+' {
			idx = n
		}
		segs = append(segs, seg{name: name, index: idx})
		if i >= len(s) {
			break
		}
		i++ // the dot
		if i >= len(s) {
			return nil, false, fmt.Errorf("path %q ends with a dot", s)
		}
	}
	return segs, quoted, nil
}

// pathScope says what a path may refer to where it is written.
type pathScope struct {
	joins    []*join // visible joins
	each     bool    // inside an entry with each: item and $index exist
	debezium bool
	csv      bool
}

// compilePath parses and classifies path s.
func compilePath(s string, sc pathScope) (*path, error) {
	segs, quoted, err := splitPath(s)
	if err != nil {
		return nil, err
	}
	p := &path{text: s, col: -1, whole: s}
	first := segs[0].name
	switch {
	case !quoted && first[0] == '$':
		sp, ok := specialNames[first]
		if !ok {
			return nil, fmt.Errorf("unknown special value %s (%s)", first, yamlread.SuggestOr(first, specialList))
		}
		if len(segs) > 1 {
			return nil, fmt.Errorf("%s has no members", first)
		}
		switch sp {
		case spIndex:
			if !sc.each {
				return nil, fmt.Errorf("$index exists only in an entry with each")
			}
		case spOp, spTable, spPosition, spSourceTS:
			if !sc.debezium {
				return nil, fmt.Errorf("%s exists only for format debezium", first)
			}
		}
		p.root, p.special = rootSpecial, sp
		return p, nil
	case !quoted && first == "item" && sc.each:
		p.root, p.segs = rootItem, segs[1:]
		return p, nil
	case !quoted && sc.debezium && len(segs) > 1 && (first == "after" || first == "before" || first == "source"):
		p.root, p.segs = rootEnvelope, segs
		return p, nil
	}
	if !quoted {
		for i, j := range sc.joins {
			if j.as == first {
				p.root, p.join, p.segs = rootJoin, i, segs[1:]
				if j.table != nil && j.table.csv {
					if len(p.segs) == 0 {
						return nil, fmt.Errorf("%s is a whole lookup row; name one of its columns, e.g. %s.%s", first, first, j.table.cols[0])
					}
					name := p.segs[0].name
					if len(p.segs) > 1 {
						name = strings.TrimPrefix(s, first+".")
					}
					c, ok := j.table.colIdx[name]
					if !ok {
						if len(p.segs) > 1 {
							return nil, fmt.Errorf("lookup %s has no column %q (a CSV cell has no members)", j.lookup, name)
						}
						return nil, fmt.Errorf("lookup %s has no column %q (%s)", j.lookup, name, yamlread.SuggestOr(name, j.table.cols))
					}
					p.col = c
				}
				return p, nil
			}
		}
	}
	p.root, p.segs = rootRecord, segs
	if len(segs) == 1 {
		p.whole = segs[0].name
	}
	p.csv = sc.csv
	return p, nil
}

// describe names where a path reads, for messages: column "amount" for a
// CSV column, path "customer.age" otherwise.
func (p *path) describe() string {
	switch {
	case p.root == rootSpecial:
		return p.text
	case p.csv:
		return "column " + strconv.Quote(p.whole)
	}
	return "path " + strconv.Quote(p.text)
}

// template is text with {PATH} substitutions; {{ and }} are literal braces.
type template struct {
	text  string
	parts []tpart
}

type tpart struct {
	lit  string
	path *path // nil for a literal
}

// compileTemplate parses a template. It returns the byte offset of a syntax
// error in s for positioning.
func compileTemplate(s string, sc pathScope) (*template, int, error) {
	t := &template{text: s}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, tpart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			lit.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte('}')
			i++
		case c == '}':
			return nil, i, fmt.Errorf("template %q: unmatched }; write }} for a literal brace", s)
		case c == '{':
			end := -1
			inQuote := false
			for j := i + 1; j < len(s); j++ {
				if s[j] == '`' {
					inQuote = !inQuote
				} else if s[j] == '}' && !inQuote {
					end = j
					break
				}
			}
			if end < 0 {
				return nil, i, fmt.Errorf("template %q: unclosed {", s)
			}
			expr := strings.TrimSpace(s[i+1 : end])
			if expr == "" {
				return nil, i, fmt.Errorf("template %q: empty {}; write {{ for a literal brace", s)
			}
			p, err := compilePath(expr, sc)
			if err != nil {
				return nil, i + 1, fmt.Errorf("template %q: %v", s, err)
			}
			flush()
			t.parts = append(t.parts, tpart{path: p})
			i = end
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return t, 0, nil
}

// paths returns the template's paths.
func (t *template) paths() []*path {
	var ps []*path
	for _, pt := range t.parts {
		if pt.path != nil {
			ps = append(ps, pt.path)
		}
	}
	return ps
}
