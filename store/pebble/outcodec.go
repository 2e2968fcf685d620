package pebble

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/twinhub/twinhub"
)

// The binary encoding of outputs and actions. Rules can log an output for
// a good share of the events ingested, so the log's encoding is on the
// ingestion path: JSON there cost a tenth of the CPU and twice the bytes of
// the archive itself. This encoding is about a fifth of the JSON's size and
// a twentieth of its cost; JSON is built only when someone reads.
//
// An output block is the outputs one shard batch logged, under the key of
// the first one's ID; the others' IDs follow on:
//
//	format(1)=1 count(uvarint) newest-time record...
//	record: len(uvarint) kind(1) time twin revision(uvarint) event
//	        event_type segment rule action-flag(1) [action-id(uvarint)] [action]
//	action-flag: 0 none; 1 the action with the output's ID (kind action);
//	2 the action with the ID that follows (action.updated)
//
// An action (also the value of an action key, after format(1)=1):
//
//	key kind name rule twin revision(uvarint) time payload status(1)
//	expires has-decision(1) [by at note] url receipt
//	receipt: same(1) schema_version(uvarint) [rule] when trigger event
//	         [twin] [revision] [time] reads
//
// Strings are a uvarint length and the bytes; times are 0 for the zero
// time, else 1 and the unix nanoseconds as a varint. A receipt's rule,
// twin, revision and time are nearly always its action's: bits of same say
// which are, and only the others are written. Payload and reads values are
// a tag byte and the value (see appendValue).
//
// Values written by earlier versions, JSON, start with '{' and still read.

const codecBinary = 1

// Output kinds and action statuses as bytes.
var (
	kindCodes   = []twinhub.OutputKind{"", twinhub.TwinChanged, twinhub.SegmentEntered, twinhub.SegmentLeft, twinhub.ActionFired, twinhub.ActionUpdated}
	statusCodes = []twinhub.ActionStatus{"", twinhub.ActionFiredStatus, twinhub.ActionPending, twinhub.ActionApproved, twinhub.ActionRejected, twinhub.ActionExpired}
)

// code returns the index of v in codes. The engine makes no kind or status
// outside them, so one that is not there is an error, not a silent zero.
func code[T comparable](codes []T, v T) (byte, error) {
	for i, c := range codes {
		if c == v {
			return byte(i), nil
		}
	}
	return 0, fmt.Errorf("unknown value %v", v)
}

// appendOutputBlock appends the block of outs to dst.
func appendOutputBlock(dst []byte, outs []twinhub.Output) ([]byte, error) {
	var newest time.Time
	for i := range outs {
		if outs[i].Time.After(newest) {
			newest = outs[i].Time
		}
	}
	dst = append(dst, codecBinary)
	dst = binary.AppendUvarint(dst, uint64(len(outs)))
	dst = appendTime(dst, newest)
	for i := range outs {
		// The length goes before the record; reserve the most a record's
		// length can take and close the gap after.
		at := len(dst)
		dst = append(dst, make([]byte, binary.MaxVarintLen32)...)
		var err error
		dst, err = appendOutput(dst, &outs[i])
		if err != nil {
			return nil, fmt.Errorf("output %d: %w", outs[i].ID, err)
		}
		n := len(dst) - at - binary.MaxVarintLen32
		if n > math.MaxInt32 {
			return nil, errors.New("output too large")
		}
		var lb [binary.MaxVarintLen32]byte
		ln := binary.PutUvarint(lb[:], uint64(n))
		copy(dst[at:], lb[:ln])
		dst = append(dst[:at+ln], dst[at+binary.MaxVarintLen32:]...)
	}
	return dst, nil
}

func appendOutput(dst []byte, o *twinhub.Output) ([]byte, error) {
	k, err := code(kindCodes, o.Kind)
	if err != nil {
		return nil, err
	}
	dst = append(dst, k)
	dst = appendTime(dst, o.Time)
	dst = appendString(dst, o.Twin)
	dst = binary.AppendUvarint(dst, o.Revision)
	dst = appendString(dst, o.Event)
	dst = appendString(dst, o.EventType)
	dst = appendString(dst, o.Segment)
	dst = appendString(dst, o.Rule)
	switch {
	case o.Action == nil:
		return append(dst, 0), nil
	case o.Kind == twinhub.ActionFired: // the action's ID is the output's
		return appendAction(append(dst, 1), o.Action)
	}
	return appendAction(binary.AppendUvarint(append(dst, 2), o.Action.ID), o.Action)
}

