package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/mapping"
	"github.com/twinhub/twinhub/schema"
)

// Defaults for an Importer.
const (
	DefaultBatchRecords  = 2048
	DefaultMaxRejections = 100
	maxBatchEvents       = 8192 // a fan-out heavy batch is sent early
)

// EventsSource is the name dead letters of POST /v1/events carry: those
// records are events already and replay without a mapping.
const EventsSource = "events"

// Sink takes decoded batches: the engine.
type Sink interface {
	Ingest(ctx context.Context, b *ingest.Batch, sc *schema.Schema) error
	Schema() *schema.Schema
}

// DeadLetterStore keeps rejected records. store/pebble implements it.
type DeadLetterStore interface {
	AddDeadLetters(dls []twinhub.DeadLetter) error
	UpdateDeadLetter(dl twinhub.DeadLetter) error
	DeleteDeadLetters(ids []uint64) error
}

// Importer streams the records of an input through a mapping into a Sink.
// It is safe for concurrent use; each Import runs on its own buffers.
type Importer struct {
	Sink        Sink            // required
	DeadLetters DeadLetterStore // required
	// BatchRecords is how many records go to the engine together. Default
	// DefaultBatchRecords.
	BatchRecords int
	// MaxRejections bounds the rejections a Summary lists; every one is in
	// the dead letters regardless. Default DefaultMaxRejections.
	MaxRejections int
	// Now is the receive clock for events without a time and the reference
	// for the schema's max_future. Default time.Now.
	Now func() time.Time
	// EventSource is the lineage of replayed POST /v1/events records that
	// do not name their own source, as the API gives them. Default "api".
	EventSource string
	// OnBatch, when set, observes each batch the engine took: its source and
	// how many records were read, skipped and rejected.
	OnBatch func(source string, records, skipped, rejected int)
}

// Summary is the outcome of an import.
type Summary struct {
	Records    int         `json:"records"`    // records read
	Skipped    int         `json:"skipped"`    // records that produced no event
	Rejected   int         `json:"rejected"`   // records kept as dead letters
	Events     int         `json:"events"`     // events accepted
	Duplicates int         `json:"duplicates"` // events already there (same id)
	Rejections []Rejection `json:"rejections,omitempty"`
}

// Rejection says which record was rejected and why.
type Rejection struct {
	File       string `json:"file,omitempty"`
	Line       int    `json:"line,omitempty"`
	Record     int    `json:"record"`
	Field      string `json:"field,omitempty"`
	Reason     string `json:"reason"`
	DeadLetter uint64 `json:"dead_letter"` // its id in the dead letters
}

func (s *Summary) add(o *Summary, maxRejections int) {
	s.Records += o.Records
	s.Skipped += o.Skipped
	s.Rejected += o.Rejected
	s.Events += o.Events
	s.Duplicates += o.Duplicates
	if n := maxRejections - len(s.Rejections); n > 0 {
		s.Rejections = append(s.Rejections, o.Rejections[:min(n, len(o.Rejections))]...)
	}
}

// ReadError is an error reading the input (I/O, a broken gzip stream, a
// JSON array broken beyond recovery), as opposed to one of the engine.
type ReadError struct{ Err error }

func (e *ReadError) Error() string {
	msg := e.Err.Error()
	if strings.HasPrefix(msg, "read input: ") { // the reader's own I/O errors say so already
		return msg
	}
	return "read input: " + msg
}
func (e *ReadError) Unwrap() error { return e.Err }

// work is one batch on its way from the reader to the engine.
type work struct {
	b     ingest.Batch
	spans []span // one per record that produced events
	dead  []twinhub.DeadLetter
	sum   Summary // Records, Skipped, Rejected; the rest once ingested
}

// span says which results of the batch belong to one record.
type span struct{ first, n int }

func (w *work) reset() {
	w.b.Reset()
	w.spans = w.spans[:0]
	clear(w.dead)
	w.dead = w.dead[:0]
	w.sum = Summary{}
}

func (im *Importer) batchRecords() int {
	if im.BatchRecords > 0 {
		return im.BatchRecords
	}
	return DefaultBatchRecords
}

func (im *Importer) now() time.Time {
	if im.Now != nil {
		return im.Now()
	}
	return time.Now()
}

func (im *Importer) eventSource() string {
	if im.EventSource != "" {
		return im.EventSource
	}
	return "api"
}

