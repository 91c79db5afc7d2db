package node

import (
	"bytes"
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
	w      *wsTransport
	raw    syscall.RawConn
	prefix []byte // bytes the HTTP server read past the handshake
	frames frameTracker

	state  atomic.Int32
	noPark atomic.Bool // set once the session closes: read by blocking until the end
	fd     int32       // valid once polled
	polled bool        // registered with the poller; written by the read side's owner before it first parks
	// holding101 is set while gws upgrades a session that is authenticated
	// already: its 101 response is kept (wsTransport.held) to leave with
	// the hello in one write. Only the upgrading goroutine touches it.
	holding101 bool

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

// Write serves gws: its 101 response while holding101, and the frames it
// writes itself (close frames, after a protocol error), which must not pass a
// 101 still held.
func (c *parkConn) Write(p []byte) (int, error) {
	if c.holding101 && bytes.HasPrefix(p, http101) {
		b := append([]byte(nil), p...)
		c.w.held.Store(&b)
		return len(p), nil
	}
	return c.w.writeAfterHeld(c.Conn, p)
}

var http101 = []byte("HTTP/1.1 101 ")

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
		c.w.s.node.parkedSessions.Add(-1)
		go c.w.readLoop()
	}
}

// park gives the read side to the poller. It reports false when the caller
// must go on reading itself: the session is closing or cannot be polled.
func (c *parkConn) park() bool {
	n := c.w.s.node
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
