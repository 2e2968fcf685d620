package engine

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"unsafe"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/agg"
)

// twin is the live state of one entity. It belongs to its shard: the shard
// goroutine writes it under the shard lock, readers read it under the shared
// lock.
type twin struct {
	key     string
	hash    uint64 // keyHash(key)
	rev     uint64
	applied uint64 // archive seq of the last event applied
	state   agg.State
	attrs   []attr     // nil until an attribute is set; else one per schema attribute
	rs      *ruleState // segments, rule state and tags; nil until needed
	// dirtySince is the seq of the first event applied since the twin was
	// last persisted, 0 when clean.
	dirtySince uint64
	slot       int32 // position in the shard's CLOCK ring, -1 when cold
	size       int32 // heap bytes last accounted to the shard
	// The twin's key is at the shard's tl.Keys[tlKey] while tlGen is the
	// shard's tlGen (see shard.tlGen).
	tlGen, tlKey uint32
	ref          bool // CLOCK reference bit
	stored       bool // a snapshot exists in the store
}

// attr is one attribute value with its lineage. An attribute an event
// cleared (a null) is a tombstone: val.Null with the clearing event's
// lineage, so that an older value arriving later stays out.
type attr struct {
	val      twinhub.Value
	eventID  string
	source   string
	time     int64 // event time of the value
	position int64 // the event's Position; 0 when it had none
}

// written reports whether an event has set or cleared a.
func (a *attr) written() bool { return a.val.Set || a.val.Null }

// takes reports whether event ev may set or clear a, which holds the value
// of an earlier-applied event (see "Attributes" in the package doc).
func (a *attr) takes(ev *twinhub.Event) bool {
	if !a.written() {
		return true
	}
	if ev.Position > 0 && a.position > 0 && ev.Position != a.position {
		return ev.Position > a.position
	}
	return ev.Time >= a.time // equal times: the later arrival wins
}

// struct + table slot: 16 bytes at a load between 3/8 and 3/4
const twinOverhead = int(unsafe.Sizeof(twin{})) + 32

func (t *twin) bytes(l *agg.Layout) int {
	n := twinOverhead + len(t.key) + l.Bytes(&t.state)
	if t.attrs != nil {
		n += len(t.attrs) * int(unsafe.Sizeof(attr{}))
		for i := range t.attrs {
			a := &t.attrs[i]
			n += len(a.val.Str) + len(a.eventID)
		}
	}
	if rs := t.rs; rs != nil {
		n += int(unsafe.Sizeof(ruleState{})) + 8*(cap(rs.segs)+cap(rs.edge)) + 16*cap(rs.fired) + 16*cap(rs.tags)
	}
	return n
}

// Snapshot format versions: 2 adds the rule state after the aggregates;
// version 1 snapshots decode with none.
const (
	snapshotV1      = 1
	snapshotVersion = 2
)

// Each attribute of a snapshot starts with a marker byte: 0 for never
// written, else the value's field type with these flags. A set value
// follows as its number (8 bytes) and string; a tombstone has no value.
// Then come the event id, source and time, and the position when flagged.
// Snapshots written before tombstones and positions have no flags.
const (
	attrTypeMask   = 0x3f
	attrPositioned = 0x40 // a position (uvarint) follows the time
	attrTombstone  = 0x80 // cleared by a null: no value
)

// appendSnapshot encodes t; schemaVersion guards against decoding with a
// different aggregate layout.
func appendSnapshot(dst []byte, t *twin, schemaVersion int, l *agg.Layout) []byte {
	dst = append(dst, snapshotVersion)
	dst = binary.AppendUvarint(dst, uint64(schemaVersion))
	dst = binary.AppendUvarint(dst, t.rev)
	dst = binary.AppendUvarint(dst, t.applied)
	dst = binary.AppendUvarint(dst, uint64(len(t.attrs)))
	for i := range t.attrs {
		a := &t.attrs[i]
		if !a.written() {
			dst = append(dst, 0)
			continue
		}
		marker := byte(a.val.Type)
		if a.position != 0 {
			marker |= attrPositioned
		}
		if !a.val.Set {
			marker |= attrTombstone
		}
		dst = append(dst, marker)
		if a.val.Set {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(a.val.Num))
			dst = appendString(dst, a.val.Str)
		}
		dst = appendString(dst, a.eventID)
		dst = appendString(dst, a.source)
		dst = binary.AppendVarint(dst, a.time)
		if a.position != 0 {
			dst = binary.AppendUvarint(dst, uint64(a.position))
		}
	}
	dst = l.AppendState(dst, &t.state)
	return appendRuleState(dst, t.rs)
}

// appendRuleState encodes segment bits, edge bits, cooldown firings and
// tags. The saved bits are not kept: they are the segment bits of the
// snapshot the twin is loaded from.
func appendRuleState(dst []byte, rs *ruleState) []byte {
	if rs == nil {
		return append(dst, 0, 0, 0, 0)
	}
	for _, bits := range [][]uint64{rs.segs, rs.edge} {
		dst = binary.AppendUvarint(dst, uint64(len(bits)))
		for _, w := range bits {
			dst = binary.AppendUvarint(dst, w)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(rs.fired)))
	for _, f := range rs.fired {
		dst = binary.AppendUvarint(dst, uint64(f.rule))
		dst = binary.AppendVarint(dst, f.at)
	}
	dst = binary.AppendUvarint(dst, uint64(len(rs.tags)))
	for _, tag := range rs.tags {
		dst = appendString(dst, tag)
	}
	return dst
}

