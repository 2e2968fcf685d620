package mapping

import (
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/valyala/fastjson"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/schema"
)

// Output holds the canonical JSON events one record produced: possibly
// none, when every `when` was false or a Debezium change was skipped. It is
// reusable; Map resets it.
type Output struct {
	buf  []byte
	ends []int // end of each event in buf
}

// Reset empties o, keeping its memory.
func (o *Output) Reset() {
	o.buf = o.buf[:0]
	o.ends = o.ends[:0]
}

// Len returns the number of events.
func (o *Output) Len() int { return len(o.ends) }

// Event returns the i-th event as one line of canonical JSON, without a
// newline. It is valid until the next Map or Reset.
func (o *Output) Event(i int) []byte {
	start := 0
	if i > 0 {
		start = o.ends[i-1]
	}
	return o.buf[start:o.ends[i]:o.ends[i]]
}

// Mapper maps records with one Mapping. It is not safe for concurrent use;
// make one per goroutine. It keeps its buffers between records, so mapping
// a CSV record allocates nothing in the common case.
type Mapper struct {
	m     *Mapping
	p     fastjson.Parser // the record
	cellP fastjson.Parser // an each over a text holding a JSON array
	joinP []fastjson.Parser
	act   activation
	rec   *ingest.Record

	// The CSV header the column slots were resolved for, and the slots.
	hdr    []string
	cols   []int32
	hdrIdx map[string]int // for `record` in conditions; built when needed

	root *fastjson.Value // the JSON record, or the Debezium row image
	env  *fastjson.Value // the Debezium change event (payload)
	rows []joinRow

	item   value // the element of each
	index  int
	inEach bool

	// Debezium
	op       byte
	table    []byte
	pos, ts  int64
	hasPos   bool
	hasTS    bool
	clearing bool // a delete with on_delete: clear

	file     string // the last file name seen, and what derives from it
	fileBase string
	idPrefix []byte // SOURCE:FILE:
	hash     uint64
	hashed   bool

	key, id, tmp, num []byte
	celRec            recordMap
}

// joinRow is the row a join found for the current record.
type joinRow struct {
	row    int32
	ok     bool
	parsed *fastjson.Value // a JSON lookup row, parsed on first use
}

// NewMapper returns a Mapper for m.
func (m *Mapping) NewMapper() *Mapper {
	mp := &Mapper{
		m:     m,
		cols:  make([]int32, len(m.csvPaths)),
		rows:  make([]joinRow, len(m.joins)),
		joinP: make([]fastjson.Parser, len(m.joins)),
		key:   make([]byte, 0, 64),
		id:    make([]byte, 0, 128),
		tmp:   make([]byte, 0, 128),
		num:   make([]byte, 0, 32),
	}
	for i := range mp.cols {
		mp.cols[i] = -1
	}
	mp.act.mp = mp
	mp.celRec.src.mp = mp
	mp.setFile("")
	return mp
}

// Map maps one record into out, which it resets first: a CSV record from
// rec.Fields and rec.Header, a JSON or Debezium record from rec.Raw. file
// is the input's file name, "" when it has none (a body posted without a
// name): then default ids hash the record's bytes. On failure out is empty
// and the error is a *twinhub.Error whose Field names the event field (or
// id, time, the key field, a join's on path) and whose Message says the
// path, the text found and what was expected.
func (mp *Mapper) Map(rec *ingest.Record, file string, out *Output) error {
	out.Reset()
	if rec.Err != nil {
		return rec.Err
	}
	if err := mp.mapRecord(rec, file, out); err != nil {
		out.Reset()
		return err
	}
	return nil
}

func (mp *Mapper) mapRecord(rec *ingest.Record, file string, out *Output) error {
	m := mp.m
	mp.rec, mp.hashed, mp.inEach, mp.clearing = rec, false, false, false
	if file != mp.file {
		mp.setFile(file)
	}
	switch {
	case m.csv:
		mp.csvHeader(rec)
	case m.debezium:
		skip, err := mp.debezium(rec.Raw)
		if err != nil || skip {
			return err
		}
	default:
		v, err := mp.p.ParseBytes(rec.Raw)
		if err != nil {
			return &twinhub.Error{Code: twinhub.EINVALID, Message: "malformed JSON: " + err.Error()}
		}
		if v.Type() != fastjson.TypeObject {
			return &twinhub.Error{Code: twinhub.EINVALID, Message: "a record must be a JSON object, found " + v.Type().String()}
		}
		mp.root = v
	}
	if err := mp.join(); err != nil {
		return err
	}
	for _, en := range m.entries {
		mp.inEach = false
		if en.each == nil {
			if en.when != nil {
				ok, err := mp.when(en)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
			}
			if err := mp.emit(en, out); err != nil {
				return err
			}
			continue
		}
		if err := mp.each(en, out); err != nil {
			return err
		}
	}
	return nil
}