func appendAction(dst []byte, a *twinhub.Action) ([]byte, error) {
	st, err := code(statusCodes, a.Status)
	if err != nil {
		return nil, err
	}
	dst = appendString(dst, a.Key)
	dst = appendString(dst, a.Kind)
	dst = appendString(dst, a.Name)
	dst = appendString(dst, a.Rule)
	dst = appendString(dst, a.Twin)
	dst = binary.AppendUvarint(dst, a.Revision)
	dst = appendTime(dst, a.Time)
	if dst, err = appendMap(dst, a.Payload, 0); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	dst = append(dst, st)
	dst = appendTime(dst, a.Expires)
	if d := a.Decision; d != nil {
		dst = append(dst, 1)
		dst = appendString(dst, d.By)
		dst = appendTime(dst, d.At)
		dst = appendString(dst, d.Note)
	} else {
		dst = append(dst, 0)
	}
	dst = appendString(dst, a.URL)

	r := &a.Receipt
	var same byte
	if r.Rule == a.Rule {
		same |= 1
	}
	if r.Twin == a.Twin {
		same |= 2
	}
	if r.Revision == a.Revision {
		same |= 4
	}
	if r.Time.Equal(a.Time) {
		same |= 8
	}
	dst = append(dst, same)
	dst = binary.AppendUvarint(dst, uint64(r.SchemaVersion))
	if same&1 == 0 {
		dst = appendString(dst, r.Rule)
	}
	dst = appendString(dst, r.When)
	dst = appendString(dst, r.Trigger)
	dst = appendString(dst, r.Event)
	if same&2 == 0 {
		dst = appendString(dst, r.Twin)
	}
	if same&4 == 0 {
		dst = binary.AppendUvarint(dst, r.Revision)
	}
	if same&8 == 0 {
		dst = appendTime(dst, r.Time)
	}
	if dst, err = appendMap(dst, r.Reads, 0); err != nil {
		return nil, fmt.Errorf("receipt reads: %w", err)
	}
	return dst, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	return binary.AppendVarint(append(dst, 1), t.UnixNano())
}

// Value tags. Payloads and reads hold what schema templates produce (JSON
// values, with int64 and uint64 kept apart from float64); anything else is
// kept as its JSON (tagRaw), which reads back as json.RawMessage and
// encodes the same.
const (
	tagNull byte = iota
	tagFalse
	tagTrue
	tagInt
	tagUint
	tagFloat
	tagString
	tagList
	tagMap
	tagStrings
	tagRaw
)

// maxValueDepth bounds nesting, on the way in and out.
const maxValueDepth = 64

// appendMap appends m as a value; a nil map is a null.
func appendMap(dst []byte, m map[string]any, depth int) ([]byte, error) {
	if m == nil {
		return append(dst, tagNull), nil
	}
	return appendValue(dst, m, depth)
}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxValueDepth {
		return nil, errors.New("value is nested too deeply")
	}
	switch v := v.(type) {
	case nil:
		return append(dst, tagNull), nil
	case bool:
		if v {
			return append(dst, tagTrue), nil
		}
		return append(dst, tagFalse), nil
	case int64:
		return binary.AppendVarint(append(dst, tagInt), v), nil
	case int:
		return binary.AppendVarint(append(dst, tagInt), int64(v)), nil
	case uint64:
		return binary.AppendUvarint(append(dst, tagUint), v), nil
	case float64:
		return binary.LittleEndian.AppendUint64(append(dst, tagFloat), math.Float64bits(v)), nil
	case string:
		return appendString(append(dst, tagString), v), nil
	case []string:
		dst = binary.AppendUvarint(append(dst, tagStrings), uint64(len(v)))
		for _, s := range v {
			dst = appendString(dst, s)
		}
		return dst, nil
	case []any:
		dst = binary.AppendUvarint(append(dst, tagList), uint64(len(v)))
		var err error
		for _, e := range v {
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return nil, err
			}
		}
		return dst, nil
	case map[string]any:
		dst = binary.AppendUvarint(append(dst, tagMap), uint64(len(v)))
		// Sorted, so that the same value always has the same bytes.
		var small [8]string
		keys := small[:0]
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var err error
		for _, k := range keys {
			dst = appendString(dst, k)
			if dst, err = appendValue(dst, v[k], depth+1); err != nil {
				return nil, err
			}
		}
		return dst, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return appendString(append(dst, tagRaw), string(raw)), nil
}

var errTruncated = errors.New("truncated or corrupt")

// byte reads one byte.
func (d *decoder) byte() byte {
	if len(d.v) == 0 {
		d.bad = true
		return 0
	}
	c := d.v[0]
	d.v = d.v[1:]
	return c
}

// time reads a time written by appendTime.
func (d *decoder) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(0, d.varint()).UTC()
	}
	d.bad, d.v = true, nil
	return time.Time{}
}

// fail marks the value corrupt.
func (d *decoder) fail() { d.bad, d.v = true, nil }

// blockHeader reads a block's header: its count and newest time.
func (d *decoder) blockHeader() (int, time.Time) {
	if d.byte() != codecBinary {
		d.fail()
		return 0, time.Time{}
	}
	n := d.uvarint()
	newest := d.time()
	if n > uint64(len(d.v)) { // every record takes a byte at least
		d.fail()
		return 0, time.Time{}
	}
	return int(n), newest
}

