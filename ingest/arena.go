package ingest

import "unsafe"

const chunkSize = 64 << 10

// arena hands out byte ranges from fixed chunks; earlier ranges stay valid as
// it grows because chunks are never moved. Reset keeps the chunks for the
// next batch: a batch of NDJSON fills several, and allocating them anew each
// time cost a clear of 64 KiB and garbage for the collector per chunk.
type arena struct {
	cur  []byte
	full [][]byte // chunks filled before cur
	free [][]byte // chunks kept by reset, to be filled again
}

func (a *arena) bytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	if cap(a.cur)-len(a.cur) < len(b) {
		a.next(len(b))
	}
	n := len(a.cur)
	a.cur = append(a.cur, b...)
	return a.cur[n:len(a.cur):len(a.cur)]
}

// next makes cur a chunk with room for n bytes.
func (a *arena) next(n int) {
	if a.cur != nil {
		a.full = append(a.full, a.cur)
	}
	if k := len(a.free) - 1; k >= 0 && cap(a.free[k]) >= n {
		a.cur, a.free[k] = a.free[k][:0], nil
		a.free = a.free[:k]
		return
	}
	a.cur = make([]byte, 0, max(chunkSize, n))
}

func (a *arena) string(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	c := a.bytes(b)
	return unsafe.String(&c[0], len(c))
}

// reset makes every chunk free for reuse. Only chunks of the standard size
// are kept, so one huge record does not pin its memory for ever.
func (a *arena) reset() {
	for _, c := range a.full {
		if cap(c) == chunkSize {
			a.free = append(a.free, c)
		}
	}
	clear(a.full)
	a.full = a.full[:0]
	a.cur = a.cur[:0]
}
