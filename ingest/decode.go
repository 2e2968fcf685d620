package ingest

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/schema"
	"github.com/valyala/fastjson"
	"github.com/valyala/fastjson/fastfloat"
)

// Limits on one record's common fields. MaxPosition is the largest int64:
// MySQL binlog coordinates (file, offset, row) need 63 bits to order as
// the binlog does (see package mapping), so positions cannot stop at 2^53,
// the largest integer that JSON readers using doubles (JavaScript) read
// exactly. Twinhub reads and writes every position exactly.
const (
	MaxIDLen    = 256
	MaxKeyLen   = 256
	MaxPosition = math.MaxInt64
)

// Batch is a set of records decoded together. Events holds the accepted
// records in order; Results holds one entry per record, in order, with
// Status Rejected for those that failed validation (the engine later sets
// Accepted or Duplicate on the rest). EventIndex[i] is the position in
// Results of Events[i]. A Batch is reusable after Reset.
type Batch struct {
	Events     []twinhub.Event
	EventIndex []int
	Results    []twinhub.Result
	vals       []twinhub.Value
	mem        arena
}

// Reset empties b for reuse, keeping its memory.
func (b *Batch) Reset() {
	clear(b.Events) // drop references into the arena
	b.Events = b.Events[:0]
	b.EventIndex = b.EventIndex[:0]
	b.Results = b.Results[:0]
	b.vals = b.vals[:0]
	b.mem.reset()
}

// Counts returns how many records were accepted, duplicate and rejected.
func (b *Batch) Counts() (accepted, duplicate, rejected int) {
	for i := range b.Results {
		switch b.Results[i].Status {
		case twinhub.Accepted:
			accepted++
		case twinhub.Duplicate:
			duplicate++
		case twinhub.Rejected:
			rejected++
		}
	}
	return
}

// Decoder validates JSON records against one schema version. It is not safe
// for concurrent use.
type Decoder struct {
	s      *schema.Schema
	p      fastjson.Parser
	now    func() time.Time
	source string
	// Replay relaxes the checks that only make sense on arrival: unknown
	// fields are kept, the time bounds are not enforced and an invalid
	// position (kept as an unknown member before position was a common
	// field) reads as none, so that events accepted under an earlier schema
	// version are re-read as they were.
	Replay bool
	// Borrow lets events refer to the records passed to Decode instead of
	// copies: set it when every record stays valid and unchanged until its
	// Batch is Reset (an HTTP body kept until the request is answered).
	Borrow   bool
	members  []memberAt // one record's members
	scratch  []byte     // the members' bytes when fastjson read them
	batchNow time.Time
	inBatch  bool
}

// NewDecoder returns a Decoder for schema s. now supplies the receive time
// for records without "time" and the reference for max_future; source is the
// lineage recorded for events that do not name their own.
func NewDecoder(s *schema.Schema, now func() time.Time, source string) *Decoder {
	if now == nil {
		now = time.Now
	}
	return &Decoder{s: s, now: now, source: source}
}

// SetSource changes the lineage recorded for events that do not name their
// own source (replay restores each archived event's).
func (d *Decoder) SetSource(source string) { d.source = source }

// Schema returns the schema the decoder validates against.
func (d *Decoder) Schema() *schema.Schema { return d.s }

// DecodeNDJSON decodes every non-blank line of body into b. A bad line is
// recorded as rejected and never stops the others.
func (d *Decoder) DecodeNDJSON(body []byte, b *Batch) {
	// One receive time per body: reading the clock per record cost as much
	// as parsing a timestamp.
	d.batchNow, d.inBatch = d.now(), true
	defer func() { d.inBatch = false }()
	for len(body) > 0 {
		var line []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			line, body = body, nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		d.Decode(line, b)
	}
}

