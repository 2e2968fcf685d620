package mapping

import (
	"strconv"
	"strings"
	"unsafe"

	"github.com/valyala/fastjson"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/schema"
)

// valKind is the kind of a value read from a record.
type valKind uint8

const (
	kAbsent valKind = iota // no value; why says which absence
	kNull                  // JSON null in a Debezium row image: clears the attribute
	kText                  // text: a CSV cell, a JSON string, a lookup cell, a special
	kJSON                  // a JSON number, bool, object or array
	kInt                   // an integer special: $line, $record, $index, $position, $source_ts
	kBool                  // a YAML bool constant; n is 0 or 1
	kFloat                 // a YAML number constant; text is its literal
)

// absence says why a value is absent, for messages.
type absence uint8

const (
	absMissing  absence = iota // no such member (JSON) or no element
	absEmpty                   // an empty text
	absNullText                // one of null_values
	absJSONNull                // JSON null, outside Debezium
	absNoRow                   // an optional join found no row
	absNoColumn                // the CSV header has no such column: an error, not an absence
	absNoValue                 // a special without a value ($position without one)
)

// literal origins, for messages.
const (
	litNone uint8 = iota
	litConst
	litDefault
)

// value is one value read from a record, a constant or a template. Texts
// may alias the record, the parser or a scratch buffer of the Mapper: a
// value is used before the next one of its kind is read.
type value struct {
	kind valKind
	why  absence
	lit  uint8
	text string
	j    *fastjson.Value
	n    int64
	p    *path     // the path it was read from; nil for constants and templates
	t    *template // the template it was rendered from
}

// origin names where a value came from, for messages.
func (v *value) origin() string {
	switch {
	case v.p != nil:
		return v.p.describe()
	case v.t != nil:
		return "template " + quote(v.t.text)
	case v.lit == litDefault:
		return "default"
	}
	return "const"
}

// found describes a value for "expected X, found Y" messages.
func (v *value) found() string {
	switch v.kind {
	case kText:
		return "the text " + quote(v.text)
	case kJSON:
		switch v.j.Type() {
		case fastjson.TypeObject:
			return "a JSON object"
		case fastjson.TypeArray:
			return "a JSON array"
		case fastjson.TypeNumber:
			return "the number " + quote(string(v.j.MarshalTo(nil)))
		default:
			return "the bool " + v.j.Type().String()
		}
	case kInt:
		return "the number " + strconv.FormatInt(v.n, 10)
	case kBool:
		return "the bool " + strconv.FormatBool(v.n != 0)
	case kFloat:
		return "the number " + v.text
	case kNull:
		return "null"
	}
	return "nothing"
}

// absentText says why an absent value is absent.
func (v *value) absentText() string {
	switch v.why {
	case absEmpty:
		return "is empty"
	case absNullText:
		return "holds a null value " + quote(v.text)
	case absJSONNull:
		return "is null"
	case absNoRow:
		return "has no row (optional join)"
	case absNoValue:
		return "has no value"
	}
	if v.kind == kNull {
		return "is null"
	}
	return "is missing"
}

func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// textValue makes a value of text s, applying null_values.
func (mp *Mapper) textValue(s string, p *path, v *value) {
	if len(s) == 0 {
		*v = value{kind: kAbsent, why: absEmpty, p: p}
		return
	}
	if !mp.m.nullEmpty {
		for _, nv := range mp.m.nullValues {
			if s == nv {
				*v = value{kind: kAbsent, why: absNullText, text: s, p: p}
				return
			}
		}
	}
	*v = value{kind: kText, text: s, p: p}
}

// jsonValue makes a value of JSON value v (nil: missing).
func (mp *Mapper) jsonValue(j *fastjson.Value, p *path, v *value) {
	if j == nil {
		*v = value{kind: kAbsent, why: absMissing, p: p}
		return
	}
	switch j.Type() {
	case fastjson.TypeNull:
		if mp.m.debezium {
			*v = value{kind: kNull, p: p}
		} else {
			*v = value{kind: kAbsent, why: absJSONNull, p: p}
		}
	case fastjson.TypeString:
		b, _ := j.StringBytes()
		mp.textValue(b2s(b), p, v)
	default:
		*v = value{kind: kJSON, j: j, p: p}
	}
}

