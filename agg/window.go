package agg

import "math"

// cellKey orders cells by (Agg, Bucket) as one unsigned integer.
func cellKey(agg uint16, bucket int32) uint64 {
	return uint64(agg)<<32 | uint64(uint32(bucket)^0x80000000)
}

// searchWin returns the index of the first cell whose key is >= key.
func searchWin(win []Cell, key uint64) int {
	lo, hi := 0, len(win)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if cellKey(win[m].Agg, win[m].Bucket) < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// floorDiv returns floor(t / d) for d > 0.
func floorDiv(t, d int64) int64 {
	q := t / d
	if t%d < 0 {
		q--
	}
	return q
}

// cutoff returns the last bucket of aggregate a that is out of the window at
// now: the window holds the buckets b > cutoff.
func (a *info) cutoff(now int64) int64 { return floorDiv(now, a.bucket) - a.nb }

// firstIn returns the smallest in-window bucket as an int32, and false if
// no representable bucket is in the window.
func firstIn(cut int64) (int32, bool) {
	switch {
	case cut >= math.MaxInt32:
		return 0, false
	case cut < math.MinInt32:
		return math.MinInt32, true
	}
	return int32(cut + 1), true
}

func (l *Layout) addWindow(s *State, i int, a *info, t, now int64, in Input) {
	v := in.Num
	if v != v && a.kind != Count {
		return
	}
	b := floorDiv(t, a.bucket)
	cut := a.cutoff(now)
	if b <= cut || b > math.MaxInt32 || b < math.MinInt32 {
		return
	}
	agg := uint16(i)
	win := s.Win
	lo := searchWin(win, cellKey(agg, math.MinInt32))
	// Drop the cells of aggregate i that left the window.
	end := lo
	for end < len(win) && win[end].Agg == agg && int64(win[end].Bucket) <= cut {
		end++
	}
	if end > lo {
		n := copy(win[lo:], win[end:])
		clear(win[lo+n:])
		win = win[:lo+n]
		s.Win = win
	}
	j := lo + searchWin(win[lo:], cellKey(agg, int32(b)))
	if j < len(win) && win[j].Agg == agg && win[j].Bucket == int32(b) {
		c := &win[j]
		c.N++
		switch a.kind {
		case Sum, Avg:
			c.Val += v
		case Min:
			if v < c.Val {
				c.Val = v
			}
		case Max:
			if v > c.Val {
				c.Val = v
			}
		case Last:
			if t >= c.Aux {
				c.Val, c.Aux = v, t
			}
		}
		return
	}
	c := Cell{N: 1, Bucket: int32(b), Agg: agg}
	switch a.kind {
	case Sum, Avg, Min, Max:
		c.Val = v
	case Last:
		c.Val, c.Aux = v, t
	}
	s.Win = insertCell(win, j, c)
}

// insertCell inserts c at win[j], growing win by a quarter when full: cells
// are added once per bucket, so the copies are rare and the slack stays small.
func insertCell(win []Cell, j int, c Cell) []Cell {
	n := len(win)
	if n < cap(win) {
		win = win[:n+1]
		copy(win[j+1:], win[j:n])
		win[j] = c
		return win
	}
	w := make([]Cell, n+1, n+1+n/4)
	copy(w, win[:j])
	w[j] = c
	copy(w[j+1:], win[j:])
	return w
}

func (l *Layout) windowNum(s *State, i int, a *info, now int64) (float64, bool) {
	agg := uint16(i)
	first, ok := firstIn(a.cutoff(now))
	var (
		n    uint64
		sum  float64
		best float64
		bt   int64
		have bool
	)
	if ok {
		for j := searchWin(s.Win, cellKey(agg, first)); j < len(s.Win) && s.Win[j].Agg == agg; j++ {
			c := &s.Win[j]
			n += uint64(c.N)
			sum += c.Val
			switch a.kind {
			case Min:
				if !have || c.Val < best {
					best, have = c.Val, true
				}
			case Max:
				if !have || c.Val > best {
					best, have = c.Val, true
				}
			case Last:
				if !have || c.Aux >= bt {
					best, bt, have = c.Val, c.Aux, true
				}
			}
		}
	}
	switch a.kind {
	case Count:
		return float64(n), true
	case Sum:
		return sum, true
	case Avg:
		if n == 0 {
			return 0, false
		}
		return sum / float64(n), true
	}
	return best, have
}

// Expire drops every window cell that is out of its aggregate's window at
// now, and releases the slack of State.Win once it holds twice the cells it
// needs, so quiet twins shrink back.
func (l *Layout) Expire(s *State, now int64) {
	win := s.Win
	k := 0
	var (
		agg   = -1
		cut   int64
		drops bool
	)
	for j := range win {
		if int(win[j].Agg) != agg {
			agg = int(win[j].Agg)
			cut = l.aggs[agg].cutoff(now)
		}
		if int64(win[j].Bucket) <= cut {
			drops = true
			continue
		}
		win[k] = win[j]
		k++
	}
	if !drops && (cap(win) < 2*len(win) || len(win) == 0) {
		return
	}
	switch {
	case k == 0:
		s.Win = nil
	case cap(win) >= 2*k:
		s.Win = append([]Cell(nil), win[:k]...)
	default:
		clear(win[k:])
		s.Win = win[:k]
	}
}
