package engine

// idSet is a partition's set of seen event ids: open addressing with linear
// probing over parallel arrays, 12 bytes a slot. It holds an id for every
// archived event, so it is the engine's largest structure; a Go map costs
// about 28 bytes an entry here, this about 12/load (15 to 24).
type idSet struct {
	hs     []uint64 // 0 marks an empty slot; a real hash of 0 is stored as 1
	checks []uint32
	n      int
}

const idSetMaxLoad = 0.8

func (s *idSet) slot(h uint64) uint64 {
	if h == 0 {
		h = 1
	}
	return h
}

// lookup reports whether id is in the set.
func (s *idSet) lookup(id IDHash) bool {
	if s.n == 0 {
		return false
	}
	h := s.slot(id.H)
	mask := uint64(len(s.hs) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.hs[i] {
		case 0:
			return false
		case h:
			if s.checks[i] == id.Check {
				return true
			}
		}
	}
}

// add inserts id; it reports false if it was already there.
func (s *idSet) add(id IDHash) bool {
	if float64(s.n+1) > idSetMaxLoad*float64(len(s.hs)) {
		s.grow()
	}
	h := s.slot(id.H)
	mask := uint64(len(s.hs) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.hs[i] {
		case 0:
			s.hs[i], s.checks[i] = h, id.Check
			s.n++
			return true
		case h:
			if s.checks[i] == id.Check {
				return false
			}
		}
	}
}

// remove deletes id (backward-shift deletion keeps probe chains intact).
func (s *idSet) remove(id IDHash) {
	if s.n == 0 {
		return
	}
	h := s.slot(id.H)
	mask := uint64(len(s.hs) - 1)
	i := h & mask
	for ; s.hs[i] != 0; i = (i + 1) & mask {
		if s.hs[i] == h && s.checks[i] == id.Check {
			break
		}
	}
	if s.hs[i] == 0 {
		return
	}
	for j := (i + 1) & mask; s.hs[j] != 0; j = (j + 1) & mask {
		home := s.hs[j] & mask
		// Move j back into the hole at i unless its home lies in (i, j]:
		// then it is at least as far from home as from the hole.
		if (j-home)&mask >= (j-i)&mask {
			s.hs[i], s.checks[i] = s.hs[j], s.checks[j]
			i = j
		}
	}
	s.hs[i], s.checks[i] = 0, 0
	s.n--
}

func (s *idSet) grow() {
	size := max(1024, 2*len(s.hs))
	old, oldChecks := s.hs, s.checks
	s.hs, s.checks, s.n = make([]uint64, size), make([]uint32, size), 0
	for i, h := range old {
		if h != 0 {
			s.add(IDHash{H: h, Check: oldChecks[i]})
		}
	}
}