// resolve reads path p from the current record into v.
func (mp *Mapper) resolve(p *path, v *value) {
	switch p.root {
	case rootRecord:
		if mp.m.csv {
			i := mp.cols[p.col]
			if i < 0 || int(i) >= len(mp.rec.Fields) {
				*v = value{kind: kAbsent, why: absNoColumn, p: p}
				return
			}
			mp.textValue(mp.rec.Fields[i], p, v)
			return
		}
		mp.jsonValue(walkJSON(mp.root, p.segs), p, v)
	case rootSpecial:
		mp.special(p, v)
	case rootItem:
		switch {
		case len(p.segs) == 0:
			*v = mp.item
			v.p = p
		case mp.item.kind != kJSON:
			*v = value{kind: kAbsent, why: absMissing, p: p}
		default:
			mp.jsonValue(walkJSON(mp.item.j, p.segs), p, v)
		}
	case rootJoin:
		r := &mp.rows[p.join]
		if !r.ok {
			*v = value{kind: kAbsent, why: absNoRow, p: p}
			return
		}
		t := mp.m.joins[p.join].table
		if t.csv {
			mp.textValue(t.cell(r.row, p.col), p, v)
			return
		}
		mp.jsonValue(walkJSON(mp.joinJSON(p.join), p.segs), p, v)
	case rootEnvelope:
		mp.jsonValue(walkJSON(mp.env, p.segs), p, v)
	default:
		*v = value{kind: kAbsent, p: p}
	}
}

func (mp *Mapper) special(p *path, v *value) {
	*v = value{kind: kAbsent, why: absNoValue, p: p}
	switch p.special {
	case spSource:
		v.kind, v.text = kText, mp.m.Source
	case spFile:
		v.kind, v.text = kText, mp.fileBase
	case spLine:
		v.kind, v.n = kInt, int64(mp.rec.Line)
	case spRecord:
		v.kind, v.n = kInt, int64(mp.rec.Index)
	case spIndex:
		v.kind, v.n = kInt, int64(mp.index)
	case spOp:
		v.kind, v.text = kText, opNames[mp.op]
	case spTable:
		if len(mp.table) > 0 {
			v.kind, v.text = kText, b2s(mp.table)
		}
	case spPosition:
		if mp.hasPos {
			v.kind, v.n = kInt, mp.pos
		}
	case spSourceTS:
		if mp.hasTS {
			v.kind, v.n = kInt, mp.ts
		}
	}
}

// eval computes a spec's value for event field field into v: its path's,
// its template's or its constant, or its default when that is absent or
// null.
func (mp *Mapper) eval(s *valueSpec, field string, v *value) error {
	switch s.kind {
	case skConst:
		*v = s.lit
		return nil
	case skPath:
		mp.resolve(s.path, v)
	case skTemplate:
		if err := mp.render(s.tmpl, field, v); err != nil {
			return err
		}
	}
	if v.kind == kAbsent && v.why == absNoColumn {
		return mp.noColumn(v.p, field)
	}
	if (v.kind == kAbsent || v.kind == kNull) && s.def.kind != kAbsent {
		*v = s.def
	}
	return nil
}

// render renders template t into mp.tmp. A part without a value makes the
// whole template absent (or null, when that part is a Debezium null); v
// is then that part's value.
func (mp *Mapper) render(t *template, field string, v *value) error {
	mp.tmp = mp.tmp[:0]
	for i := range t.parts {
		pt := &t.parts[i]
		if pt.path == nil {
			mp.tmp = append(mp.tmp, pt.lit...)
			continue
		}
		mp.resolve(pt.path, v)
		switch v.kind {
		case kAbsent:
			if v.why == absNoColumn {
				return mp.noColumn(v.p, field)
			}
			return nil
		case kNull:
			return nil
		}
		var err error
		if mp.tmp, err = mp.appendText(mp.tmp, v, field); err != nil {
			return err
		}
	}
	*v = value{kind: kText, text: b2s(mp.tmp), t: t}
	return nil
}

