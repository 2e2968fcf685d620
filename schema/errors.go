package schema

import (
	"fmt"
	"strings"

	"github.com/twinhub/twinhub"
)

// Problem is one thing wrong with a schema document.
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

// ValidationError lists every problem Parse found in a schema, in document
// order. It unwraps to an EINVALID *twinhub.Error. Other YAML documents
// (mappings) report their problems with it too, naming themselves in Subject.
type ValidationError struct {
	Problems []Problem
	// Subject names the kind of document in the unwrapped message ("invalid
	// mapping: ..."); "schema" when empty.
	Subject string
}

// Error returns one line per problem.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the error as an EINVALID *twinhub.Error, so that
// twinhub.ErrorCode(err) is EINVALID and the HTTP layer answers 400.
func (e *ValidationError) Unwrap() error {
	subject := e.Subject
	if subject == "" {
		subject = "schema"
	}
	return &twinhub.Error{Code: twinhub.EINVALID, Message: "invalid " + subject + ": " + e.Error()}
}

// Suggest returns a "did you mean" hint naming the candidate nearest to s,
// or "" when none is near enough to be a likely typo. The mapping package
// uses it for its own problems.
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

// suggestOr returns suggest's hint, or else "one of " the candidates.
func suggestOr(s string, candidates []string) string {
	if h := Suggest(s, candidates); h != "" {
		return h
	}
	return oneOf(candidates)
}

func oneOf(candidates []string) string {
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
