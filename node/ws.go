package node

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// The WebSocket transport: gws reads client frames (parking idle sessions,
// park.go) and the session's writer writes pre-framed frames straight to the
// socket, one writev per batch.
//
// Two goroutines can write to a WebSocket: the session's writer, and gws's
// read loop, which writes a close frame itself when it rejects a client
// frame (1002, 1007, 1009) before ending the session. They never overlap in
// practice, since gws's close ends the session's read side and every later
// write of ours fails on the closed socket; LOCKS.md has it.

// wsTransport is one WebSocket session's connection.
type wsTransport struct {
	s    *session
	conn *gws.Conn
	pc   *parkConn // the connection gws reads, when the session may park
	nc   net.Conn  // the socket, for writes
	// held is the 101 response of an upgrade that authenticated the session
	// (parkConn.holding101): the first write, normally the hello, sends it
	// in front of its own bytes, saving a syscall per connect.
	held atomic.Pointer[[]byte]
}

// writeAfterHeld writes p to c, behind the 101 response if one is held: one
// buffer and a plain write (a writev would leave an iovec array on the
// socket for good).
func (w *wsTransport) writeAfterHeld(c net.Conn, p []byte) (int, error) {
	if h := w.held.Swap(nil); h != nil {
		if _, err := c.Write(append(*h, p...)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Write(p)
}

func (w *wsTransport) name() string { return "ws" }

func (w *wsTransport) write(frames []*frame) error {
	if len(frames) == 1 {
		// The common case (one push per session, as in a broadcast): a
		// plain write, without building an iovec.
		_, err := w.writeAfterHeld(w.nc, frames[0].bytes())
		return err
	}
	if h := w.held.Swap(nil); h != nil {
		b := *h
		for _, f := range frames {
			b = append(b, f.bytes()...)
		}
		_, err := w.nc.Write(b)
		return err
	}
	bufs := make(net.Buffers, len(frames))
	for i, f := range frames {
		bufs[i] = f.bytes()
	}
	_, err := bufs.WriteTo(w.nc)
	return err
}

// end writes the close frame, then shuts down only our side of the socket
// (FIN): closing a socket with unread client data makes the kernel send a
// reset, which can destroy the close frame in flight, and a flooding client
// would never learn its close code. The read side drains until the peer
// closes or closeFrameWriteTimeout passes; then gws closes the socket.
func (w *wsTransport) end(code CloseCode, reason string) {
	cf := closeFrame(code, reason)
	_ = w.nc.SetWriteDeadline(time.Now().Add(closeFrameWriteTimeout))
	_, _ = w.writeAfterHeld(w.nc, cf.bytes())
	cf.release()
	if cw, ok := w.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_ = w.nc.SetReadDeadline(time.Now().Add(closeFrameWriteTimeout))
		w.wakeReader() // a parked reader would never see the deadline
		return
	}
	w.close()
}

func (w *wsTransport) abort(code CloseCode, reason string) {
	cf := closeFrame(code, reason)
	// A short deadline: the peer is not reading, so the close frame is a courtesy.
	_ = w.nc.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
	_, _ = w.writeAfterHeld(w.nc, cf.bytes())
	cf.release()
	w.close()
}

// close closes the socket; a parked reader wakes to see it.
func (w *wsTransport) close() {
	_ = w.nc.Close()
	w.wakeReader()
}

// wakeReader makes a parked session read until its end; see parkConn.wake.
func (w *wsTransport) wakeReader() {
	if w.pc != nil {
		w.pc.wake()
	}
}

// startReading starts the session's read side: parked at once when it can
// (an idle client costs no goroutine from its first moment), else a goroutine.
func (w *wsTransport) startReading() {
	if w.pc == nil || len(w.pc.prefix) > 0 || !w.pc.park() {
		go w.readLoop()
	}
}

// readLoop runs gws's ReadLoop until the session ends or parks. It owns the
// session's read side and, at the session's end, its place in Node.readers.
func (w *wsTransport) readLoop() {
	for w.readUntilPark() {
		if w.pc.park() {
			return
		}
	}
	w.s.node.readers.Done()
}

// readUntilPark reports whether ReadLoop stopped to park (true) or returned
// because the session ended.
func (w *wsTransport) readUntilPark() (park bool) {
	if w.pc != nil {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(parkSignal); !ok {
					panic(r)
				}
				park = true
			}
		}()
	}
	w.conn.ReadLoop()
	return false
}

