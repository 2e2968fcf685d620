package ingest

// Mark is a position in a Batch that Truncate rolls back to.
type Mark struct{ events, results, vals int }

// Mark returns the batch's current end.
func (b *Batch) Mark() Mark {
	return Mark{events: len(b.Events), results: len(b.Results), vals: len(b.vals)}
}

// Truncate drops every record decoded since m, accepted or not. A source
// record that fans out into several events is rejected as a whole this way
// when one of them fails: a record is never half-applied.
func (b *Batch) Truncate(m Mark) {
	clear(b.Events[m.events:])
	b.Events = b.Events[:m.events]
	for len(b.EventIndex) > 0 && b.EventIndex[len(b.EventIndex)-1] >= m.results {
		b.EventIndex = b.EventIndex[:len(b.EventIndex)-1]
	}
	b.Results = b.Results[:m.results]
	b.vals = b.vals[:m.vals]
}

// BeginBatch reads the clock once for the records decoded until EndBatch:
// they share one receive time, as the lines of one NDJSON body do.
func (d *Decoder) BeginBatch() { d.batchNow, d.inBatch = d.now(), true }

// EndBatch ends what BeginBatch started.
func (d *Decoder) EndBatch() { d.inBatch = false }

// Results returns the index in Results of the first record decoded after m.
func (m Mark) Results() int { return m.results }
