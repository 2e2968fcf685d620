package agg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// stateVersion is the first byte of an encoded State.
//
// Encoding, all integers varints:
//
//	version byte
//	len(Num) len(Sets) len(Tops)      must match the Layout
//	Num slots                         float: uvarint of the byte-reversed bits (whole numbers take 1-3 bytes); time: varint
//	len(Win), then per cell:          Agg delta; Bucket (varint, or uvarint delta-1 within an aggregate); N;
//	                                  Val unless count; Aux for last
//	per Sets slot:                    n <= MaxExactDistinct, then the first hash and the gaps minus one;
//	                                  or MaxExactDistinct+1 and the sketch's words (little-endian)
//	per Tops slot:                    n, then per entry len(Value) Value Count Err
const stateVersion = 1

var errTruncated = errors.New("truncated")

// AppendState appends the encoding of s to dst and returns the extended
// buffer. s must come from l (New or DecodeState).
func (l *Layout) AppendState(dst []byte, s *State) []byte {
	dst = append(dst, stateVersion)
	dst = binary.AppendUvarint(dst, uint64(len(s.Num)))
	dst = binary.AppendUvarint(dst, uint64(len(s.Sets)))
	dst = binary.AppendUvarint(dst, uint64(len(s.Tops)))
	for j, f := range s.Num {
		if l.enc[j] == slotTime {
			dst = binary.AppendVarint(dst, timeOf(f))
		} else {
			dst = appendFloat(dst, f)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(s.Win)))
	prev := Cell{}
	for j, c := range s.Win {
		dst = binary.AppendUvarint(dst, uint64(c.Agg-prev.Agg))
		if j > 0 && c.Agg == prev.Agg {
			dst = binary.AppendUvarint(dst, uint64(int64(c.Bucket)-int64(prev.Bucket)-1))
		} else {
			dst = binary.AppendVarint(dst, int64(c.Bucket))
		}
		dst = binary.AppendUvarint(dst, uint64(c.N))
		switch l.aggs[c.Agg].kind {
		case Count:
		case Last:
			dst = appendFloat(dst, c.Val)
			dst = binary.AppendVarint(dst, c.Aux)
		default:
			dst = appendFloat(dst, c.Val)
		}
		prev = c
	}
	for _, set := range s.Sets {
		if isHLL(set) {
			dst = binary.AppendUvarint(dst, MaxExactDistinct+1)
			for _, w := range set[1:] {
				dst = binary.LittleEndian.AppendUint64(dst, w)
			}
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(len(set)))
		for j, h := range set {
			if j == 0 {
				dst = binary.AppendUvarint(dst, h)
			} else {
				dst = binary.AppendUvarint(dst, h-set[j-1]-1)
			}
		}
	}
	for _, top := range s.Tops {
		dst = binary.AppendUvarint(dst, uint64(len(top)))
		for _, e := range top {
			dst = binary.AppendUvarint(dst, uint64(len(e.Value)))
			dst = append(dst, e.Value...)
			dst = binary.AppendUvarint(dst, uint64(e.Count))
			dst = binary.AppendUvarint(dst, uint64(e.Err))
		}
	}
	return dst
}

func appendFloat(dst []byte, f float64) []byte {
	return binary.AppendUvarint(dst, bits.ReverseBytes64(math.Float64bits(f)))
}

// decoder reads varints from src and remembers the first error.
type decoder struct {
	src []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.src)
	if n <= 0 {
		if n == 0 {
			d.err = errTruncated
		} else {
			d.err = errors.New("varint overflows 64 bits")
		}
		return 0
	}
	d.src = d.src[n:]
	return x
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.src)
	if n <= 0 {
		if n == 0 {
			d.err = errTruncated
		} else {
			d.err = errors.New("varint overflows 64 bits")
		}
		return 0
	}
	d.src = d.src[n:]
	return x
}

func (d *decoder) float() float64 { return math.Float64frombits(bits.ReverseBytes64(d.uvarint())) }

// count reads a length and checks it against limit and against the bytes
// left, at least minBytes per element, so corrupt input cannot make the
// decoder allocate much.
func (d *decoder) count(what string, limit, minBytes int) int {
	n := d.uvarint()
	switch {
	case d.err != nil:
		return 0
	case n > uint64(limit):
		d.fail("%s: %d, at most %d", what, n, limit)
		return 0
	case n*uint64(minBytes) > uint64(len(d.src)):
		d.err = errTruncated
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.src) {
		d.err = errTruncated
		return nil
	}
	b := d.src[:n]
	d.src = d.src[n:]
	return b
}

// DecodeState decodes a State encoded by AppendState with the same Layout
// and returns it with the bytes of src that follow it. The State shares no
// memory with src. Truncated or inconsistent input returns an error.
func (l *Layout) DecodeState(src []byte) (State, []byte, error) {
	s, rest, err := l.decodeState(src)
	if err != nil {
		return State{}, nil, fmt.Errorf("decode aggregate state: %w", err)
	}
	return s, rest, nil
}

