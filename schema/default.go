package schema

import (
	"bytes"
	_ "embed"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the text of the built-in retail-customer schema, a
// copy the caller may keep or change.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Default returns the built-in retail-customer schema, freshly parsed, so
// the caller may set its Version. It panics only if the embedded file is
// broken, which TestDefault rules out.
func Default() *Schema {
	s, err := Parse(defaultYAML)
	if err != nil {
		panic("schema: the built-in default.yaml is invalid: " + err.Error())
	}
	return s
}
