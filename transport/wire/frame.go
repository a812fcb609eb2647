package wire

import (
	"errors"
	"io"
	"math/bits"
	"sync"
)

// AppendFrame appends m as one frame (header + payload) to b. It fails
// only if the payload exceeds MaxFrameLimit, leaving b as it was. The
// negotiated limit is the Writer's business, or the caller's.
func AppendFrame(b []byte, m Msg) ([]byte, error) {
	start := len(b)
	b = append(b, byte(m.Type()), 0, 0, 0)
	b = m.AppendTo(b)
	n := len(b) - start - HeaderLen
	if n > MaxFrameLimit {
		return b[:start], newErr(CodeFrameTooLarge, "payload above the 24-bit limit")
	}
	b[start+1], b[start+2], b[start+3] = byte(n>>16), byte(n>>8), byte(n)
	return b, nil
}

// Payload buffers come from power-of-two size classes. Class k holds
// buffers of capacity >= 1<<k, so a buffer grown by append can still be
// returned (to the class its capacity floors to).
const (
	minClass = 6 // 64 bytes
	maxClass = 24
)

var pools [maxClass + 1]sync.Pool

func getBuf(n int) *[]byte {
	k := max(bits.Len(uint(n-1)), minClass)
	if v := pools[k].Get(); v != nil {
		bp := v.(*[]byte)
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n, 1<<k)
	return &b
}

func putBuf(bp *[]byte) {
	c := cap(*bp)
	if c < 1<<minClass {
		return
	}
	k := min(bits.Len(uint(c))-1, maxClass)
	*bp = (*bp)[:0]
	pools[k].Put(bp)
}

func clampMax(n int) int {
	if n <= 0 || n > MaxFrameLimit {
		return MaxFrameLimit
	}
	return n
}

// Reader reads frames from a stream. Between frames it holds only the
// 4-byte header array: the payload buffer is borrowed from a pool for the
// length of one frame, so parked connections stay small. Not safe for
// concurrent use.
type Reader struct {
	r   io.Reader
	max int
	hdr [HeaderLen]byte
}

// NewReader reads frames with payloads of at most maxFrame bytes (start
// with PreHelloMaxFrame, then SetMaxFrame after HelloAck).
func NewReader(r io.Reader, maxFrame int) *Reader {
	return &Reader{r: r, max: clampMax(maxFrame)}
}

// SetMaxFrame changes the payload limit, e.g. to the negotiated one.
func (r *Reader) SetMaxFrame(n int) { r.max = clampMax(n) }

// ReadFrame reads one frame and calls fn with its type and payload. The
// payload is valid only during fn (it goes back to the pool after), so fn
// must copy what it keeps; the Unmarshal methods and Decode do. A clean
// end of stream before a header is io.EOF; a stream ending inside a frame
// is bad_frame (wrapping io.ErrUnexpectedEOF); other I/O errors (deadlines,
// resets) are returned unchanged so the caller can tell them apart.
// Unknown types and oversized lengths fail before the payload is read.
func (r *Reader) ReadFrame(fn func(t MsgType, payload []byte) error) error {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return truncated(err)
	}
	t := MsgType(r.hdr[0])
	n := int(r.hdr[1])<<16 | int(r.hdr[2])<<8 | int(r.hdr[3])
	if !t.Valid() {
		return newErr(CodeBadFrame, "unknown message type")
	}
	if n > r.max {
		return newErr(CodeFrameTooLarge, "frame above the negotiated maximum")
	}
	if n == 0 {
		return fn(t, nil)
	}
	bp := getBuf(n)
	defer putBuf(bp)
	if _, err := io.ReadFull(r.r, *bp); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // EOF after a header is still a cut frame
		}
		return truncated(err)
	}
	return fn(t, *bp)
}

func truncated(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Code: CodeBadFrame, Msg: "truncated frame", Cause: err}
	}
	return err
}

// ReadMsg reads and decodes one frame into a new message.
func (r *Reader) ReadMsg() (m Msg, err error) {
	err = r.ReadFrame(func(t MsgType, p []byte) error {
		m, err = Decode(t, p)
		return err
	})
	return m, err
}

// Writer writes one frame per Write call (one TLS record for small
// frames), encoding into a pooled buffer it does not keep. Not safe for
// concurrent use: a session serialises its writes.
type Writer struct {
	w   io.Writer
	max int
}

// NewWriter writes frames with payloads of at most maxFrame bytes.
func NewWriter(w io.Writer, maxFrame int) *Writer {
	return &Writer{w: w, max: clampMax(maxFrame)}
}

// SetMaxFrame changes the payload limit, e.g. to the negotiated one.
func (w *Writer) SetMaxFrame(n int) { w.max = clampMax(n) }

// WriteMsg encodes m and writes it. A payload above the limit is refused
// with frame_too_large and nothing is written.
func (w *Writer) WriteMsg(m Msg) error {
	bp := getBuf(256)
	defer putBuf(bp)
	b, err := AppendFrame((*bp)[:0], m)
	*bp = b[:0] // keep a grown buffer for the pool
	if err != nil {
		return err
	}
	if len(b)-HeaderLen > w.max {
		return newErr(CodeFrameTooLarge, "frame above the negotiated maximum")
	}
	_, err = w.w.Write(b)
	return err
}
