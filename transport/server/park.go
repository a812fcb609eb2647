package server

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// parkConn sits under a tls.Conn so that an idle session can wait for its
// next frame in a shallow raw read instead of deep inside crypto/tls. The
// goroutine stack of a session parked in tls.Conn.Read is ~2.5 KB deep,
// which keeps it at 8 KB forever (the GC halves a stack only when less
// than a quarter is used); parked here it uses well under 1 KB and shrinks
// to 2 KB. That is most of an idle connection's memory.
//
// Protocol, all on the session goroutine:
//   - before reading a frame the session sets nonblock; if tls needs raw
//     bytes, Read returns errWouldBlock at once (a temporary net.Error,
//     which tls does not make sticky) and, because nothing of the frame
//     was consumed yet, the session calls park and tries again;
//   - as soon as tls hands the session any bytes, nonblock is cleared
//     (sessReader), so the rest of a frame is read normally;
//   - park waits for readability in the socket's RawConn.Read and only
//     then reads into a pooled buffer, which Read serves to tls and
//     returns to the pool once drained: a parked connection holds no
//     buffer, and there is no extra syscall per frame.
type parkConn struct {
	net.Conn
	nonblock bool
	buf      *[]byte // pooled; nil unless park read bytes tls has not taken
	pending  []byte  // unread part of *buf

	rc      syscall.RawConn    // set by the first park
	rawRead func(uintptr) bool // p.readRaw, bound once
	rerr    error              // what readRaw saw
	got     bool               // readRaw read bytes
	nowait  bool               // readRaw returns at EAGAIN instead of waiting

	// Deadline tracking, for protocol sessions only (own; set before the
	// session starts, never for HTTPS connections, whose deadlines
	// net/http sets from several goroutines).
	own  bool
	want time.Time // the read deadline the session asked for
	set  time.Time // the one on the socket: earlier while a hot wait's stands
}

// SetReadDeadline records the session's deadline and puts it on the
// socket (tls.Conn passes its SetReadDeadline through to here).
func (p *parkConn) SetReadDeadline(t time.Time) error {
	if !p.own {
		return p.Conn.SetReadDeadline(t)
	}
	p.want = t
	return p.putDeadline(t)
}

// putDeadline puts t on the socket unless it is there already.
func (p *parkConn) putDeadline(t time.Time) error {
	if p.set.Equal(t) {
		return nil
	}
	p.set = t
	return p.Conn.SetReadDeadline(t)
}

// restore puts the session's own deadline back after a hot wait (a no-op
// without deadline tracking: want and set stay zero).
func (p *parkConn) restore() { _ = p.putDeadline(p.want) }

// hotPark is park with an earlier deadline, hd; it leaves hd on the
// socket (restored lazily, before the next read that may block), so a
// busy connection pays one deadline update per frame, not two.
func (p *parkConn) hotPark(hd time.Time) error {
	if hd.Before(p.want) {
		_ = p.putDeadline(hd)
	}
	return p.park()
}

var parkPool = sync.Pool{New: func() any { b := make([]byte, 2048); return &b }}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "would block" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

var errWouldBlock net.Error = wouldBlock{}

func (p *parkConn) Read(b []byte) (int, error) {
	if len(p.pending) > 0 {
		n := copy(b, p.pending)
		p.pending = p.pending[n:]
		if len(p.pending) == 0 {
			parkPool.Put(p.buf)
			p.buf, p.pending = nil, nil
		}
		p.nonblock = false // the peer is sending: read the rest normally
		return n, nil
	}
	if p.nonblock {
		return 0, errWouldBlock
	}
	p.restore()
	return p.Conn.Read(b)
}

// park waits (under the read deadline) until the peer sends something.
// It waits in the TCP connection's RawConn.Read, whose callback reads into
// a pooled buffer only once the socket is readable: a parked connection
// holds no buffer (a plain Read would hold one for the whole wait).
func (p *parkConn) park() error {
	if !p.raw() {
		return p.parkRead()
	}
	_, err := p.rawReadOnce(false)
	return err
}

// tryRead reads what the socket holds without waiting; got is false when
// it holds nothing. Like park, it fails once the read deadline passed.
func (p *parkConn) tryRead() (got bool, err error) {
	if !p.raw() {
		return false, errors.New("server: connection has no descriptor")
	}
	p.restore()
	return p.rawReadOnce(true)
}

// rawReadOnce runs readRaw in the socket's RawConn.Read: waiting for
// readability unless nowait.
func (p *parkConn) rawReadOnce(nowait bool) (got bool, err error) {
	p.rerr, p.nowait, p.got = nil, nowait, false
	if err := p.rc.Read(p.rawRead); err != nil {
		return false, err
	}
	return p.got, p.rerr
}

// raw sets up p.rc; false for a connection without a descriptor.
func (p *parkConn) raw() bool {
	if p.rc != nil {
		return true
	}
	sc, ok := p.Conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	p.rc, p.rawRead = rc, p.readRaw
	return true
}

// readRaw is the RawConn callback: false asks the runtime to wait for
// readability (no buffer held meanwhile).
func (p *parkConn) readRaw(fd uintptr) bool {
	bp := parkPool.Get().(*[]byte)
	for {
		n, err := syscall.Read(int(fd), *bp)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			parkPool.Put(bp)
			return p.nowait
		case err != nil:
			p.rerr = err
		case n == 0:
			p.rerr = io.EOF
		default:
			p.buf, p.pending, p.got = bp, (*bp)[:n], true
			return true
		}
		parkPool.Put(bp)
		return true
	}
}

// parkRead is the fallback for a connection without a descriptor.
func (p *parkConn) parkRead() error {
	bp := parkPool.Get().(*[]byte)
	n, err := p.Conn.Read(*bp)
	if n > 0 {
		p.buf, p.pending = bp, (*bp)[:n]
		return nil
	}
	parkPool.Put(bp)
	return err
}

func (p *parkConn) release() {
	if p.buf != nil {
		parkPool.Put(p.buf)
		p.buf, p.pending = nil, nil
	}
}

// sessReader is what the session's wire.Reader reads: the tls.Conn, with
// nonblock cleared once a frame has started.
type sessReader struct {
	tls interface{ Read([]byte) (int, error) }
	p   *parkConn
}

func (r *sessReader) Read(b []byte) (int, error) {
	n, err := r.tls.Read(b)
	if n > 0 {
		r.p.nonblock = false
	}
	return n, err
}