// Decode decodes one record into b, appending its Result (and its Event when
// it is valid). It reports whether the record was valid.
func (d *Decoder) Decode(rec []byte, b *Batch) bool {
	idx, start := len(b.Results), len(b.vals)
	b.Results = append(b.Results, twinhub.Result{Index: idx})
	// Decode in place: a separate Event would escape to the heap through
	// the Visit closure, one allocation per record.
	b.Events = append(b.Events, twinhub.Event{})
	ev := &b.Events[len(b.Events)-1]
	if err := d.decode(rec, b, ev); err != nil {
		r := &b.Results[idx]
		r.Status = twinhub.Rejected
		r.Field, r.Reason = err.Field, err.Message
		r.ID = ev.ID
		b.Events = b.Events[:len(b.Events)-1]
		b.vals = b.vals[:start] // the record's values are not kept
		return false
	}
	b.Results[idx].ID = ev.ID
	b.EventIndex = append(b.EventIndex, idx)
	return true
}

func (d *Decoder) decode(rec []byte, b *Batch, ev *twinhub.Event) *twinhub.Error {
	if !utf8.Valid(rec) {
		off := invalidUTF8Offset(rec)
		return &twinhub.Error{Code: twinhub.EINVALID, Message: fmt.Sprintf("record is not valid UTF-8 (bad byte at offset %d)", off)}
	}
	raw := rec
	if !d.Borrow {
		raw = b.mem.bytes(rec)
	}
	// Most records are flat objects of plain scalars: scanFlat reads those
	// in one pass, and their strings stay in raw, with no copy. Anything
	// else (escapes, nesting, malformed input) goes through fastjson, whose
	// strings live in its own buffer and are copied into the batch.
	ms, ok := scanFlat(raw, d.members[:0])
	d.members = ms // keep the grown capacity
	base := raw
	if !ok {
		if err := d.parseMembers(rec); err != nil {
			return err
		}
		ms, base = d.members, d.scratch
	}
	kept := keeper{mem: &b.mem, inRaw: ok}
	if err := d.fields(ms, base, kept, b, ev); err != nil {
		return err
	}
	ev.Raw = raw
	return nil
}

// member is one member of a record's top-level object: its key, its JSON
// type and, for a string, its unescaped bytes, for a number, its text.
type member struct {
	key []byte
	t   fastjson.Type
	s   []byte
}

// memberAt is a member as offsets into the buffer it was read from. A list
// of them holds no pointers, so filling it costs no write barriers.
type memberAt struct {
	key0, key1 int32
	s0, s1     int32
	t          fastjson.Type
}

func (sp *memberAt) member(base []byte) member {
	return member{key: base[sp.key0:sp.key1], t: sp.t, s: base[sp.s0:sp.s1]}
}

// parseMembers reads rec with fastjson, which handles all of JSON, into
// d.members over d.scratch, where it copies the members' keys and values.
func (d *Decoder) parseMembers(rec []byte) *twinhub.Error {
	d.members, d.scratch = d.members[:0], d.scratch[:0]
	v, err := d.p.ParseBytes(rec)
	if err != nil {
		return &twinhub.Error{Code: twinhub.EINVALID, Message: "malformed JSON: " + err.Error()}
	}
	o, err := v.Object()
	if err != nil {
		return &twinhub.Error{Code: twinhub.EINVALID, Message: "a record must be a JSON object, found " + v.Type().String()}
	}
	o.Visit(func(k []byte, fv *fastjson.Value) {
		sp := memberAt{key0: int32(len(d.scratch)), t: fv.Type()}
		d.scratch = append(d.scratch, k...)
		sp.key1, sp.s0 = int32(len(d.scratch)), int32(len(d.scratch))
		switch sp.t {
		case fastjson.TypeString:
			s, _ := fv.StringBytes()
			d.scratch = append(d.scratch, s...)
		case fastjson.TypeNumber:
			d.scratch = fv.MarshalTo(d.scratch) // a number's text, as it was sent
		}
		sp.s1 = int32(len(d.scratch))
		d.members = append(d.members, sp)
	})
	return nil
}

