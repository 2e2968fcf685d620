package mapping

import (
	"strings"

	"github.com/twinhub/twinhub/schema"
)

// suggestOr returns schema.Suggest's "did you mean" hint, or else "one of"
// the candidates.
func suggestOr(s string, candidates []string) string {
	if h := schema.Suggest(s, candidates); h != "" {
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
