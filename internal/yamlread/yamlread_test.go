package yamlread

import (
	"strings"
	"testing"
)

// TestRootAndMapping reads small documents and checks the problems found,
// each with its position: what a user sees when a schema or mapping is
// wrong.
func TestRootAndMapping(t *testing.T) {
	allowed := []string{"entity", "key", "events"}
	tests := []struct {
		name, src string
		want      []string // Problem.String() of each, in order
	}{
		{"good", "entity: customer\nkey: customer_id\n", nil},
		{"empty", "", []string{"the schema is empty (hint: start here)"}},
		{"only a comment", "# nothing\n", []string{"the schema is empty (hint: start here)"}},
		{"not a mapping", "- a\n- b\n", []string{"line 1, column 1: expected a mapping at the top level, found a list (hint: start here)"}},
		{"two documents", "entity: a\n---\nentity: b\n", []string{"line 2, column 1: more than one YAML document (hint: a schema is one YAML document: remove the --- separator)"}},
		{"syntax error", "entity: a\nkey: [b\n", []string{"line 2, column 1: YAML syntax: did not find expected ',' or ']' (hint: check indentation, colons, brackets and quotes from this line on)"}},
		{"duplicate key", "entity: a\nentity: b\n", []string{`line 2, column 1: entity: "entity" is declared twice (first at line 1) (hint: remove one of them)`}},
		{"typo", "entty: a\n", []string{`line 1, column 1: entty: unknown key "entty" (hint: did you mean "entity"?)`}},
		{"unknown key", "colour: red\n", []string{`line 1, column 1: colour: unknown key "colour" (hint: one of entity, key, events)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Reader
			if root := r.Root([]byte(tc.src), "schema", "start here"); root != nil {
				r.Mapping(root, "", allowed, "a mapping")
			}
			var got []string
			for _, p := range r.Sorted() {
				got = append(got, p.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct{ s, want string }{
		{"purchse", `did you mean "purchase"?`},
		{"form", `did you mean "from"?`}, // a swap is one edit
		{"zzz", ""},
		{"x", ""}, // a one-letter name is no typo of anything
	} {
		if got := Suggest(tc.s, []string{"purchase", "from", "view"}); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.s, got, tc.want)
		}
	}
}
