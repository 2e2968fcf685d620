package engine

import (
	"math/rand/v2"
	"testing"
)

func TestIDSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var s idSet
	ref := map[IDHash]bool{}
	for i := range 200_000 {
		// Few distinct hashes, so that probe chains, equal H with different
		// checks and the H=0 case all happen.
		id := IDHash{H: uint64(rng.IntN(50_000)) * 0x9e3779b97f4a7c15 * uint64(rng.IntN(2)), Check: uint32(rng.IntN(4))}
		switch {
		case i%7 == 0:
			s.remove(id)
			delete(ref, id)
		default:
			if got, want := s.add(id), !ref[id]; got != want {
				t.Fatalf("op %d: add(%v) = %v, want %v", i, id, got, want)
			}
			ref[id] = true
		}
		if i%1000 == 0 {
			for id := range ref {
				if !s.lookup(id) {
					t.Fatalf("op %d: %v missing", i, id)
				}
			}
			if s.n != len(ref) {
				t.Fatalf("op %d: n = %d, want %d", i, s.n, len(ref))
			}
		}
	}
	if s.lookup(IDHash{H: 12345, Check: 99}) {
		t.Error("lookup of an absent id succeeded")
	}
}

func TestIDQueue(t *testing.T) {
	var q idQueue
	for i := range uint64(3*idChunk + 10) {
		q.push(idAt{seq: i + 1})
	}
	want := uint64(1)
	check := func(upTo uint64, n int) {
		t.Helper()
		got := q.upTo(upTo, func(x idAt) {
			if x.seq != want {
				t.Fatalf("upTo(%d): seq %d, want %d", upTo, x.seq, want)
			}
			want++
		})
		if got != n {
			t.Fatalf("upTo(%d) = %d, want %d", upTo, got, n)
		}
		q.drop(got)
	}
	check(0, 0)
	check(10, 10)
	check(idChunk+5, idChunk-5)       // across a chunk boundary
	check(3*idChunk, 2*idChunk-5)     // whole chunks
	q.push(idAt{seq: 3*idChunk + 11}) // after drops, pushes go on
	check(1<<40, 11)
	check(1<<40, 0)
	q.push(idAt{seq: 5 * idChunk})
	want = 5 * idChunk
	check(1<<40, 1)
}