// each emits one event per element of the entry's array.
func (mp *Mapper) each(en *entry, out *Output) error {
	var v value
	mp.resolve(en.each, &v)
	var arr []*fastjson.Value
	switch v.kind {
	case kAbsent:
		if v.why == absNoColumn {
			return mp.noColumn(v.p, en.each.text)
		}
		return nil
	case kNull:
		return nil
	case kJSON:
		if v.j.Type() != fastjson.TypeArray {
			return twinhub.FieldErrorf(en.each.text, "each: %s: expected an array, found %s", v.origin(), v.found())
		}
		arr, _ = v.j.Array()
	case kText:
		t := strings.TrimSpace(v.text)
		if len(t) == 0 || t[0] != '[' {
			return twinhub.FieldErrorf(en.each.text, "each: %s: expected an array, found %s", v.origin(), v.found())
		}
		a, err := mp.cellP.Parse(t)
		if err != nil || a.Type() != fastjson.TypeArray {
			return twinhub.FieldErrorf(en.each.text, "each: %s: %s is not a JSON array", v.origin(), quote(v.text))
		}
		arr, _ = a.Array()
	default:
		return twinhub.FieldErrorf(en.each.text, "each: %s: expected an array, found %s", v.origin(), v.found())
	}
	mp.inEach = true
	for i, e := range arr {
		mp.index = i
		mp.jsonValue(e, nil, &mp.item)
		if en.when != nil {
			ok, err := mp.when(en)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		if err := mp.emit(en, out); err != nil {
			return err
		}
	}
	mp.inEach = false
	return nil
}

// emit appends the entry's event for the current record (and element).
func (mp *Mapper) emit(en *entry, out *Output) error {
	m := mp.m
	keyName := m.schema.Key
	var v value // one value at a time, on the stack
	if err := mp.eval(&en.key, keyName, &v); err != nil {
		return err
	}
	if v.kind == kAbsent || v.kind == kNull {
		return twinhub.FieldErrorf(keyName, "%s %s; every event needs the twin key", v.origin(), v.absentText())
	}
	ks, err := mp.text(&v, keyName)
	if err != nil {
		return err
	}
	mp.key = append(mp.key[:0], ks...)

	if en.id == nil {
		mp.defaultID(en)
	} else {
		if err := mp.eval(en.id, schema.IDField, &v); err != nil {
			return err
		}
		if v.kind == kAbsent || v.kind == kNull {
			return twinhub.FieldErrorf(schema.IDField, "%s %s; the id needs it", v.origin(), v.absentText())
		}
		s, err := mp.text(&v, schema.IDField)
		if err != nil {
			return err
		}
		mp.id = append(mp.id[:0], s...)
	}

	b := out.buf
	b = append(b, `{"id":"`...)
	b = ingest.AppendJSONEscaped(b, b2s(mp.id))
	b = append(b, en.head...)
	b = ingest.AppendJSONEscaped(b, b2s(mp.key))
	b = append(b, '"')

	if en.time != nil {
		if err := mp.eval(en.time, schema.TimeField, &v); err != nil {
			return err
		}
		if v.kind == kAbsent || v.kind == kNull {
			return twinhub.FieldErrorf(schema.TimeField, "%s %s; give the entry's time a default, or remove time: to use the receive time", v.origin(), v.absentText())
		}
		b = append(b, `,"time":`...)
		if b, err = mp.appendTyped(b, twinhub.TypeTime, nil, &en.time.tf, &v, schema.TimeField); err != nil {
			return err
		}
	} else if m.debezium && mp.hasTS {
		b = append(b, `,"time":"`...)
		sec, nsec, _ := unixInt(mp.ts, tkUnixMs)
		var ok bool
		if b, ok = appendRFC3339(b, sec, nsec); !ok {
			return twinhub.FieldErrorf(schema.TimeField, "source.ts_ms %d is outside the years %d to %d", mp.ts, minYear, maxYear)
		}
		b = append(b, '"')
	}

	b = append(b, `,"source":"`...)
	switch {
	case en.source != nil:
		if err := mp.render(en.source, schema.SourceField, &v); err != nil {
			return err
		}
		if v.kind != kText {
			return twinhub.FieldErrorf(schema.SourceField, "%s %s; the source template needs it", v.origin(), v.absentText())
		}
		b = ingest.AppendJSONEscaped(b, v.text)
	case m.debezium && len(mp.table) > 0:
		b = ingest.AppendJSONEscaped(b, b2s(mp.table))
	default:
		b = ingest.AppendJSONEscaped(b, m.Source)
	}
	b = append(b, '"')

	for i := range en.fields {
		fm := &en.fields[i]
		if mp.clearing && fm.spec.kind != skConst {
			b = append(b, fm.name...)
			b = append(b, "null"...)
			continue
		}
		if err := mp.eval(&fm.spec, fm.f.Name, &v); err != nil {
			return err
		}
		switch v.kind {
		case kAbsent:
			if fm.f.Required && !mp.clearing {
				return twinhub.FieldErrorf(fm.f.Name, "%s %s; %s is required for event type %s", v.origin(), v.absentText(), fm.f.Name, en.et.Name)
			}
			continue
		case kNull:
			b = append(b, fm.name...)
			b = append(b, "null"...)
			continue
		}
		b = append(b, fm.name...)
		if b, err = mp.appendTyped(b, fm.f.Type, fm.f, &fm.spec.tf, &v, fm.f.Name); err != nil {
			return err
		}
	}
	if mp.hasPos {
		b = append(b, `,"position":`...)
		b = strconv.AppendInt(b, mp.pos, 10)
	}
	b = append(b, '}')
	out.buf = b
	out.ends = append(out.ends, len(b))
	return nil
}

// defaultID writes the default id into mp.id: SOURCE:FILE:LINE for a named
// file, SOURCE:HASH otherwise, SOURCE:TABLE:KEY:POSITION for Debezium; then
// :ENTRY when the mapping has several entries and :INDEX inside each.
func (mp *Mapper) defaultID(en *entry) {
	m := mp.m
	id := mp.id[:0]
	switch {
	case m.debezium:
		id = append(id, m.Source...)
		id = append(id, ':')
		id = append(id, mp.table...)
		id = append(id, ':')
		id = append(id, mp.key...)
		id = append(id, ':')
		switch {
		case mp.hasPos:
			id = strconv.AppendInt(id, mp.pos, 10)
		case mp.hasTS:
			id = strconv.AppendInt(id, mp.ts, 10)
		default:
			id = appendHex16(id, mp.recordHash())
		}
	case mp.file != "":
		id = append(id, mp.idPrefix...)
		id = strconv.AppendInt(id, int64(mp.rec.Line), 10)
	default:
		id = append(id, m.Source...)
		id = append(id, ':')
		id = appendHex16(id, mp.recordHash())
	}
	if len(m.entries) > 1 {
		id = append(id, ':')
		id = strconv.AppendInt(id, int64(en.index), 10)
	}
	if mp.inEach {
		id = append(id, ':')
		id = strconv.AppendInt(id, int64(mp.index), 10)
	}
	mp.id = id
}

func (mp *Mapper) recordHash() uint64 {
	if !mp.hashed {
		mp.hash, mp.hashed = xxhash.Sum64(mp.rec.Raw), true
	}
	return mp.hash
}

func appendHex16(dst []byte, h uint64) []byte {
	for i := 60; i >= 0; i -= 4 {
		dst = append(dst, "0123456789abcdef"[h>>uint(i)&0xf])
	}
	return dst
}

// setFile remembers the input's file name: $file is its base name
// ("request" when there is none) and default ids start with SOURCE:FILE:.
func (mp *Mapper) setFile(file string) {
	mp.file = file
	base := file
	if i := strings.LastIndexAny(base, `/\`); i >= 0 {
		base = base[i+1:]
	}
	if file == "" {
		base = "request"
	}
	mp.fileBase = base
	mp.idPrefix = append(append(append(append(mp.idPrefix[:0], mp.m.Source...), ':'), base...), ':')
}

// csvHeader resolves the column slots for the record's header. Readers
// give every record of one input the same Header slice, so this runs once
// per input.
func (mp *Mapper) csvHeader(rec *ingest.Record) {
	h := rec.Header
	if h == nil {
		h = mp.m.Format.CSV.Columns
	}
	if len(h) == len(mp.hdr) && (len(h) == 0 || &h[0] == &mp.hdr[0]) {
		return
	}
	mp.hdr, mp.hdrIdx = h, nil
	for i, p := range mp.m.csvPaths {
		mp.cols[i] = int32(mp.colIndex(p.whole))
	}
}

// headerIndex maps column names to indexes, for conditions.
func (mp *Mapper) headerIndex() map[string]int {
	if mp.hdrIdx == nil {
		mp.hdrIdx = make(map[string]int, len(mp.hdr))
		for i, h := range mp.hdr {
			if _, dup := mp.hdrIdx[h]; !dup {
				mp.hdrIdx[h] = i
			}
		}
	}
	return mp.hdrIdx
}

// join finds each join's row, in order.
func (mp *Mapper) join() error {
	for i, j := range mp.m.joins {
		r := &mp.rows[i]
		r.ok, r.parsed = false, nil
		var v value
		mp.resolve(j.on, &v)
		switch v.kind {
		case kAbsent, kNull:
			if v.why == absNoColumn {
				return mp.noColumn(v.p, j.on.text)
			}
			if j.optional {
				continue
			}
			return twinhub.FieldErrorf(j.on.text, "%s %s; it is needed to find the row in lookup %s", v.origin(), v.absentText(), j.lookup)
		}
		k, err := mp.text(&v, j.on.text)
		if err != nil {
			return err
		}
		row, found := j.table.index[k]
		if !found {
			if j.optional {
				continue
			}
			return twinhub.FieldErrorf(j.on.text, "%s not found in lookup %s", quote(k), j.lookup)
		}
		r.row, r.ok = row, true
	}
	return nil
}

// joinJSON returns join i's row of a JSON lookup, parsing it on first use.
func (mp *Mapper) joinJSON(i int) *fastjson.Value {
	r := &mp.rows[i]
	if r.parsed == nil {
		v, err := mp.joinP[i].Parse(mp.m.joins[i].table.rowJSON(r.row))
		if err != nil {
			return nil // rows were re-marshalled at load; cannot happen
		}
		r.parsed = v
	}
	return r.parsed
}
