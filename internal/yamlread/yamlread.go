// Package yamlread reads YAML documents node by node, as the schema and
// mapping parsers do: a Reader collects every problem it meets with its
// line, column, path and a hint, so that a user sees all of them at once
// rather than the first. It holds what both parsers need of YAML; what a
// document means stays with its parser.
package yamlread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a document.
type Problem struct {
	Line    int    `json:"line,omitempty"`   // 1-based position in the YAML; 0 when unknown
	Column  int    `json:"column,omitempty"` // 1-based, in characters
	Path    string `json:"path,omitempty"`   // where in the document, e.g. "aggregates.spend_30d.window"
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"` // how to fix it; may be empty
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d, column %d: ", p.Line, p.Column)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	if p.Hint != "" {
		b.WriteString(" (hint: ")
		b.WriteString(p.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Reader collects the problems of one document. Parsers embed it.
type Reader struct {
	Problems []Problem
}

// Add records a problem at node n (at no position when n is nil).
func (r *Reader) Add(n *yaml.Node, path, hint, format string, args ...any) {
	var line, col int
	if n != nil {
		line, col = n.Line, n.Column
	}
	r.Problems = append(r.Problems, Problem{Line: line, Column: col, Path: path, Message: fmt.Sprintf(format, args...), Hint: hint})
}

// Sorted returns the problems in document order (by line, then column;
// problems without a position first).
func (r *Reader) Sorted() []Problem {
	sort.SliceStable(r.Problems, func(i, j int) bool {
		a, b := r.Problems[i], r.Problems[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return r.Problems
}

// Root decodes src, one YAML document of the kind what ("schema",
// "mapping"), and returns its top-level mapping. When there is none it
// records why (an empty document, a syntax error at its line, a top level
// that is not a mapping) and returns nil; startHint says how a document of
// the kind begins. A second document is a problem too.
func (r *Reader) Root(src []byte, what, startHint string) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			r.Add(nil, "", startHint, "the %s is empty", what)
		} else {
			r.syntaxError(err)
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		r.Add(&extra, "", "a "+what+" is one YAML document: remove the --- separator", "more than one YAML document")
	} else if !errors.Is(err, io.EOF) {
		r.syntaxError(err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			r.Add(nil, "", startHint, "the %s is empty", what)
			return nil
		}
		root = Resolve(root.Content[0])
	}
	if IsNull(root) {
		r.Add(root, "", startHint, "the %s is empty", what)
		return nil
	}
	if root.Kind != yaml.MappingNode {
		r.Add(root, "", startHint, "expected a mapping at the top level, found %s", Describe(root))
		return nil
	}
	return root
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserErrors are the messages of yaml's parser (not its scanner).
// For them yaml reports the line before the one where the construct being
// parsed starts (a zero-based line number), so syntaxError adds one.
var yamlParserErrors = []string{
	"did not find expected <document start>", "did not find expected node content",
	"did not find expected '-' indicator", "did not find expected key",
	"did not find expected ',' or ']'", "did not find expected ',' or '}'",
}

// syntaxError records a YAML syntax error, at its line when it names one.
func (r *Reader) syntaxError(err error) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if slices.Contains(yamlParserErrors, m[2]) {
			line++
		}
		r.Problems = append(r.Problems, Problem{Line: line, Column: 1, Message: "YAML syntax: " + m[2],
			Hint: "check indentation, colons, brackets and quotes from this line on"})
		return
	}
	r.Problems = append(r.Problems, Problem{Message: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: "),
		Hint: "check indentation, colons, brackets and quotes"})
}

// Entry is one key: value pair of a mapping; V has its aliases resolved and
// Path is the key's path in the document.
type Entry struct {
	Key  string
	K, V *yaml.Node
	Path string
}

// Mapping returns the entries of mapping node n. It reports a node that is
// not a mapping (what names what was expected), keys that are not names,
// keys declared twice and, when allowed is not nil, keys not in allowed.
// Only good entries are returned; a null node has none.
func (r *Reader) Mapping(n *yaml.Node, path string, allowed []string, what string) []Entry {
	n = Resolve(n)
	if IsNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		r.Add(n, path, "", "expected %s, found %s", what, Describe(n))
		return nil
	}
	var out []Entry
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := Resolve(n.Content[i]), Resolve(n.Content[i+1])
		if k == nil || k.Kind != yaml.ScalarNode || IsNull(k) {
			r.Add(n.Content[i], path, "keys are plain names", "expected a name as key, found %s", Describe(k))
			continue
		}
		key := k.Value
		kp := Join(path, key)
		if prev, dup := seen[key]; dup {
			r.Add(k, kp, "remove one of them", "%q is declared twice (first at line %d)", key, prev.Line)
			continue
		}
		seen[key] = k
		if allowed != nil && !slices.Contains(allowed, key) {
			r.Add(k, kp, SuggestOr(key, allowed), "unknown key %q", key)
			continue
		}
		out = append(out, Entry{Key: key, K: k, V: v, Path: kp})
	}
	return out
}

// Str reads a string scalar.
func (r *Reader) Str(n *yaml.Node, path string) (string, bool) {
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		return n.Value, true
	}
	hint := ""
	if n != nil && n.Kind == yaml.ScalarNode && !IsNull(n) {
		hint = "quote it to make it a string"
	}
	r.Add(n, path, hint, "expected a string, found %s", Describe(n))
	return "", false
}

// Bool reads a bool scalar.
func (r *Reader) Bool(n *yaml.Node, path string) (bool, bool) {
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		var b bool
		if n.Decode(&b) == nil {
			return b, true
		}
	}
	r.Add(n, path, "use true or false", "expected a bool, found %s", Describe(n))
	return false, false
}

// Resolve follows aliases to the node they name; nil for a chain of more
// than 16 aliases (a document cannot make a reader loop).
func Resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// IsNull reports whether n is absent or null.
func IsNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// Describe names what a node is, for "expected X, found Y" messages.
func Describe(n *yaml.Node) string {
	switch {
	case IsNull(n):
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
	case "!!timestamp":
		return "the timestamp " + n.Value
	}
	return strconv.Quote(n.Value)
}

// Join appends key to a document path: "aggregates" and "spend_30d" make
// "aggregates.spend_30d".
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Suggest returns a "did you mean" hint naming the candidate nearest to s,
// or "" when none is near enough to be a likely typo.
func Suggest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(1, len(s)/3)
	if bestD < 0 || bestD > limit || bestD >= len(s) {
		return ""
	}
	return fmt.Sprintf("did you mean %q?", best)
}

// SuggestOr returns Suggest's hint, or else "one of " the candidates.
func SuggestOr(s string, candidates []string) string {
	if h := Suggest(s, candidates); h != "" {
		return h
	}
	return OneOf(candidates)
}

// OneOf lists candidates as a hint: "one of a, b, c"; "" for none.
func OneOf(candidates []string) string {
	if len(candidates) == 0 {
		return ""
	}
	return "one of " + strings.Join(candidates, ", ")
}

// editDistance is the optimal string alignment distance between a and b,
// in bytes: the Levenshtein distance, with a swap of two adjacent letters
// (form for from) counting as one edit.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		// Long names are not typos of short ones; skip the quadratic work.
		if a == b {
			return 0
		}
		return max(len(a), len(b))
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