// keeper turns a member's bytes into a string that lives as long as the
// batch: bytes already in the record's kept copy are used as they are,
// others are copied into the batch's arena.
type keeper struct {
	mem   *arena
	inRaw bool
}

func (k keeper) string(s []byte) string {
	if k.inRaw {
		return b2s(s)
	}
	return k.mem.string(s)
}

// fields validates a record's members against the schema and fills ev.
// Members are taken in order, so a repeated one counts as its last
// occurrence, except the type, which is its first.
func (d *Decoder) fields(ms []memberAt, base []byte, kept keeper, b *Batch, ev *twinhub.Event) *twinhub.Error {
	// The event type decides which fields are declared, so read it first.
	var typ member
	for i := range ms {
		if string(base[ms[i].key0:ms[i].key1]) == "type" {
			typ = ms[i].member(base)
			break
		}
	}
	if typ.key == nil || typ.t == fastjson.TypeNull {
		return twinhub.FieldErrorf("type", "missing; every event needs a type (one of %s)", d.typeNames())
	}
	if typ.t != fastjson.TypeString {
		return twinhub.FieldErrorf("type", "expected string, found %s", typ.t)
	}
	et, ok := d.s.EventType(b2s(typ.s))
	if !ok {
		return twinhub.FieldErrorf("type", "unknown event type %q (known: %s)", typ.s, d.typeNames())
	}
	ev.Type = et.Index

	start := len(b.vals)
	for range et.Fields {
		b.vals = append(b.vals, twinhub.Value{})
	}
	ev.Vals = b.vals[start:len(b.vals):len(b.vals)]

	var haveTime bool
	var evTime time.Time
	var mv member
	m := &mv
	for i := range ms {
		// Field by field: a whole struct built and then copied costs a
		// stalled store forward per member.
		sp := &ms[i]
		m.key, m.t, m.s = base[sp.key0:sp.key1], sp.t, base[sp.s0:sp.s1]
		switch string(m.key) {
		case "type":
			continue
		case "id":
			s, e := stringField(m, "id", MaxIDLen)
			if e != nil {
				return e
			}
			ev.ID = kept.string(s)
			continue
		case d.s.Key:
			s, made, e := keyField(m, d.s.Key)
			if e != nil {
				return e
			}
			if made {
				ev.Key = b.mem.string(s)
			} else {
				ev.Key = kept.string(s)
			}
			continue
		case "time":
			if m.t == fastjson.TypeNull {
				continue
			}
			t, e := timeValue(m, "time")
			if e != nil {
				return e
			}
			evTime, haveTime = t, true
			continue
		case "source":
			if m.t == fastjson.TypeNull {
				continue
			}
			s, e := stringField(m, "source", MaxKeyLen)
			if e != nil {
				return e
			}
			ev.Source = kept.string(s)
			continue
		case schema.PositionField:
			if m.t == fastjson.TypeNull {
				continue
			}
			pos, e := positionValue(m)
			if e != nil && !d.Replay {
				return e
			}
			ev.Position = pos
			continue
		}
		f := fieldNamed(et, m.key)
		if f == nil {
			if d.s.UnknownFields == schema.PolicyReject && !d.Replay {
				return twinhub.FieldErrorf(string(m.key), "unknown field for event type %s (declared: %s)", et.Name, fieldNames(et))
			}
			continue
		}
		if m.t == fastjson.TypeNull {
			// An explicit null is not an absent field: it clears the
			// attribute the field sets. Aggregates ignore it (Set is false).
			ev.Vals[f.Slot] = twinhub.Value{Type: f.Type, Null: true}
			continue
		}
		if e := fieldValue(f, m, kept, &ev.Vals[f.Slot]); e != nil {
			return e
		}
	}
	if ev.ID == "" {
		return twinhub.FieldErrorf("id", "missing; every event needs a unique id so that a retry is not counted twice")
	}
	if ev.Key == "" {
		return twinhub.FieldErrorf(d.s.Key, "missing; every event needs the %s key of its %s", d.s.Key, d.s.Entity)
	}
	for _, f := range et.Fields {
		if f.Required && !ev.Vals[f.Slot].Set {
			return twinhub.FieldErrorf(f.Name, "missing; required for event type %s (%s)", et.Name, f.Type)
		}
	}
	now := d.batchNow
	if !d.inBatch {
		now = d.now()
	}
	if !haveTime {
		evTime = now
	} else if !d.Replay {
		if evTime.Before(d.s.MinTime) {
			return twinhub.FieldErrorf("time", "%s is before the schema's min_time %s", evTime.Format(time.RFC3339), d.s.MinTime.Format(time.RFC3339))
		}
		if limit := now.Add(d.s.MaxFuture); evTime.After(limit) {
			return twinhub.FieldErrorf("time", "%s is more than %s in the future (schema max_future)", evTime.Format(time.RFC3339), d.s.MaxFuture)
		}
	}
	ns, terr := unixNano(evTime, "time")
	if terr != nil {
		return terr
	}
	ev.Time = ns
	if ev.Source == "" {
		ev.Source = d.source
	}
	return nil
}