// decodeOutputBlock calls fn with the outputs of the block under first
// whose ID is above after, until fn returns false; it reports whether fn
// wants more.
func decodeOutputBlock(first uint64, v []byte, after uint64, fn func(twinhub.Output) bool) (bool, error) {
	d := decoder{v: v}
	n, _ := d.blockHeader()
	for i := range n {
		rec := d.bytes()
		if d.bad {
			break
		}
		id := first + uint64(i)
		if id <= after {
			continue
		}
		o, err := decodeOutput(rec)
		if err != nil {
			return false, fmt.Errorf("output %d: %w", id, err)
		}
		o.ID = id
		if o.Action != nil && o.Action.ID == 0 {
			o.Action.ID = id
		}
		if !fn(o) {
			return false, nil
		}
	}
	if d.bad {
		return false, fmt.Errorf("corrupt output block %d", first)
	}
	return true, nil
}

func decodeOutput(rec []byte) (twinhub.Output, error) {
	d := decoder{v: rec}
	var o twinhub.Output
	if k := d.byte(); int(k) < len(kindCodes) && k > 0 {
		o.Kind = kindCodes[k]
	} else {
		d.fail()
	}
	o.Time = d.time()
	o.Twin = d.str()
	o.Revision = d.uvarint()
	o.Event = d.str()
	o.EventType = d.str()
	o.Segment = d.str()
	o.Rule = d.str()
	switch d.byte() {
	case 0:
	case 1: // the action's ID is the output's: the caller knows it
		a := d.action()
		o.Action = &a
	case 2:
		id := d.uvarint()
		a := d.action()
		a.ID = id
		o.Action = &a
	default:
		d.fail()
	}
	if d.bad || len(d.v) > 0 || (o.Action != nil && o.Action.ID == 0 && o.Kind != twinhub.ActionFired) {
		return o, errTruncated
	}
	return o, nil
}

// decodeAction decodes the value of an action key.
func decodeAction(v []byte) (twinhub.Action, error) {
	d := decoder{v: v}
	if d.byte() != codecBinary {
		return twinhub.Action{}, errors.New("unknown action format")
	}
	a := d.action()
	if d.bad || len(d.v) > 0 {
		return a, errTruncated
	}
	return a, nil
}

func (d *decoder) action() twinhub.Action {
	var a twinhub.Action
	a.Key = d.str()
	a.Kind = d.str()
	a.Name = d.str()
	a.Rule = d.str()
	a.Twin = d.str()
	a.Revision = d.uvarint()
	a.Time = d.time()
	a.Payload = d.mapValue()
	if s := d.byte(); int(s) < len(statusCodes) && s > 0 {
		a.Status = statusCodes[s]
	} else {
		d.fail()
	}
	a.Expires = d.time()
	switch d.byte() {
	case 0:
	case 1:
		a.Decision = &twinhub.Decision{By: d.str(), At: d.time(), Note: d.str()}
	default:
		d.fail()
	}
	a.URL = d.str()

	r := &a.Receipt
	same := d.byte()
	r.SchemaVersion = int(d.uvarint())
	r.Rule = a.Rule
	if same&1 == 0 {
		r.Rule = d.str()
	}
	r.When = d.str()
	r.Trigger = d.str()
	r.Event = d.str()
	r.Twin = a.Twin
	if same&2 == 0 {
		r.Twin = d.str()
	}
	r.Revision = a.Revision
	if same&4 == 0 {
		r.Revision = d.uvarint()
	}
	r.Time = a.Time
	if same&8 == 0 {
		r.Time = d.time()
	}
	r.Reads = d.mapValue()
	return a
}

// mapValue reads a map or a null.
func (d *decoder) mapValue() map[string]any {
	v := d.value(0)
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.fail()
	}
	return m
}

func (d *decoder) value(depth int) any {
	if depth > maxValueDepth {
		d.fail()
		return nil
	}
	switch tag := d.byte(); tag {
	case tagNull:
		return nil
	case tagFalse:
		return false
	case tagTrue:
		return true
	case tagInt:
		return d.varint()
	case tagUint:
		return d.uvarint()
	case tagFloat:
		if len(d.v) < 8 {
			d.fail()
			return nil
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(d.v))
		d.v = d.v[8:]
		return f
	case tagString:
		return d.str()
	case tagStrings:
		n := d.uvarint()
		if n > uint64(len(d.v)) { // each takes a byte at least
			d.fail()
			return nil
		}
		out := make([]string, n)
		for i := range out {
			out[i] = d.str()
		}
		return out
	case tagList:
		n := d.uvarint()
		if n > uint64(len(d.v)) {
			d.fail()
			return nil
		}
		out := make([]any, n)
		for i := range out {
			out[i] = d.value(depth + 1)
		}
		return out
	case tagMap:
		n := d.uvarint()
		if n > uint64(len(d.v))/2 { // a key and a value take two bytes at least
			d.fail()
			return nil
		}
		out := make(map[string]any, n)
		for range n {
			k := d.str()
			out[k] = d.value(depth + 1)
		}
		return out
	case tagRaw:
		raw := d.bytes()
		if !json.Valid(raw) {
			d.fail()
			return nil
		}
		return json.RawMessage(raw)
	}
	d.fail()
	return nil
}
