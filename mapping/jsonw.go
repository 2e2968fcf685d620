package mapping

import (
	"strconv"
	"unicode/utf8"
)

// quote quotes a text found in a record for an error message, cutting it
// short so that a huge cell does not make a huge message.
func quote(s string) string {
	const maxQuoted = 64
	if len(s) > maxQuoted {
		cut := maxQuoted
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}