// fieldValue reads m as the value of field f into val. It fills val in
// place: a Value built and returned costs a stalled store forward when it
// is copied into place.
func fieldValue(f *schema.Field, m *member, kept keeper, val *twinhub.Value) *twinhub.Error {
	*val = twinhub.Value{Type: f.Type, Set: true} // a repeated member overwrites an earlier one
	switch f.Type {
	case twinhub.TypeString, twinhub.TypeEnum:
		if m.t != fastjson.TypeString {
			return twinhub.FieldErrorf(f.Name, "expected %s, found %s", f.Type, describe(m))
		}
		if f.Type == twinhub.TypeEnum && !contains(f.Enum, m.s) {
			return twinhub.FieldErrorf(f.Name, "%q is not one of %s", m.s, strings.Join(f.Enum, ", "))
		}
		val.Str = kept.string(m.s)
		return nil
	case twinhub.TypeNumber, twinhub.TypeInteger:
		if m.t != fastjson.TypeNumber {
			return twinhub.FieldErrorf(f.Name, "expected %s, found %s", f.Type, describe(m))
		}
		n, err := fastfloat.Parse(b2s(m.s))
		if err != nil || math.IsInf(n, 0) || math.IsNaN(n) {
			return twinhub.FieldErrorf(f.Name, "number %s out of range", m.s)
		}
		if f.Type == twinhub.TypeInteger && (n != math.Trunc(n) || math.Abs(n) > 1<<53) {
			return twinhub.FieldErrorf(f.Name, "expected integer, found %s", m.s)
		}
		if f.Min != nil && n < *f.Min {
			return twinhub.FieldErrorf(f.Name, "%s is below the minimum %s", m.s, strconv.FormatFloat(*f.Min, 'g', -1, 64))
		}
		if f.Max != nil && n > *f.Max {
			return twinhub.FieldErrorf(f.Name, "%s is above the maximum %s", m.s, strconv.FormatFloat(*f.Max, 'g', -1, 64))
		}
		val.Num = n
		return nil
	case twinhub.TypeBool:
		switch m.t {
		case fastjson.TypeTrue:
			val.Num = 1
		case fastjson.TypeFalse:
		default:
			return twinhub.FieldErrorf(f.Name, "expected bool, found %s", describe(m))
		}
		return nil
	case twinhub.TypeTime:
		t, err := timeValue(m, f.Name)
		if err != nil {
			return err
		}
		ns, err := unixNano(t, f.Name)
		if err != nil {
			return err
		}
		val.Num = twinhub.MicrosOf(ns)
		return nil
	}
	return twinhub.FieldErrorf(f.Name, "field has unsupported type %s", f.Type)
}

