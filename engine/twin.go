package engine

import (
	"encoding/binary"
	"errors"
	"math"
	"unsafe"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/agg"
)

// twin is the live state of one entity. It belongs to its shard: the shard
// goroutine writes it under the shard lock, readers read it under the shared
// lock.
type twin struct {
	key     string
	rev     uint64
	applied uint64 // archive seq of the last event applied
	state   agg.State
	attrs   []attr // nil until an attribute is set; else one per schema attribute
	// dirtySince is the seq of the first event applied since the twin was
	// last persisted, 0 when clean.
	dirtySince uint64
	slot       int32 // position in the shard's CLOCK ring, -1 when cold
	size       int32 // heap bytes last accounted to the shard
	ref        bool  // CLOCK reference bit
	stored     bool  // a snapshot exists in the store
}

// attr is one attribute value with its lineage.
type attr struct {
	val     twinhub.Value
	eventID string
	source  string
	time    int64 // event time of the value
}

const twinOverhead = int(unsafe.Sizeof(twin{})) + 48 // struct + map entry

func (t *twin) bytes(l *agg.Layout) int {
	n := twinOverhead + len(t.key) + l.Bytes(&t.state)
	if t.attrs != nil {
		n += len(t.attrs) * int(unsafe.Sizeof(attr{}))
		for i := range t.attrs {
			a := &t.attrs[i]
			n += len(a.val.Str) + len(a.eventID)
		}
	}
	return n
}

const snapshotVersion = 1

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
		if !a.val.Set {
			dst = append(dst, 0)
			continue
		}
		dst = append(dst, byte(a.val.Type))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(a.val.Num))
		dst = appendString(dst, a.val.Str)
		dst = appendString(dst, a.eventID)
		dst = appendString(dst, a.source)
		dst = binary.AppendVarint(dst, a.time)
	}
	return l.AppendState(dst, &t.state)
}

var errCorrupt = errors.New("corrupt twin snapshot")

// errSchemaChanged reports a snapshot written under another schema version.
var errSchemaChanged = errors.New("twin snapshot is from another schema version")

func decodeSnapshot(key string, src []byte, schemaVersion int, l *agg.Layout, intern func(string) string) (*twin, error) {
	if len(src) == 0 || src[0] != snapshotVersion {
		return nil, errCorrupt
	}
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
			typ := src[0]
			src = src[1:]
			if typ == 0 {
				continue
			}
			a := &t.attrs[i]
			if len(src) < 8 {
				return nil, errCorrupt
			}
			a.val = twinhub.Value{Type: twinhub.FieldType(typ), Set: true, Num: math.Float64frombits(binary.LittleEndian.Uint64(src))}
			src = src[8:]
			var ok bool
			if a.val.Str, src, ok = readString(src); !ok {
				return nil, errCorrupt
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
		}
	}
	st, rest, err := l.DecodeState(src)
	if err != nil {
		return nil, err
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