func (l *Layout) decodeState(src []byte) (State, []byte, error) {
	if len(src) == 0 {
		return State{}, nil, errTruncated
	}
	if src[0] != stateVersion {
		return State{}, nil, fmt.Errorf("version %d, want %d", src[0], stateVersion)
	}
	d := &decoder{src: src[1:]}
	nNum, nSets, nTops := d.uvarint(), d.uvarint(), d.uvarint()
	if d.err != nil {
		return State{}, nil, d.err
	}
	if nNum != uint64(len(l.init)) || nSets != uint64(l.nSets) || nTops != uint64(l.nTops) {
		return State{}, nil, fmt.Errorf("shape %d/%d/%d slots, want %d/%d/%d for this layout",
			nNum, nSets, nTops, len(l.init), l.nSets, l.nTops)
	}
	s := l.New()
	for j := range s.Num {
		if l.enc[j] == slotTime {
			s.Num[j] = timeBits(d.varint())
		} else {
			s.Num[j] = d.float()
		}
	}
	// A cell takes at least 3 bytes (Agg delta, Bucket, N).
	if n := d.count("window cells", math.MaxInt32, 3); n > 0 {
		s.Win = make([]Cell, n)
		var prev Cell
		for j := range s.Win {
			c := &s.Win[j]
			delta := d.uvarint()
			if d.err != nil {
				break
			}
			agg := uint64(prev.Agg) + delta
			if delta >= uint64(len(l.aggs)) || agg >= uint64(len(l.aggs)) || l.aggs[agg].bucket == 0 {
				d.fail("window cell %d: aggregate %d is not windowed", j, agg)
				break
			}
			c.Agg = uint16(agg)
			var b int64
			if j > 0 && c.Agg == prev.Agg {
				gap := d.uvarint()
				if gap >= math.MaxUint32 {
					d.fail("window cell %d: bucket gap %d", j, gap)
					break
				}
				b = int64(prev.Bucket) + int64(gap) + 1
			} else {
				b = d.varint()
			}
			if b > math.MaxInt32 || b < math.MinInt32 {
				d.fail("window cell %d: bucket %d out of range", j, b)
				break
			}
			c.Bucket = int32(b)
			n := d.uvarint()
			if n == 0 || n > math.MaxUint32 {
				d.fail("window cell %d: %d events", j, n)
				break
			}
			c.N = uint32(n)
			switch l.aggs[c.Agg].kind {
			case Count:
			case Last:
				c.Val = d.float()
				c.Aux = d.varint()
			default:
				c.Val = d.float()
			}
			prev = *c
		}
		if d.err != nil {
			return State{}, nil, d.err
		}
	}
	for j := range s.Sets {
		n := d.uvarint()
		if d.err != nil {
			break
		}
		if n == MaxExactDistinct+1 {
			raw := d.bytes(8 * hllWords)
			if d.err != nil {
				break
			}
			sk := make([]uint64, hllLen)
			sk[0] = hllMagic
			for w := range hllWords {
				sk[1+w] = binary.LittleEndian.Uint64(raw[8*w:])
			}
			for r := range uint64(hllM) {
				if x := hllGet(sk, r); x > hllMaxR {
					d.fail("distinct set %d: register %d holds %d, at most %d", j, r, x, hllMaxR)
					return State{}, nil, d.err
				}
			}
			s.Sets[j] = sk
			continue
		}
		if n > MaxExactDistinct {
			d.fail("distinct set %d: %d values, at most %d", j, n, MaxExactDistinct)
			break
		}
		if n > uint64(len(d.src)) {
			d.err = errTruncated
			break
		}
		if n == 0 {
			continue
		}
		set := make([]uint64, n)
		for k := range set {
			x := d.uvarint()
			if k > 0 {
				next := set[k-1] + x + 1
				if x == math.MaxUint64 || next <= set[k-1] {
					d.fail("distinct set %d: value %d overflows", j, k)
					break
				}
				x = next
			}
			set[k] = x
		}
		s.Sets[j] = set
	}
	if d.err != nil {
		return State{}, nil, d.err
	}
	for j := range s.Tops {
		n := d.count("top-k counters", int(l.aggs[l.topAggs[j]].capacity), 3)
		if d.err != nil {
			break
		}
		if n == 0 {
			continue
		}
		top := make([]TopEntry, n)
		for k := range top {
			e := &top[k]
			e.Value = string(d.bytes(d.count("top-k value bytes", math.MaxInt32, 1)))
			count, errb := d.uvarint(), d.uvarint()
			if d.err != nil {
				break
			}
			if count == 0 || count > math.MaxUint32 || errb >= count {
				d.fail("top-k %d entry %d: count %d error %d", j, k, count, errb)
				break
			}
			e.Count, e.Err = uint32(count), uint32(errb)
		}
		if d.err == nil && hasDup(top) {
			d.fail("top-k %d: repeated value", j)
		}
		s.Tops[j] = top
	}
	if d.err != nil {
		return State{}, nil, d.err
	}
	return s, d.src, nil
}

func hasDup(top []TopEntry) bool {
	if len(top) <= 32 {
		for i := range top {
			for j := i + 1; j < len(top); j++ {
				if top[i].Value == top[j].Value {
					return true
				}
			}
		}
		return false
	}
	seen := make(map[string]struct{}, len(top))
	for _, e := range top {
		if _, ok := seen[e.Value]; ok {
			return true
		}
		seen[e.Value] = struct{}{}
	}
	return false
}
