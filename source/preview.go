package source

import (
	"io"
	"time"

	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/mapping"
	"github.com/twinhub/twinhub/schema"
)

// Preview reads r through m and validates every event against sc exactly
// as Import would, without ingesting or keeping anything: for `twinhub
// mapping test`. fn sees each record with the canonical events it
// produces (none when skipped), or with its rejection. The Summary counts
// events produced in Events.
func Preview(m *mapping.Mapping, sc *schema.Schema, r io.Reader, file string, fn func(rec *ingest.Record, events [][]byte, rej *Rejection)) (Summary, error) {
	rr, err := ingest.NewRecordReader(r, m.Format)
	if err != nil {
		return Summary{}, err
	}
	p := &producer{
		im:     &Importer{MaxRejections: 1},
		m:      m,
		mp:     m.NewMapper(),
		dec:    ingest.NewDecoder(sc, time.Now, m.Source),
		file:   file,
		source: m.Source,
	}
	var sum Summary
	w := &work{}
	var evs [][]byte
	for {
		rec, err := rr.Next()
		if err == io.EOF {
			return sum, nil
		}
		if err != nil {
			return sum, &ReadError{Err: err}
		}
		w.reset()
		p.record(w, rec)
		sum.Records++
		sum.Skipped += w.sum.Skipped
		if w.sum.Rejected > 0 {
			sum.Rejected++
			fn(rec, nil, &w.sum.Rejections[0])
			continue
		}
		evs = evs[:0]
		for i := range w.b.Events {
			evs = append(evs, w.b.Events[i].Raw)
		}
		sum.Events += len(evs)
		fn(rec, evs, nil)
	}
}
