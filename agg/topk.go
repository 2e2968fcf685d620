package agg

// addTop counts v in a space-saving summary of at most capacity counters:
// exact while fewer than capacity values were seen; beyond, a new value
// takes over the smallest counter, inheriting its count as the error bound.
// It keeps v, which the caller must not modify.
func addTop(p *[]TopEntry, v string, capacity int) {
	top := *p
	for j := range top {
		if top[j].Value == v {
			top[j].Count++
			return
		}
	}
	if len(top) < capacity {
		*p = append(top, TopEntry{Value: v, Count: 1})
		return
	}
	m := 0
	for j := 1; j < len(top); j++ {
		if top[j].Count < top[m].Count {
			m = j
		}
	}
	top[m] = TopEntry{Value: v, Count: top[m].Count + 1, Err: top[m].Count}
}

// topValue returns the k most counted entries of top, by count descending
// then value ascending, in a new slice.
func topValue(top []TopEntry, k int) []TopEntry {
	out := make([]TopEntry, 0, min(k, len(top)))
	for _, e := range top {
		// Insertion into the k best so far: top holds at most 4k entries.
		j := len(out)
		for j > 0 && before(e, out[j-1]) {
			j--
		}
		if j == k {
			continue
		}
		if len(out) < k {
			out = append(out, TopEntry{})
		}
		copy(out[j+1:], out[j:len(out)-1])
		out[j] = e
	}
	return out
}

// before reports whether a ranks before b in a top-k answer.
func before(a, b TopEntry) bool {
	if a.Count != b.Count {
		return a.Count > b.Count
	}
	return a.Value < b.Value
}