func decodeRuleState(src []byte, intern func(string) string) (*ruleState, []byte, bool) {
	rs := &ruleState{}
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(src)
		if n <= 0 {
			return 0, false
		}
		src = src[n:]
		return v, true
	}
	for _, bits := range []*[]uint64{&rs.segs, &rs.edge} {
		n, ok := uv()
		if !ok || n > 1<<10 {
			return nil, nil, false
		}
		for range n {
			w, ok := uv()
			if !ok {
				return nil, nil, false
			}
			*bits = append(*bits, w)
		}
	}
	n, ok := uv()
	if !ok || n > 1<<16 {
		return nil, nil, false
	}
	for range n {
		r, ok := uv()
		if !ok || r > 1<<16 {
			return nil, nil, false
		}
		at, k := binary.Varint(src)
		if k <= 0 {
			return nil, nil, false
		}
		src = src[k:]
		rs.fired = append(rs.fired, firing{rule: int32(r), at: at})
	}
	if n, ok = uv(); !ok || n > 1<<16 {
		return nil, nil, false
	}
	for range n {
		var tag string
		if tag, src, ok = readString(src); !ok {
			return nil, nil, false
		}
		rs.tags = append(rs.tags, intern(tag))
	}
	if len(rs.segs) == 0 && len(rs.edge) == 0 && len(rs.fired) == 0 && len(rs.tags) == 0 {
		rs = nil
	} else {
		rs.saved = slices.Clone(rs.segs) // the snapshot's own bits
	}
	return rs, src, true
}

var errCorrupt = errors.New("corrupt twin snapshot")

// errSchemaChanged reports a snapshot written under another schema version.
var errSchemaChanged = errors.New("twin snapshot is from another schema version")

func decodeSnapshot(key string, src []byte, schemaVersion int, l *agg.Layout, intern func(string) string) (*twin, error) {
	if len(src) == 0 || (src[0] != snapshotVersion && src[0] != snapshotV1) {
		return nil, errCorrupt
	}
	format := src[0]
	src = src[1:]
	var vals [4]uint64
	for i := range vals {
		v, n := binary.Uvarint(src)
		if n <= 0 {
			return nil, errCorrupt
		}
		vals[i], src = v, src[n:]
	}
	if int(vals[0]) != schemaVersion {
		return nil, errSchemaChanged
	}
	t := &twin{key: key, rev: vals[1], applied: vals[2], slot: -1}
	if n := vals[3]; n > 0 {
		if n > 1<<16 {
			return nil, errCorrupt
		}
		t.attrs = make([]attr, n)
		for i := range t.attrs {
			if len(src) == 0 {
				return nil, errCorrupt
			}
			marker := src[0]
			src = src[1:]
			if marker == 0 {
				continue
			}
			typ := twinhub.FieldType(marker & attrTypeMask)
			if typ == 0 || typ > twinhub.TypeEnum {
				return nil, errCorrupt
			}
			a := &t.attrs[i]
			var ok bool
			if marker&attrTombstone != 0 {
				a.val = twinhub.Value{Type: typ, Null: true}
			} else {
				if len(src) < 8 {
					return nil, errCorrupt
				}
				a.val = twinhub.Value{Type: typ, Set: true, Num: math.Float64frombits(binary.LittleEndian.Uint64(src))}
				src = src[8:]
				if a.val.Str, src, ok = readString(src); !ok {
					return nil, errCorrupt
				}
			}
			if a.eventID, src, ok = readString(src); !ok {
				return nil, errCorrupt
			}
			if a.source, src, ok = readString(src); !ok {
				return nil, errCorrupt
			}
			a.source = intern(a.source)
			tm, n := binary.Varint(src)
			if n <= 0 {
				return nil, errCorrupt
			}
			a.time, src = tm, src[n:]
			if marker&attrPositioned != 0 {
				pos, n := binary.Uvarint(src)
				if n <= 0 || pos == 0 || pos > math.MaxInt64 {
					return nil, errCorrupt
				}
				a.position, src = int64(pos), src[n:]
			}
		}
	}
	st, rest, err := l.DecodeState(src)
	if err != nil {
		return nil, err
	}
	if format >= 2 {
		var ok bool
		if t.rs, rest, ok = decodeRuleState(rest, intern); !ok {
			return nil, errCorrupt
		}
	}
	if len(rest) != 0 {
		return nil, errCorrupt
	}
	t.state = st
	return t, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func readString(src []byte) (string, []byte, bool) {
	n, k := binary.Uvarint(src)
	if k <= 0 || uint64(len(src)-k) < n {
		return "", nil, false
	}
	return string(src[k : k+int(n)]), src[k+int(n):], true
}
