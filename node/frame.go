package node

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// maxHeader is the longest header of an unmasked server frame.
const maxHeader = 10

// maxPooledFrame is the largest frame buffer kept in the pool; bigger ones are
// left to the garbage collector so one huge push does not pin memory.
const maxPooledFrame = 64 << 10

// frame is one encoded WebSocket frame, shared by every session it is written
// to. Server frames are unmasked, so the same bytes serve all recipients.
// refs counts the queues still holding it; the last release returns it to the
// pool.
type frame struct {
	buf  []byte // maxHeader bytes of room, then the payload
	off  int    // where the header starts in buf
	sent int64  // publisher timestamp (UnixNano) for the latency metric; 0 if unknown
	refs atomic.Int32
	// A push with a position: seq and prev (the position of the push before
	// it on the same subject) and its subject's key (subjectKey), by which a
	// resuming session holds it back (recover.go).
	seq, prev uint64
	subject   string
	// receipt is set when the publisher asked for receipts.
	receipt *receipt
}

var framePool = sync.Pool{New: func() any { return &frame{buf: make([]byte, maxHeader, 512)} }}

// newFrame returns a frame ready for its payload to be appended to f.buf.
func newFrame() *frame {
	f := framePool.Get().(*frame)
	f.buf = f.buf[:maxHeader]
	f.off = 0
	f.sent = 0
	f.seq, f.prev, f.subject, f.receipt = 0, 0, "", nil
	f.refs.Store(1)
	return f
}

// seal writes the header for a final frame with the given opcode in front of
// the payload.
func (f *frame) seal(opcode byte) {
	n := len(f.buf) - maxHeader
	var h [maxHeader]byte
	h[0] = 0x80 | opcode
	hl := 2
	switch {
	case n < 126:
		h[1] = byte(n)
	case n <= 0xFFFF:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
		hl = 4
	default:
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
		hl = 10
	}
	f.off = maxHeader - hl
	copy(f.buf[f.off:], h[:hl])
}

// bytes is the whole frame as written to the socket.
func (f *frame) bytes() []byte { return f.buf[f.off:] }

// payload is the frame's payload.
func (f *frame) payload() []byte { return f.buf[maxHeader:] }

func (f *frame) retain() { f.refs.Add(1) }

// release drops one reference; the last one recycles the frame.
func (f *frame) release() {
	if f.refs.Add(-1) == 0 && cap(f.buf) <= maxPooledFrame {
		framePool.Put(f)
	}
}

// WebSocket opcodes the node writes.
const (
	opText  = 0x1
	opClose = 0x8
	opPong  = 0xA
)

// pongFrame builds the pong that answers a ping: RFC 6455 section 5.5.3 wants
// the ping's payload echoed (at most 125 bytes, as control frames are). The
// frame comes from the pool, so answering pings allocates nothing.
func pongFrame(payload []byte) *frame {
	if len(payload) > 125 {
		payload = payload[:125]
	}
	f := newFrame()
	f.buf = append(f.buf, payload...)
	f.seal(opPong)
	return f
}

// closeFrame builds a close frame with code and reason. The reason is cut to
// fit the 125-byte control frame limit.
func closeFrame(code CloseCode, reason string) *frame {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	f := newFrame()
	f.buf = binary.BigEndian.AppendUint16(f.buf, uint16(code))
	f.buf = append(f.buf, reason...)
	f.seal(opClose)
	return f
}
