package agg

import (
	"math"
	"math/bits"
	"slices"
)

// A distinct aggregate's State.Sets slot is either an exact set, the value
// hashes sorted in strictly increasing order (at most MaxExactDistinct of
// them), or a HyperLogLog sketch: hllMagic followed by hllWords words that
// pack the 2^hllP six-bit registers, register r in bits 6r to 6r+5 of the
// bit string formed by the words, least significant bit first (3,080 bytes,
// where the exact set it replaces holds 32 KiB). A sorted set cannot start
// with the largest uint64 and go on, so the two never look alike.
const (
	hllP     = 12
	hllM     = 1 << hllP
	hllWords = hllM * 6 / 64
	hllLen   = 1 + hllWords
	hllMagic = math.MaxUint64
	hllMaxR  = 64 - hllP + 1 // largest register value
)

func isHLL(set []uint64) bool { return len(set) == hllLen && set[0] == hllMagic }

func addDistinct(p *[]uint64, h uint64) {
	set := *p
	if isHLL(set) {
		hllAdd(set, h)
		return
	}
	j, found := slices.BinarySearch(set, h)
	if found {
		return
	}
	if len(set) < MaxExactDistinct {
		*p = slices.Insert(set, j, h)
		return
	}
	sk := make([]uint64, hllLen)
	sk[0] = hllMagic
	for _, x := range set {
		hllAdd(sk, x)
	}
	hllAdd(sk, h)
	*p = sk
}

// hllAdd adds hash h to sketch sk. It remixes h first, so callers' hashes
// need not spread their bits evenly.
func hllAdd(sk []uint64, h uint64) {
	x := mix64(h)
	r := x >> (64 - hllP)
	rho := uint64(bits.LeadingZeros64(x<<hllP|1<<(hllP-1))) + 1
	if rho > hllGet(sk, r) {
		hllSet(sk, r, rho)
	}
}

func hllGet(sk []uint64, r uint64) uint64 {
	o := 6 * r
	w, sh := 1+o/64, o%64
	v := sk[w] >> sh
	if sh > 58 {
		v |= sk[w+1] << (64 - sh)
	}
	return v & 63
}

func hllSet(sk []uint64, r, v uint64) {
	o := 6 * r
	w, sh := 1+o/64, o%64
	sk[w] = sk[w]&^(63<<sh) | v<<sh
	if sh > 58 {
		lo := 64 - sh // bits that went into sk[w]
		sk[w+1] = sk[w+1]&^(63>>lo) | v>>lo
	}
}

// mix64 is SplitMix64's finaliser, a bijection that spreads every input bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func distinctCount(set []uint64) int64 {
	if !isHLL(set) {
		return int64(len(set))
	}
	return int64(math.Round(hllEstimate(set)))
}

// hllEstimate is Ertl's improved raw estimator ("New cardinality estimation
// algorithms for HyperLogLog sketches", 2017), unbiased from 0 to far beyond
// 2^32 without empirical corrections.
func hllEstimate(sk []uint64) float64 {
	var c [hllMaxR + 2]int // c[k]: registers holding k
	for r := range uint64(hllM) {
		c[min(hllGet(sk, r), hllMaxR+1)]++
	}
	const q = 64 - hllP
	m := float64(hllM)
	z := m * hllTau(1-float64(c[q+1])/m)
	for k := q; k >= 1; k-- {
		z = 0.5 * (z + float64(c[k]))
	}
	z += m * hllSigma(float64(c[0])/m)
	return m * m / (2 * math.Ln2) / z
}

func hllSigma(x float64) float64 {
	if x == 1 {
		return math.Inf(1)
	}
	y, z := 1.0, x
	for {
		x *= x
		prev := z
		z += x * y
		y += y
		if z == prev {
			return z
		}
	}
}

func hllTau(x float64) float64 {
	if x == 0 || x == 1 {
		return 0
	}
	y, z := 1.0, 1-x
	for {
		x = math.Sqrt(x)
		prev := z
		y *= 0.5
		z -= (1 - x) * (1 - x) * y
		if z == prev {
			return z / 3
		}
	}
}