func (im *Importer) maxRejections() int {
	if im.MaxRejections > 0 {
		return im.MaxRejections
	}
	return DefaultMaxRejections
}

// Import reads r in m's format, maps every record and ingests the events.
// file names the input for positions and default event ids ("" for an
// unnamed upload). progress, when set, is called after each batch with the
// totals so far. On an error that ends the input (I/O, a broken gzip
// stream, the engine) Import returns the totals of the batches already
// ingested with the error; importing the input again is safe, as event ids
// are deterministic.
func (im *Importer) Import(ctx context.Context, m *mapping.Mapping, r io.Reader, file string, progress func(Summary)) (Summary, error) {
	rr, err := ingest.NewRecordReader(r, m.Format)
	if err != nil {
		if _, ok := errors.AsType[*twinhub.Error](err); !ok {
			err = &ReadError{Err: err} // the input failed in its first bytes
		}
		return Summary{}, err
	}
	sc := im.Sink.Schema()
	p := &producer{
		im:     im,
		m:      m,
		mp:     m.NewMapper(),
		dec:    ingest.NewDecoder(sc, im.Now, m.Source),
		file:   file,
		source: m.Source,
	}
	next := func() (*ingest.Record, error) { return rr.Next() }
	return im.run(ctx, sc, p, next, progress)
}

// run pipelines a producer (read, map, decode) with the engine: while the
// engine applies one batch, the next one is being prepared.
func (im *Importer) run(ctx context.Context, sc *schema.Schema, p *producer, next func() (*ingest.Record, error), progress func(Summary)) (Summary, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const depth = 2
	free := make(chan *work, depth+1)
	for range depth + 1 {
		free <- &work{}
	}
	full := make(chan *work, depth)
	prodErr := make(chan error, 1)
	go func() {
		defer close(full)
		prodErr <- p.produce(ctx, next, free, full)
	}()

	var total Summary
	var err error
	for w := range full {
		if err == nil {
			err = im.commit(ctx, sc, p.source, w)
			if err == nil {
				total.add(&w.sum, im.maxRejections())
				if progress != nil {
					progress(total)
				}
			} else {
				cancel() // stop the producer; drain what it sent
			}
		}
		w.reset()
		free <- w
	}
	if perr := <-prodErr; err == nil && perr != nil && !errors.Is(perr, context.Canceled) {
		err = perr
	}
	if err == nil {
		err = ctx.Err()
	}
	return total, err
}

// commit ingests one batch and then stores its dead letters.
func (im *Importer) commit(ctx context.Context, sc *schema.Schema, source string, w *work) error {
	if err := im.ingest(ctx, sc, w); err != nil {
		return err
	}
	if len(w.dead) > 0 {
		now := im.now().UTC()
		for i := range w.dead {
			w.dead[i].Time = now
		}
		if err := im.DeadLetters.AddDeadLetters(w.dead); err != nil {
			return fmt.Errorf("store dead letters: %w", err)
		}
		for i := range w.sum.Rejections {
			w.sum.Rejections[i].DeadLetter = w.dead[i].ID
		}
	}
	if im.OnBatch != nil {
		im.OnBatch(source, w.sum.Records, w.sum.Skipped, w.sum.Rejected)
	}
	return nil
}

// ingest hands w's events to the engine and counts their outcomes.
func (im *Importer) ingest(ctx context.Context, sc *schema.Schema, w *work) error {
	if err := im.Sink.Ingest(ctx, &w.b, sc); err != nil {
		return err
	}
	for _, sp := range w.spans {
		for _, res := range w.b.Results[sp.first : sp.first+sp.n] {
			switch res.Status {
			case twinhub.Accepted:
				w.sum.Events++
			case twinhub.Duplicate:
				w.sum.Duplicates++
			}
		}
	}
	return nil
}

// producer turns records into decoded batches. It runs on one goroutine.
type producer struct {
	im     *Importer
	m      *mapping.Mapping // nil for records that are events already
	mp     *mapping.Mapper
	dec    *ingest.Decoder
	file   string
	source string
	out    mapping.Output
	header []string // a copy of the input's header, shared by its dead letters
	hdrSrc []string // the reader's header slice that header copies
	// fileOf, when set, names each record's file instead of file: a replay
	// keeps every dead letter's own.
	fileOf func(rec *ingest.Record) string
}

