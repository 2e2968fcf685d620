package mapping

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/schema"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*.golden from Parse's output")

// TestInvalid parses every testdata/invalid/*.yaml (lookups relative to that
// directory) and compares the problems Parse reports, one per line, with
// the sibling .golden file. Run with -update after changing a message, and
// read the diff.
func TestInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	sc := testSchema(t)
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(src, sc, Options{Dir: "testdata/invalid"})
			if err == nil {
				t.Fatalf("Parse(%s) succeeded, want problems", file)
			}
			if m != nil {
				t.Errorf("Parse(%s) returned a Mapping with its error", file)
			}
			var ve *schema.ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("Parse(%s) error %T %v, want a *schema.ValidationError with problems", file, err, err)
			}
			if twinhub.ErrorCode(err) != twinhub.EINVALID || !strings.HasPrefix(twinhub.ErrorMessage(err), "invalid mapping: ") {
				t.Errorf("error code %s, message %q: want invalid, invalid mapping: ...", twinhub.ErrorCode(err), twinhub.ErrorMessage(err))
			}
			for _, p := range ve.Problems {
				if p.Message == "" {
					t.Errorf("problem without a message: %+v", p)
				}
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestInvalid -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Parse(%s) problems differ from %s\ngot:\n%s\nwant:\n%s", file, golden, got, want)
			}
		})
	}
}