// upgradeWS hijacks r's connection and completes the WebSocket handshake
// with gws. Plain TCP sockets are wrapped so their sessions can park.
func (n *Node) upgradeWS(w http.ResponseWriter, r *http.Request, authenticated bool) (*wsTransport, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, errors.New("pushd: connection cannot be hijacked")
	}
	netConn, brw, err := hj.Hijack()
	if err != nil {
		return nil, err
	}
	// Bytes the HTTP server read past the request (a client may send its
	// first frame right behind the handshake) belong to the WebSocket stream.
	var prefix []byte
	if k := brw.Reader.Buffered(); k > 0 {
		prefix, _ = brw.Reader.Peek(k)
		prefix = append([]byte(nil), prefix...)
	}
	t := &wsTransport{nc: netConn}
	var c net.Conn = netConn
	if tcp, ok := netConn.(*net.TCPConn); ok && n.poller != nil {
		if pc, err := newParkConn(tcp, prefix); err == nil {
			pc.w, t.pc, c = t, pc, pc
		}
	}
	if t.pc == nil && len(prefix) > 0 {
		c = &prefixConn{Conn: netConn, prefix: prefix}
	}
	// An authenticated session's hello follows at once: its 101 waits for it
	// (not a pending one's, whose client waits for the 101 to send its
	// connect frame).
	if t.pc != nil {
		t.pc.holding101 = authenticated
	}
	conn, err := n.upgrader.UpgradeFromConn(c, bufio.NewReaderSize(c, n.cfg.ReadBufferSize), r)
	if t.pc != nil {
		t.pc.holding101 = false
	}
	if err != nil {
		return nil, err
	}
	t.conn = conn
	return t, nil
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

// slot is the gws session storage: it only points back at our session, which
// is cheaper than gws's default map per connection.
type slot struct{ s *session }

func (*slot) Len() int                           { return 0 }
func (*slot) Load(string) (any, bool)            { return nil, false }
func (*slot) Delete(string)                      {}
func (*slot) Store(string, any)                  {}
func (*slot) Range(func(key string, v any) bool) {}

func sessionOf(c *gws.Conn) *session { return c.Session().(*slot).s }

// wsEvents receives gws's events. All of them run on the session's read
// goroutine, so per-session read state needs no lock.
type wsEvents struct{ n *Node }

func (e *wsEvents) OnOpen(*gws.Conn) {}

func (e *wsEvents) OnClose(c *gws.Conn, err error) {
	if s := sessionOf(c); s != nil {
		if s.reason.Load() == nil {
			if _, ok := err.(*gws.CloseError); !ok && err != nil {
				e.n.log.Debug("session read ended", "sid", s.sid, "err", err)
			}
		}
		e.n.closed(s)
	}
}

// OnPing counts a WebSocket ping as a heartbeat and answers it with a pong
// echoing its payload, in order with the session's other frames.
func (e *wsEvents) OnPing(c *gws.Conn, payload []byte) {
	s := sessionOf(c)
	now := time.Now().UnixNano()
	if !e.n.admitFrame(s, now, payload) {
		return
	}
	s.lastSeen.Store(now)
	e.n.heartbeat(s, now)
	s.reply(pongFrame(payload))
}

func (e *wsEvents) OnPong(c *gws.Conn, _ []byte) {
	sessionOf(c).lastSeen.Store(time.Now().UnixNano())
}

func (e *wsEvents) OnMessage(c *gws.Conn, msg *gws.Message) {
	defer msg.Close()
	e.n.receive(sessionOf(c), msg.Bytes(), msg.Opcode == gws.OpcodeText)
}

// gwsLogger routes gws's own errors (mostly recovered panics) to slog.
type gwsLogger struct{ l *slog.Logger }

func (g gwsLogger) Error(v ...any) { g.l.Error("gws", "detail", v) }
