// Package heapq is a binary min-heap over a slice of values ordered by
// their own Less method: no interface boxing, no allocation per push once
// the slice has grown (unlike container/heap).
package heapq

// Ordered is a value that orders itself against another of its type.
type Ordered[T any] interface {
	Less(T) bool
}

// Heap is a min-heap. The zero value is an empty heap.
type Heap[T Ordered[T]] []T

// Len is the number of items.
func (h Heap[T]) Len() int { return len(h) }

// Push adds x.
func (h *Heap[T]) Push(x T) {
	*h = append(*h, x)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if !a[i].Less(a[p]) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

// Pop removes and returns the least item. The heap must not be empty.
func (h *Heap[T]) Pop() T {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && a[l].Less(a[m]) {
			m = l
		}
		if r := l + 1; r < n && a[r].Less(a[m]) {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}

// Peek returns the least item without removing it.
func (h Heap[T]) Peek() (T, bool) {
	if len(h) == 0 {
		var zero T
		return zero, false
	}
	return h[0], true
}