// appendText appends the text of v: texts as they are, numbers as written,
// bools as true or false. Objects and arrays have no text.
func (mp *Mapper) appendText(dst []byte, v *value, field string) ([]byte, error) {
	switch v.kind {
	case kText, kFloat:
		return append(dst, v.text...), nil
	case kInt:
		return strconv.AppendInt(dst, v.n, 10), nil
	case kBool:
		return strconv.AppendBool(dst, v.n != 0), nil
	case kJSON:
		switch v.j.Type() {
		case fastjson.TypeNumber, fastjson.TypeTrue, fastjson.TypeFalse:
			return v.j.MarshalTo(dst), nil
		}
	}
	return dst, twinhub.FieldErrorf(field, "%s: expected text, found %s", v.origin(), v.found())
}

// text returns the text of v, in a scratch buffer when it has to be
// written out.
func (mp *Mapper) text(v *value, field string) (string, error) {
	if v.kind == kText {
		return v.text, nil
	}
	var err error
	mp.num, err = mp.appendText(mp.num[:0], v, field)
	return b2s(mp.num), err
}

// appendTyped appends v to dst as a JSON value of type typ (f is the
// schema field, nil for the event time), coercing text as the mapping says.
func (mp *Mapper) appendTyped(dst []byte, typ twinhub.FieldType, f *schema.Field, tf *timeFormat, v *value, field string) ([]byte, error) {
	switch typ {
	case twinhub.TypeString:
		dst = append(dst, '"')
		if v.kind == kText {
			dst = ingest.AppendJSONEscaped(dst, v.text)
		} else {
			var err error
			if dst, err = mp.appendText(dst, v, field); err != nil {
				return dst, err
			}
		}
		return append(dst, '"'), nil
	case twinhub.TypeEnum:
		s, err := mp.text(v, field)
		if err != nil {
			return dst, err
		}
		if f != nil && !containsString(f.Enum, s) {
			return dst, twinhub.FieldErrorf(field, "%s: %s is not one of %s", v.origin(), quote(s), strings.Join(f.Enum, ", "))
		}
		return ingest.AppendJSONString(dst, s), nil
	case twinhub.TypeNumber, twinhub.TypeInteger:
		integer := typ == twinhub.TypeInteger
		var prob numProblem
		var s string
		switch v.kind {
		case kText:
			s = v.text
			dst, prob = appendNumber(dst, s, mp.m.dec, integer)
		case kFloat:
			s = v.text
			dst, prob = appendNumber(dst, s, '.', integer)
		case kInt:
			if integer && (v.n > maxSafeInt || v.n < -maxSafeInt) {
				s, prob = strconv.FormatInt(v.n, 10), numRange
				break
			}
			return strconv.AppendInt(dst, v.n, 10), nil
		case kJSON:
			if v.j.Type() != fastjson.TypeNumber {
				return dst, twinhub.FieldErrorf(field, "%s: expected a number, found %s", v.origin(), v.found())
			}
			mp.num = v.j.MarshalTo(mp.num[:0])
			s = b2s(mp.num)
			dst, prob = appendNumber(dst, s, '.', integer)
		default:
			return dst, twinhub.FieldErrorf(field, "%s: expected a number, found %s", v.origin(), v.found())
		}
		if prob != numOK {
			return dst, mp.numError(v, s, prob, integer, field)
		}
		return dst, nil
	case twinhub.TypeBool:
		switch v.kind {
		case kBool:
			return strconv.AppendBool(dst, v.n != 0), nil
		case kJSON:
			switch v.j.Type() {
			case fastjson.TypeTrue:
				return append(dst, "true"...), nil
			case fastjson.TypeFalse:
				return append(dst, "false"...), nil
			}
		}
		s, err := mp.text(v, field)
		if err != nil {
			return dst, twinhub.FieldErrorf(field, "%s: expected a bool, found %s", v.origin(), v.found())
		}
		t := trimSpace(s)
		for _, tv := range mp.m.trueValues {
			if strings.EqualFold(t, tv) {
				return append(dst, "true"...), nil
			}
		}
		for _, fv := range mp.m.falseValues {
			if strings.EqualFold(t, fv) {
				return append(dst, "false"...), nil
			}
		}
		return dst, twinhub.FieldErrorf(field, "%s: %s is not a bool (true: %s; false: %s)", v.origin(), quote(s),
			strings.Join(mp.m.trueValues, ", "), strings.Join(mp.m.falseValues, ", "))
	case twinhub.TypeTime:
		sec, nsec, err := mp.timeOf(v, tf, field)
		if err != nil {
			return dst, err
		}
		dst = append(dst, '"')
		var ok bool
		if dst, ok = appendRFC3339(dst, sec, nsec); !ok {
			s, _ := mp.text(v, field)
			hint := ""
			if tf.kind == tkUnix || tf.kind == tkUnixMs || tf.kind == tkUnixUs || tf.kind == tkAuto && v.kind != kText {
				hint = " (is the unit right? format is unix, unix_ms or unix_us)"
			}
			return dst, twinhub.FieldErrorf(field, "%s: %s is outside the years %d to %d%s", v.origin(), quote(s), minYear, maxYear, hint)
		}
		return append(dst, '"'), nil
	}
	return dst, twinhub.FieldErrorf(field, "field has unsupported type %s", typ)
}

