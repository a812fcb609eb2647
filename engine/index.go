package engine

import "jumpfleet/internal/heapq"

// fenwick counts queued clients by sequence number so that a client's queue
// position (how many are ahead of it in its lane) costs O(log n). Sequence
// numbers are dense per lane and restart at zero whenever the lane empties,
// so the tree is sized by one rollout's queue, not by history.
type fenwick struct {
	t []int32
}

func (f *fenwick) grow(n int) {
	if n <= len(f.t) {
		return
	}
	size := max(2*len(f.t), n, 1024)
	old := f.t
	f.t = make([]int32, size)
	// Rebuild from point values: recover them from the old tree first.
	vals := make([]int32, len(old))
	for i := range old {
		vals[i] = f.pointFrom(old, i)
	}
	for i, v := range vals {
		if v != 0 {
			f.add(i, v)
		}
	}
}

func (f *fenwick) pointFrom(t []int32, i int) int32 {
	return prefixIn(t, i+1) - prefixIn(t, i)
}

func prefixIn(t []int32, n int) int32 {
	var s int32
	for i := n; i > 0; i -= i & -i {
		s += t[i-1]
	}
	return s
}

// add adds d at position i (0-based).
func (f *fenwick) add(i int, d int32) {
	f.grow(i + 1)
	for j := i + 1; j <= len(f.t); j += j & -j {
		f.t[j-1] += d
	}
}

// prefix counts entries at positions < i.
func (f *fenwick) prefix(i int) int {
	if i > len(f.t) {
		i = len(f.t)
	}
	return int(prefixIn(f.t, i))
}

func (f *fenwick) reset() { clear(f.t) }

// lane is one FIFO queue lane: a sequence counter, the count of members and
// the position index. Membership itself lives in the client entries.
type lane struct {
	next  uint64
	count int
	pos   fenwick
	// epoch counts numbering restarts: sequence numbers of different
	// epochs are not comparable (the dispatch frontier needs to know).
	epoch uint64
}

func (l *lane) push() uint64 {
	s := l.next
	l.next++
	l.count++
	l.pos.add(int(s), 1)
	return s
}

func (l *lane) remove(seq uint64) {
	l.pos.add(int(seq), -1)
	l.count--
	if l.count == 0 {
		// Nobody left to order against: restart numbering so the
		// position index never grows beyond one queue's length.
		l.next = 0
		l.pos.reset()
		l.epoch++
	}
}

// ahead counts members of the lane queued before seq.
func (l *lane) ahead(seq uint64) int { return l.pos.prefix(int(seq)) }

// item is a heap element: a client index ordered by key. Heaps are lazy:
// entries are validated when they surface, so removing a client from a heap
// is free and stale entries are dropped on the way.
type item struct {
	key int64 // seq, or a deadline in Unix ms
	idx int32
}

// Less orders items by key, then index (for determinism).
func (a item) Less(b item) bool {
	if a.key != b.key {
		return a.key < b.key
	}
	return a.idx < b.idx
}

// minHeap is a lazy min-heap of items.
type minHeap = heapq.Heap[item]
