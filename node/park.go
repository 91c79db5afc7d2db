package node

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
)

// Parked reads.
//
// A gws connection is read by a goroutine blocked in ReadLoop, and a blocked
// read path needs a 4 KiB stack: most of an idle session's memory. So between
// frames an idle session gives its goroutine up. The session's net.Conn, as
// gws sees it, is a parkConn: when gws asks for more bytes exactly between two
// frames and the socket has none, the read unwinds ReadLoop with a parkSignal
// panic (nothing in gws is mid-frame or holds a lock there), the goroutine
// hands the socket to the node's poller and ends. When the socket turns
// readable, or the session is being closed, a new goroutine calls ReadLoop
// again, which carries on with gws's state intact.
//
// Only plain TCP sockets park (TLS keeps its own record buffers and is read
// by a goroutine as before), and only on Linux (epoll).

// Reader states.
const (
	reading int32 = iota // a goroutine owns the read side
	parked               // the poller owns it
)

// parkSignal unwinds ReadLoop when a session parks.
type parkSignal struct{}

// errWouldBlock means a non-blocking read found nothing to read.
var errWouldBlock = errors.New("pushd: read would block")

// parkConn is the net.Conn gws reads from.
type parkConn struct {
	net.Conn
	s      *session
	raw    syscall.RawConn
	prefix []byte // bytes the HTTP server read past the handshake
	frames frameTracker

	state  atomic.Int32
	noPark atomic.Bool // set once the session closes: read by blocking until the end
	fd     int32       // valid once polled
	polled bool        // registered with the poller; written by the read side's owner before it first parks

	// A non-blocking read's arguments and results, kept here so the RawConn
	// callback is a method value made once, not a closure per read.
	buf    []byte
	n      int
	err    error
	readFD func(fd uintptr) bool
}

func newParkConn(c *net.TCPConn, prefix []byte) (*parkConn, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	pc := &parkConn{Conn: c, raw: raw, prefix: prefix}
	pc.readFD = pc.readNonBlocking
	return pc, nil
}

// Read serves gws. Between frames, when parking is allowed, it never blocks:
// no bytes means the session parks.
func (c *parkConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := readPrefix(&c.prefix, p)
		c.frames.feed(p[:n])
		return n, nil
	}
	if c.frames.between() && !c.noPark.Load() {
		n, err := c.tryRead(p)
		if err == errWouldBlock {
			panic(parkSignal{})
		}
		c.frames.feed(p[:n])
		return n, err
	}
	n, err := c.Conn.Read(p)
	c.frames.feed(p[:n])
	return n, err
}

// tryRead reads what the socket has without waiting.
func (c *parkConn) tryRead(p []byte) (int, error) {
	c.buf = p
	err := c.raw.Read(c.readFD)
	n, rerr := c.n, c.err
	c.buf, c.err = nil, nil
	switch {
	case err != nil:
		return 0, err
	case rerr == syscall.EAGAIN || rerr == syscall.EINTR:
		return 0, errWouldBlock
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Addr: c.RemoteAddr(), Err: rerr}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Close closes the socket and wakes a parked reader to see it.
func (c *parkConn) Close() error {
	err := c.Conn.Close()
	c.wake()
	return err
}

// wake makes the session read until its end without parking again: after its
// socket closed or half-closed, the read side must notice (EOF, error or the
// drain deadline), which a parked session would not.
func (c *parkConn) wake() {
	c.noPark.Store(true)
	c.resume()
}

// resume hands a parked session back to a reading goroutine; the poller calls
// it when the socket turns readable. Spurious calls are harmless: the reader
// finds nothing and parks again.
func (c *parkConn) resume() {
	if c.state.CompareAndSwap(parked, reading) {
		c.s.node.parkedSessions.Add(-1)
		go c.s.readLoop()
	}
}

// park gives the read side to the poller. It reports false when the caller
// must go on reading itself: the session is closing or cannot be polled.
func (c *parkConn) park() bool {
	n := c.s.node
	if !c.polled && (c.noPark.Load() || n.poller.register(c) != nil) {
		c.noPark.Store(true)
		return false
	}
	n.parkedSessions.Add(1)
	c.state.Store(parked)
	// Nothing below may write to c before the CAS: once armed, a resumed
	// reader owns it.
	if !c.noPark.Load() && n.poller.arm(c) == nil {
		return true
	}
	if c.state.CompareAndSwap(parked, reading) {
		n.parkedSessions.Add(-1)
		c.noPark.Store(true)
		return false
	}
	return true // woken meanwhile: another goroutine reads now
}

// readLoop runs gws's ReadLoop until the session ends or parks. It owns the
// session's read side and, at the session's end, its place in Node.readers.
func (s *session) readLoop() {
	for s.readUntilPark() {
		if s.pc.park() {
			return
		}
	}
	s.node.readers.Done()
}

// readUntilPark reports whether ReadLoop stopped to park (true) or returned
// because the session ended.
func (s *session) readUntilPark() (park bool) {
	if s.pc != nil {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(parkSignal); !ok {
					panic(r)
				}
				park = true
			}
		}()
	}
	s.conn.ReadLoop()
	return false
}

// startReading starts the session's read side: parked at once when it can
// (an idle client costs no goroutine from its first moment), else a goroutine.
func (s *session) startReading() {
	if s.pc == nil || len(s.pc.prefix) > 0 || !s.pc.park() {
		go s.readLoop()
	}
}

// wakeReader makes a parked session read until its end; see parkConn.wake.
func (s *session) wakeReader() {
	if s.pc != nil {
		s.pc.wake()
	}
}

// prefixConn serves bytes already read before those of its Conn.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		return readPrefix(&c.prefix, p), nil
	}
	return c.Conn.Read(p)
}

// readPrefix moves the first bytes of *prefix into p.
func readPrefix(prefix *[]byte, p []byte) int {
	n := copy(p, *prefix)
	*prefix = (*prefix)[n:]
	return n
}

// frameTracker follows frame boundaries in the client's byte stream (RFC 6455
// section 5.2) so a reader parks only between frames. It reads headers only and
// skips payloads by count; validating frames is gws's job, and a frame gws
// rejects ends the session before the tracker could matter.
type frameTracker struct {
	need  uint64 // payload bytes left in the current frame
	plen  uint64 // payload length being read from the header
	hlen  uint8  // header bytes seen of the current frame
	hwant uint8  // the header's full length, once its second byte is seen
	ext   uint8  // the extended payload length's size: 0, 2 or 8
}

// between reports whether the bytes fed so far end exactly at a frame's end.
func (t *frameTracker) between() bool { return t.need == 0 && t.hlen == 0 }

func (t *frameTracker) feed(b []byte) {
	for len(b) > 0 {
		if t.need > 0 {
			k := t.need
			if uint64(len(b)) < k {
				k = uint64(len(b))
			}
			t.need -= k
			b = b[k:]
			continue
		}
		c := b[0]
		b = b[1:]
		switch {
		case t.hlen == 1:
			switch l := c & 0x7f; l {
			case 126:
				t.ext = 2
			case 127:
				t.ext = 8
			default:
				t.ext, t.plen = 0, uint64(l)
			}
			t.hwant = 2 + t.ext
			if c&0x80 != 0 {
				t.hwant += 4 // masking key
			}
		case t.hlen >= 2 && t.hlen < 2+t.ext:
			t.plen = t.plen<<8 | uint64(c)
		}
		t.hlen++
		if t.hlen >= 2 && t.hlen == t.hwant {
			t.need, t.plen, t.hlen, t.hwant = t.plen, 0, 0, 0
		}
	}
}