// timeValue accepts an RFC 3339 string or a number of unix milliseconds.
func timeValue(m *member, field string) (time.Time, *twinhub.Error) {
	switch m.t {
	case fastjson.TypeString:
		t, ok := parseTime(m.s)
		if !ok {
			return t, twinhub.FieldErrorf(field, "%q is not an RFC 3339 time (e.g. 2026-11-20T10:00:00Z)", m.s)
		}
		return t, nil
	case fastjson.TypeNumber:
		ms, err := fastfloat.Parse(b2s(m.s))
		if err != nil || math.IsNaN(ms) || math.Abs(ms) > 1e15 {
			return time.Time{}, twinhub.FieldErrorf(field, "%s is not a unix time in milliseconds", m.s)
		}
		return time.UnixMilli(int64(ms)).Add(time.Duration(math.Mod(ms, 1) * 1e6)).UTC(), nil
	}
	return time.Time{}, twinhub.FieldErrorf(field, "expected an RFC 3339 time string or unix milliseconds, found %s", describe(m))
}

// unixNano checks that t fits int64 nanoseconds.
func unixNano(t time.Time, field string) (int64, *twinhub.Error) {
	if !representable(t) {
		return 0, twinhub.FieldErrorf(field, "%s is outside the supported years %d to %d", t.Format(time.RFC3339), minYear, maxYear)
	}
	return t.UnixNano(), nil
}

// positionValue reads the common member position: a whole JSON number from
// 0 to MaxPosition. 5.0 and 5e3 are whole; the check is on the text, since a
// float64 cannot tell 2^63-1 from 2^63 or 3 from 3.0000000000000001.
func positionValue(m *member) (int64, *twinhub.Error) {
	const rule = "a position is a whole number from 0 to 9223372036854775807 (2^63-1)"
	if m.t != fastjson.TypeNumber {
		return 0, twinhub.FieldErrorf(schema.PositionField, "expected a whole number from 0 to 9223372036854775807 (2^63-1), found %s", describe(m))
	}
	n, err := fastfloat.ParseInt64(b2s(m.s)) // the usual case, a plain integer
	whole, over := true, false
	if err != nil {
		var ok bool
		n, whole, over, ok = integerText(string(m.s))
		if !ok {
			return 0, twinhub.FieldErrorf(schema.PositionField, "expected a whole number from 0 to 9223372036854775807 (2^63-1), found %s", shortNumber(m))
		}
	}
	switch {
	case n < 0:
		return 0, twinhub.FieldErrorf(schema.PositionField, "%s is negative; %s", shortNumber(m), rule)
	case !whole:
		return 0, twinhub.FieldErrorf(schema.PositionField, "%s is not a whole number; %s", shortNumber(m), rule)
	case over || n > MaxPosition:
		return 0, twinhub.FieldErrorf(schema.PositionField, "%s is too large; %s", shortNumber(m), rule)
	}
	return n, nil
}

