package server

import (
	"errors"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// poller lets idle TLS sessions wait for their next bytes without a
// goroutine each.
//
// Why: a goroutine parked on a socket keeps a 4 KB stack (the floor, see
// park.go) plus its g, about a third of an idle TLS connection's memory.
// An idle session instead registers its socket here (EPOLLONESHOT, level
// triggered, so bytes that arrived before the registration still wake it)
// and arms a timer for its read deadline; its goroutine returns. The
// first of readability, the timer, or a close from another goroutine
// starts a fresh goroutine that continues the session (session.wake).
//
// The socket stays registered with Go's own netpoller as well: both may
// watch one descriptor. Events carry the session id, never the
// descriptor, so an event for a descriptor closed and reused meanwhile
// finds no session, or a running one, and does nothing.
type poller struct {
	epfd   int
	evfd   int // eventfd that stop writes to end the loop
	lookup func(sid uint64) *session
	done   atomic.Bool
}

// stopSID marks the eventfd's events; session ids start at 1.
const stopSID = 0

func newPoller(lookup func(uint64) *session) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setSID(&ev, stopSID)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(evfd)
		return nil, err
	}
	return &poller{epfd: epfd, evfd: evfd, lookup: lookup}, nil
}

// The 8-byte epoll_data union is the two int32 fields of x/sys's
// EpollEvent; the session id is stored across both.
func setSID(ev *unix.EpollEvent, sid uint64) {
	ev.Fd, ev.Pad = int32(uint32(sid)), int32(uint32(sid>>32))
}

func getSID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// arm asks for one wake-up of session sid when fd is readable (or hung
// up). first is true for a descriptor not registered yet.
func (p *poller) arm(fd int, sid uint64, first bool) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	setSID(&ev, sid)
	op := unix.EPOLL_CTL_MOD
	if first {
		op = unix.EPOLL_CTL_ADD
	}
	err := unix.EpollCtl(p.epfd, op, fd, &ev)
	switch {
	case errors.Is(err, unix.ENOENT) && !first:
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
	case errors.Is(err, unix.EEXIST) && first:
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
	}
	return err
}

// run wakes sessions until stop; it owns and closes the descriptors.
func (p *poller) run() {
	defer func() {
		_ = unix.Close(p.epfd)
		_ = unix.Close(p.evfd)
	}()
	events := make([]unix.EpollEvent, 512)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for i := range events[:n] {
			sid := getSID(&events[i])
			if sid == stopSID {
				if p.done.Load() {
					return
				}
				continue
			}
			if s := p.lookup(sid); s != nil {
				s.wake()
			}
		}
	}
}

// stop ends run; safe to call more than once.
func (p *poller) stop() {
	if p.done.Swap(true) {
		return
	}
	var one = [8]byte{1}
	_, _ = unix.Write(p.evfd, one[:])
}
