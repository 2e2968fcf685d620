package engine

// twinTable holds a partition's hot twins by key. It is keyed by the key's
// 64-bit hash, the one that chose the partition (keyHash), so a lookup hashes
// nothing; a slot holds the hash beside the twin pointer, so a probe reads
// one cache line, and the twin (which the caller reads next anyway) is only
// dereferenced, to compare keys, on a full hash match. A Go map cost a hash
// of the key and a miss more per event. Open addressing with linear probing.
type twinTable struct {
	slots []twinSlot
	n     int
}

type twinSlot struct {
	h uint64 // 0 marks an empty slot; a hash of 0 is stored as 1
	t *twin
}

const twinTableMaxLoad = 0.75

// home is h's first slot. The partition is h modulo the partition count, so
// the low bits of every hash in one table are alike: the slot is taken from
// the high bits of h times a large odd constant instead.
func (tt *twinTable) home(h uint64) uint64 {
	return (h * 0x9e3779b97f4a7c15) >> 32 & uint64(len(tt.slots)-1)
}

func storedHash(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}

// get returns the twin of key, whose hash is h, or nil.
func (tt *twinTable) get(h uint64, key string) *twin {
	if tt.n == 0 {
		return nil
	}
	h = storedHash(h)
	mask := uint64(len(tt.slots) - 1)
	for i := tt.home(h); ; i = (i + 1) & mask {
		sl := &tt.slots[i]
		if sl.h == 0 {
			return nil
		}
		if sl.h == h && sl.t.key == key {
			return sl.t
		}
	}
}

// put adds t, which must not be in the table; t.hash is its key's hash.
func (tt *twinTable) put(t *twin) {
	if float64(tt.n+1) > twinTableMaxLoad*float64(len(tt.slots)) {
		tt.grow()
	}
	h := storedHash(t.hash)
	mask := uint64(len(tt.slots) - 1)
	i := tt.home(h)
	for tt.slots[i].h != 0 {
		i = (i + 1) & mask
	}
	tt.slots[i] = twinSlot{h: h, t: t}
	tt.n++
}

// remove deletes t. Backward-shift deletion keeps the probe chains intact
// without tombstones.
func (tt *twinTable) remove(t *twin) {
	if tt.n == 0 {
		return
	}
	mask := uint64(len(tt.slots) - 1)
	i := tt.home(storedHash(t.hash))
	for ; tt.slots[i].t != t; i = (i + 1) & mask {
		if tt.slots[i].h == 0 {
			return
		}
	}
	for j := (i + 1) & mask; tt.slots[j].h != 0; j = (j + 1) & mask {
		// Move j back into the hole at i unless its home lies in (i, j]:
		// then it is at least as far from home as from the hole.
		if (j-tt.home(tt.slots[j].h))&mask >= (j-i)&mask {
			tt.slots[i] = tt.slots[j]
			i = j
		}
	}
	tt.slots[i] = twinSlot{}
	tt.n--
}

func (tt *twinTable) len() int { return tt.n }

func (tt *twinTable) grow() {
	old := tt.slots
	tt.slots, tt.n = make([]twinSlot, max(64, 2*len(old))), 0
	for _, sl := range old {
		if sl.t != nil {
			tt.put(sl.t)
		}
	}
}
