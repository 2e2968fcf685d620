package ingest

import "unsafe"

const chunkSize = 64 << 10

// arena hands out byte ranges from fixed chunks; earlier ranges stay valid as
// it grows because chunks are never moved.
type arena struct {
	cur  []byte
	full [][]byte
}

func (a *arena) bytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	if cap(a.cur)-len(a.cur) < len(b) {
		if a.cur != nil {
			a.full = append(a.full, a.cur)
		}
		a.cur = make([]byte, 0, max(chunkSize, len(b)))
	}
	n := len(a.cur)
	a.cur = append(a.cur, b...)
	return a.cur[n:len(a.cur):len(a.cur)]
}

func (a *arena) string(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	c := a.bytes(b)
	return unsafe.String(&c[0], len(c))
}

func (a *arena) reset() {
	a.cur = a.cur[:0]
	a.full = a.full[:0]
}
