package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/mapping"
)

// ReplaySummary is the outcome of replaying dead letters.
type ReplaySummary struct {
	Replayed   int `json:"replayed"`   // dead letters that now went in (or were skipped by the mapping) and are gone
	Failed     int `json:"failed"`     // dead letters that failed again and stay, with their new reason
	Events     int `json:"events"`     // events accepted
	Duplicates int `json:"duplicates"` // events that were already there
	// Errors lists sources whose dead letters could not be tried at all
	// (no such source, or its mapping does not fit the schema).
	Errors []string `json:"errors,omitempty"`
}

// Replay runs dead letters again through their source's current mapping
// (mappingOf) and the active schema. Each record is ingested with the
// file, line and ordinal it was first read with, so a mapping's default
// event ids come out as they would have the first time: a replay never
// counts an event twice. A dead letter that now goes in is deleted; one
// that fails again is updated with its new reason and one more attempt.
// A dead letter given twice (the same ID) is replayed once.
func (im *Importer) Replay(ctx context.Context, dls []twinhub.DeadLetter, mappingOf func(source string) (*mapping.Mapping, error)) (ReplaySummary, error) {
	var sum ReplaySummary
	bySource := map[string][]twinhub.DeadLetter{}
	var order []string
	seen := make(map[uint64]bool, len(dls))
	for _, dl := range dls {
		if dl.ID != 0 && seen[dl.ID] { // named twice: replaying it twice would count it twice
			continue
		}
		seen[dl.ID] = true
		if _, ok := bySource[dl.Source]; !ok {
			order = append(order, dl.Source)
		}
		bySource[dl.Source] = append(bySource[dl.Source], dl)
	}
	for _, src := range order {
		var m *mapping.Mapping
		if src != EventsSource {
			var err error
			if m, err = mappingOf(src); err != nil {
				sum.Errors = append(sum.Errors, fmt.Sprintf("source %s: %s", src, twinhub.ErrorMessage(err)))
				continue
			}
		}
		if err := im.replaySource(ctx, m, src, bySource[src], &sum); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

func (im *Importer) replaySource(ctx context.Context, m *mapping.Mapping, src string, dls []twinhub.DeadLetter, sum *ReplaySummary) error {
	sc := im.Sink.Schema()
	lineage := src
	if m == nil {
		lineage = im.eventSource()
	}
	p := &producer{im: im, m: m, dec: ingest.NewDecoder(sc, im.Now, lineage), source: src}
	if m != nil {
		p.mp = m.NewMapper()
	}
	w := &work{}
	for len(dls) > 0 {
		chunk := dls[:min(len(dls), im.batchRecords())]
		dls = dls[len(chunk):]
		w.reset()
		failed := make([]int, len(chunk)) // index+1 into w.dead
		p.dec.BeginBatch()
		for i := range chunk {
			dl := &chunk[i]
			if dl.Truncated {
				// Only the record's first bytes were kept: mapping them
				// could take a cut-off record for a good one.
				rec := &ingest.Record{Raw: dl.Raw, Line: dl.Line, Index: dl.Record, Truncated: true,
					Err: fmt.Errorf("only the first %d bytes of this record were kept (it is longer than the reader's limit), so it cannot be replayed; fix the input and import it again", len(dl.Raw))}
				p.file = dl.File
				before := len(w.dead)
				p.record(w, rec)
				failed[i] = before + 1
				continue
			}
			rec, err := recordOf(m, dl)
			if err != nil {
				rec = &ingest.Record{Raw: dl.Raw, Header: dl.Header, Line: dl.Line, Index: dl.Record, Err: err}
			}
			p.file = dl.File
			before := len(w.dead)
			p.record(w, rec)
			if len(w.dead) > before {
				failed[i] = before + 1
			}
		}
		p.dec.EndBatch()
		if err := im.ingest(ctx, sc, w); err != nil {
			return err
		}
		sum.Events += w.sum.Events
		sum.Duplicates += w.sum.Duplicates
		var done []uint64
		now := im.now().UTC()
		for i := range chunk {
			dl := chunk[i]
			if failed[i] == 0 {
				done = append(done, dl.ID)
				continue
			}
			again := w.dead[failed[i]-1]
			dl.Field, dl.Reason, dl.Time = again.Field, again.Reason, now
			dl.Attempts++
			if err := im.DeadLetters.UpdateDeadLetter(dl); err != nil {
				return fmt.Errorf("update dead letter %d: %w", dl.ID, err)
			}
			sum.Failed++
		}
		if len(done) > 0 {
			if err := im.DeadLetters.DeleteDeadLetters(done); err != nil {
				return fmt.Errorf("delete replayed dead letters: %w", err)
			}
			sum.Replayed += len(done)
		}
	}
	return nil
}

// recordOf rebuilds the record a dead letter was read as. A CSV record is
// split again with its header; the raw bytes are UTF-8 already.
func recordOf(m *mapping.Mapping, dl *twinhub.DeadLetter) (*ingest.Record, error) {
	if m == nil || m.Format.Kind != ingest.FormatCSV || dl.Header == nil {
		return &ingest.Record{Raw: dl.Raw, Line: dl.Line, Index: dl.Record}, nil
	}
	opts := m.Format.CSV
	opts.Header, opts.Columns, opts.Encoding, opts.Comment = false, dl.Header, "utf-8", 0
	rr, err := ingest.NewRecordReader(bytes.NewReader(dl.Raw), ingest.Format{Kind: ingest.FormatCSV, CSV: opts})
	if err != nil {
		return nil, err
	}
	rec, err := rr.Next()
	if err != nil {
		return nil, fmt.Errorf("read the stored record again: %w", err)
	}
	rec.Line, rec.Index = dl.Line, dl.Record
	if rec.Err != nil {
		rec.Err = atLine(rec.Err, dl.Line)
	}
	return rec, nil
}

// atLine moves a reader error about a record read on its own, which
// counts lines from 1 ("line 1: 4 fields, ..."), to the record's line in
// its input.
func atLine(err error, line int) error {
	var te *twinhub.Error
	if !errors.As(err, &te) {
		return err
	}
	rest, ok := strings.CutPrefix(te.Message, "line ")
	if !ok {
		return err
	}
	n, msg, ok := strings.Cut(rest, ": ")
	k, convErr := strconv.Atoi(n)
	if !ok || convErr != nil || k < 1 {
		return err
	}
	return &twinhub.Error{Code: te.Code, Field: te.Field, Message: fmt.Sprintf("line %d: %s", line+k-1, msg)}
}
