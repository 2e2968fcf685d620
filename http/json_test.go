package http

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/twinhub/twinhub/ingest"
)

// FuzzAppendJSONString checks that every string, valid UTF-8 or not, comes
// out as one valid JSON string that decodes back to it (invalid bytes as
// U+FFFD), as encoding/json would have it.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "e-1", `say "hi"\`, "tab\there\nnew\x00\x1f", "caf\u00e9 \u2028\u2029 \U0001F600", "bad \xff\xfe byte", "\xe2\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := ingest.AppendJSONString([]byte("x"), s)[1:]
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("ingest.AppendJSONString(%q) = %s: %v", s, out, err)
		}
		want, _ := json.Marshal(s) // encoding/json also maps invalid bytes to U+FFFD
		var wantS string
		json.Unmarshal(want, &wantS)
		if got != wantS {
			t.Fatalf("ingest.AppendJSONString(%q) decodes to %q, want %q", s, got, wantS)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("valid string %q changed to %q", s, got)
		}
	})
}