func (mp *Mapper) numError(v *value, s string, prob numProblem, integer bool, field string) error {
	what := "a number"
	if integer {
		what = "an integer"
	}
	switch prob {
	case numNotInt:
		return twinhub.FieldErrorf(field, "%s: %s is not an integer", v.origin(), quote(s))
	case numRange:
		return twinhub.FieldErrorf(field, "%s: %s is out of range for %s", v.origin(), quote(s), what)
	case numWrongDec:
		return twinhub.FieldErrorf(field, "%s: %s is not %s (the decimal separator is %q; set decimal: to change it)", v.origin(), quote(s), what, string(mp.m.dec))
	}
	return twinhub.FieldErrorf(field, "%s: %s is not %s", v.origin(), quote(s), what)
}

// timeOf reads v as a time in format tf.
func (mp *Mapper) timeOf(v *value, tf *timeFormat, field string) (int64, int, error) {
	kind := tf.kind
	switch v.kind {
	case kText:
		if sec, nsec, ok := parseTimeText(v.text, tf, mp.m.loc); ok {
			return sec, nsec, nil
		}
		if kind == tkAuto {
			return 0, 0, twinhub.FieldErrorf(field, "%s: %s is not a time (without format: RFC 3339, 2006-01-02 15:04:05, 2006-01-02T15:04:05, 2006-01-02 or 20060102; set format: to read others)", v.origin(), quote(v.text))
		}
		return 0, 0, twinhub.FieldErrorf(field, "%s: %s does not match format %q", v.origin(), quote(v.text), tf.text)
	case kInt, kFloat, kJSON:
		if v.kind == kJSON && v.j.Type() != fastjson.TypeNumber {
			break
		}
		if kind == tkAuto {
			kind = tkUnixMs // JSON numbers are unix milliseconds
		}
		if kind == tkUnix || kind == tkUnixMs || kind == tkUnixUs {
			if v.kind == kInt {
				sec, nsec, _ := unixInt(v.n, kind)
				return sec, nsec, nil
			}
		}
		s, _ := mp.text(v, field)
		ntf := timeFormat{kind: kind, layout: tf.layout, text: tf.text}
		if sec, nsec, ok := parseTimeText(s, &ntf, mp.m.loc); ok {
			return sec, nsec, nil
		}
		return 0, 0, twinhub.FieldErrorf(field, "%s: %s does not match format %q", v.origin(), quote(s), tf.text)
	}
	return 0, 0, twinhub.FieldErrorf(field, "%s: expected a time, found %s", v.origin(), v.found())
}

// noColumn explains a CSV path that names no column of the header.
func (mp *Mapper) noColumn(p *path, field string) error {
	if mp.hdr == nil {
		return twinhub.FieldErrorf(field, "%s: the record has no header to find it in", p.describe())
	}
	if i := mp.colIndex(p.whole); i >= 0 && i >= len(mp.rec.Fields) {
		return twinhub.FieldErrorf(field, "%s: the record has only %d fields", p.describe(), len(mp.rec.Fields))
	}
	hint := schema.Suggest(p.whole, mp.hdr)
	if hint == "" {
		cols := mp.hdr
		more := ""
		if len(cols) > 20 {
			cols, more = cols[:20], ", ..."
		}
		hint = "columns: " + strings.Join(cols, ", ") + more
	}
	return twinhub.FieldErrorf(field, "%s is not in the header (%s)", p.describe(), hint)
}

// colIndex returns the index of column name in the current header, or -1.
func (mp *Mapper) colIndex(name string) int {
	for i, h := range mp.hdr {
		if h == name {
			return i
		}
	}
	return -1
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
