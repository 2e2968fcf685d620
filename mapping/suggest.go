package mapping

import (
	"fmt"
	"strings"
)

// suggest returns a "did you mean" hint naming the candidate nearest to s,
// or "" when none is near enough to be a likely typo. It mirrors the
// schema package's, which is unexported.
func suggest(s string, candidates []string) string {
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
	if h := suggest(s, candidates); h != "" {
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

// editDistance is the optimal string alignment distance between a and b, in
// bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
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
