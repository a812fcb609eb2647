package heapq

import (
	"math/rand/v2"
	"slices"
	"testing"
)

type num int

func (a num) Less(b num) bool { return a < b }

// TestAgainstSort pushes and pops random values and compares with sorting.
func TestAgainstSort(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed))
		var h Heap[num]
		var ref []num
		for step := 0; step < 2000; step++ {
			if rng.IntN(3) > 0 || len(ref) == 0 {
				v := num(rng.IntN(100))
				h.Push(v)
				ref = append(ref, v)
				continue
			}
			slices.Sort(ref)
			got := h.Pop()
			if got != ref[0] {
				t.Fatalf("seed %d step %d: popped %d, want %d", seed, step, got, ref[0])
			}
			ref = ref[1:]
		}
		if h.Len() != len(ref) {
			t.Fatalf("seed %d: len %d, want %d", seed, h.Len(), len(ref))
		}
	}
	var e Heap[num]
	if _, ok := e.Peek(); ok {
		t.Fatal("empty heap peeked a value")
	}
}