// integerText reads s, the text of a JSON number, exactly. n is its value
// when whole and at most MaxPosition in magnitude, else only its sign (-1,
// 0 or 1); whole is false when it has a non-zero fractional part, over is
// true when its magnitude exceeds MaxPosition; ok is false when s is not a
// JSON number (the parser lets through such texts as "1-2" or "nan").
func integerText(s string) (n int64, whole, over, ok bool) {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	mant, expText, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, hasFrac := strings.Cut(mant, ".")
	if intPart == "" || !allDigits(intPart) || !allDigits(frac) || hasFrac && frac == "" {
		return 0, false, false, false
	}
	exp := 0
	if hasExp {
		e := expText
		if e != "" && (e[0] == '+' || e[0] == '-') {
			e = e[1:]
		}
		if e == "" || !allDigits(e) {
			return 0, false, false, false
		}
		// Exponents beyond a million only matter by their sign: the value
		// is then far from any position, or a fraction.
		for _, c := range e {
			if exp < 1<<20 {
				exp = exp*10 + int(c-'0')
			}
		}
		if strings.HasPrefix(expText, "-") {
			exp = -exp
		}
	}
	// The value is 0.digits * 10^point.
	digits := strings.TrimLeft(intPart+frac, "0")
	point := len(intPart) - (len(intPart) + len(frac) - len(digits)) + exp
	digits = strings.TrimRight(digits, "0")
	if digits == "" {
		return 0, true, false, true
	}
	sign := int64(1)
	if neg {
		sign = -1
	}
	if len(digits) > point {
		return sign, false, false, true
	}
	if point > len("9223372036854775807") {
		return sign, true, true, true
	}
	var u uint64 // 19 digits fit: 10^19 < 2^64
	for i := range point {
		u *= 10
		if i < len(digits) {
			u += uint64(digits[i] - '0')
		}
	}
	if u > MaxPosition {
		return sign, true, true, true
	}
	return sign * int64(u), true, false, true
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// shortNumber is a number's text for a message, cut at 40 characters.
func shortNumber(m *member) string {
	s := string(m.s)
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

func stringField(m *member, name string, maxLen int) ([]byte, *twinhub.Error) {
	if m.t != fastjson.TypeString {
		return nil, twinhub.FieldErrorf(name, "expected string, found %s", describe(m))
	}
	s := m.s
	if len(s) == 0 {
		return nil, twinhub.FieldErrorf(name, "must not be empty")
	}
	if len(s) > maxLen {
		return nil, twinhub.FieldErrorf(name, "is %d bytes long; at most %d allowed", len(s), maxLen)
	}
	return s, nil
}

// keyField accepts a string key, or an integer that is used as its decimal
// text; made reports that the key was made so, not taken from the member.
func keyField(m *member, name string) (key []byte, made bool, err *twinhub.Error) {
	if m.t == fastjson.TypeNumber {
		n, err := fastfloat.ParseInt64(b2s(m.s))
		if err != nil {
			return nil, false, twinhub.FieldErrorf(name, "expected a string or integer key, found %s", m.s)
		}
		return strconv.AppendInt(nil, n, 10), true, nil
	}
	s, ferr := stringField(m, name, MaxKeyLen)
	if ferr != nil {
		return nil, false, ferr
	}
	for i, c := range s {
		if c < 0x20 || c == 0x7f {
			return nil, false, twinhub.FieldErrorf(name, "contains control character 0x%02x at byte %d; keys must be printable", c, i)
		}
	}
	return s, false, nil
}

func describe(m *member) string {
	switch m.t {
	case fastjson.TypeString:
		s := m.s
		if len(s) > 40 {
			s = append(s[:37:37], "..."...)
		}
		return fmt.Sprintf("string %q", s)
	case fastjson.TypeNumber:
		return "number " + string(m.s)
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "bool " + m.t.String()
	}
	return m.t.String()
}

func contains(list []string, s []byte) bool {
	for _, e := range list {
		if e == string(s) {
			return true
		}
	}
	return false
}

func fieldNames(et *schema.EventType) string {
	if len(et.Fields) == 0 {
		return "none"
	}
	names := make([]string, len(et.Fields))
	for i, f := range et.Fields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

func (d *Decoder) typeNames() string {
	names := make([]string, len(d.s.Events))
	for i, t := range d.s.Events {
		names[i] = t.Name
	}
	return strings.Join(names, ", ")
}

func invalidUTF8Offset(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// fieldNamed finds a declared field by name. Event types declare a handful
// of fields, so comparing lengths and then bytes beats hashing the name.
func fieldNamed(et *schema.EventType, k []byte) *schema.Field {
	for _, f := range et.Fields {
		if len(f.Name) == len(k) && f.Name == string(k) {
			return f
		}
	}
	return nil
}
