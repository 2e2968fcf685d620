package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestTwinTable checks the table against a map through random puts and
// removes, with hashes forced to collide (a handful of distinct values, 0
// among them) so that probe chains are long and backward shifts happen.
func TestTwinTable(t *testing.T) {
	for _, hashes := range []int{1, 3, 1 << 30} {
		t.Run(fmt.Sprintf("hashes=%d", hashes), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(hashes)))
			var tt twinTable
			want := map[string]*twin{}
			hashOf := func(key string) uint64 { return keyHash(key) % uint64(hashes) }
			for step := range 20000 {
				key := fmt.Sprintf("c-%d", rng.IntN(500))
				h := hashOf(key)
				if cur, ok := want[key]; ok && rng.IntN(2) == 0 {
					tt.remove(cur)
					delete(want, key)
				} else if !ok {
					tw := &twin{key: key, hash: h}
					tt.put(tw)
					want[key] = tw
				}
				if tt.len() != len(want) {
					t.Fatalf("step %d: len = %d, want %d", step, tt.len(), len(want))
				}
				if step%97 == 0 {
					for i := range 500 {
						k := fmt.Sprintf("c-%d", i)
						if got := tt.get(hashOf(k), k); got != want[k] {
							t.Fatalf("step %d: get(%q) = %v, want %v", step, k, got, want[k])
						}
					}
				}
			}
		})
	}
}
