package mapping

// EventTypes lists the event types the mapping produces, in entry order,
// each once.
func (m *Mapping) EventTypes() []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range m.entries {
		if !seen[e.et.Name] {
			seen[e.et.Name] = true
			out = append(out, e.et.Name)
		}
	}
	return out
}