func (p *producer) produce(ctx context.Context, next func() (*ingest.Record, error), free <-chan *work, full chan<- *work) error {
	per := p.im.batchRecords()
	var w *work
	get := func() bool {
		if w != nil {
			return true
		}
		select {
		case w = <-free:
			p.dec.BeginBatch()
			return true
		case <-ctx.Done():
			return false
		}
	}
	send := func() bool {
		p.dec.EndBatch()
		select {
		case full <- w:
			w = nil
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		rec, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if w != nil && w.sum.Records > 0 {
				send()
			}
			return &ReadError{Err: err}
		}
		if !get() {
			return ctx.Err()
		}
		p.record(w, rec)
		if w.sum.Records >= per || len(w.b.Events) >= maxBatchEvents {
			if !send() {
				return ctx.Err()
			}
		}
	}
	if w != nil && w.sum.Records > 0 && !send() {
		return ctx.Err()
	}
	return nil
}

// record maps and decodes one record into w, or keeps it as a dead letter.
func (p *producer) record(w *work, rec *ingest.Record) {
	w.sum.Records++
	file := p.file
	if p.fileOf != nil {
		file = p.fileOf(rec)
	}
	if rec.Err != nil {
		// The reader's message names the line, which the dead letter and
		// every listing already show.
		msg := strings.TrimPrefix(rec.Err.Error(), fmt.Sprintf("line %d: ", rec.Line))
		p.reject(w, rec, file, "", errors.New(msg))
		return
	}
	if p.m == nil { // an event already
		mark := w.b.Mark()
		if !p.dec.Decode(rec.Raw, &w.b) {
			res := w.b.Results[mark.Results()]
			w.b.Truncate(mark)
			p.reject(w, rec, file, res.Field, errors.New(res.Reason))
			return
		}
		w.spans = append(w.spans, span{first: mark.Results(), n: 1})
		return
	}
	if err := p.mp.Map(rec, file, &p.out); err != nil {
		var te *twinhub.Error
		field := ""
		if errors.As(err, &te) {
			field = te.Field
			err = errors.New(te.Message)
		}
		p.reject(w, rec, file, field, err)
		return
	}
	n := p.out.Len()
	if n == 0 {
		w.sum.Skipped++
		return
	}
	mark := w.b.Mark()
	for i := range n {
		if !p.dec.Decode(p.out.Event(i), &w.b) {
			res := w.b.Results[len(w.b.Results)-1]
			w.b.Truncate(mark)
			reason := res.Reason
			if n > 1 {
				reason = fmt.Sprintf("event %d of %d (%s): %s", i+1, n, eventType(p.out.Event(i)), reason)
			} else {
				reason = fmt.Sprintf("%s event: %s", eventType(p.out.Event(i)), reason)
			}
			p.reject(w, rec, file, res.Field, errors.New(reason))
			return
		}
	}
	w.spans = append(w.spans, span{first: mark.Results(), n: n})
}

func (p *producer) reject(w *work, rec *ingest.Record, file, field string, err error) {
	w.sum.Rejected++
	dl := twinhub.DeadLetter{
		Source:    p.source,
		File:      file,
		Line:      rec.Line,
		Record:    rec.Index,
		Field:     field,
		Reason:    err.Error(),
		Raw:       bytes.Clone(rec.Raw),
		Truncated: rec.Truncated,
		Header:    p.headerOf(rec),
	}
	w.dead = append(w.dead, dl)
	if len(w.sum.Rejections) < p.im.maxRejections() {
		w.sum.Rejections = append(w.sum.Rejections, Rejection{File: file, Line: rec.Line, Record: rec.Index, Field: field, Reason: dl.Reason})
	}
}

// headerOf returns a stable copy of rec's header: the reader's slice is
// only valid while it reads.
func (p *producer) headerOf(rec *ingest.Record) []string {
	if rec.Header == nil {
		return nil
	}
	if p.header == nil || !sameSlice(p.hdrSrc, rec.Header) {
		p.header = slices.Clone(rec.Header)
		p.hdrSrc = rec.Header
	}
	return p.header
}

func sameSlice(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// eventType reads the "type" member of a canonical event for a message.
func eventType(ev []byte) string {
	const k = `"type":"`
	i := bytes.Index(ev, []byte(k))
	if i < 0 {
		return "an"
	}
	rest := ev[i+len(k):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return string(rest[:j])
	}
	return "an"
}
