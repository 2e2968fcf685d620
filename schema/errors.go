package schema

import (
	"strings"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/internal/yamlread"
)

// Problem is one thing wrong with a schema document (or another YAML
// document Twinhub reads: a mapping).
type Problem = yamlread.Problem

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
func Suggest(s string, candidates []string) string { return yamlread.Suggest(s, candidates) }
