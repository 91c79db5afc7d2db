package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// One connection attempt of a Client, from the dial to the close: the
// goroutine that dials and then reads the socket (run), and the one that
// writes it (write). The read goroutine never blocks on the application:
// it decodes each frame and handles it under the client's lock, which no
// network write and no handler is ever made under.

// maxOutboxBytes bounds the frames waiting for the writer. It only fills
// when the server stops reading; the connection is then dropped
// (write_stalled) rather than blocking the caller.
const maxOutboxBytes = 1 << 20

// outbox holds a connection's frames for its writer. It takes memory only
// while frames wait, and its own lock, so the writer never needs the
// client's.
type outbox struct {
	mu     sync.Mutex
	frames [][]byte
	bytes  int
	ready  chan struct{} // one token: frames are waiting
}

func newOutbox() *outbox { return &outbox{ready: make(chan struct{}, 1)} }

// push queues b; false when the outbox is full.
func (o *outbox) push(b []byte) bool {
	o.mu.Lock()
	if o.bytes+len(b) > maxOutboxBytes {
		o.mu.Unlock()
		return false
	}
	o.frames = append(o.frames, b)
	o.bytes += len(b)
	o.mu.Unlock()
	select {
	case o.ready <- struct{}{}:
	default:
	}
	return true
}

// take returns the waiting frames, oldest first, and empties the outbox.
func (o *outbox) take() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	f := o.frames
	o.frames, o.bytes = nil, 0
	return f
}

// attempt is one connection, from dial to close. Its fields are guarded by
// the client's mutex, except those set before its goroutines start.
type attempt struct {
	gen    uint64 // the client's connection counter when it began
	index  int    // the URL index (or URLFunc's attempt)
	ctx    context.Context
	cancel context.CancelFunc
	out    *outbox

	url      string
	raw      net.Conn  // the TCP connection: closing it never blocks
	ws       *gws.Conn // set once the upgrade succeeded
	token    string    // the token in force (refresh replaces it)
	sinceSet bool      // the connect frame carried the user's cursor

	avoidSet  bool  // a refusal's body named the node to avoid:
	avoidNode int64 // this one

	hello    bool
	helloAt  time.Time
	interval time.Duration // heartbeat interval (latest hello or pong)
	grace    time.Duration // how long a frame may take after a ping
	ping     *time.Timer
	watch    *time.Timer // connect timeout, then "a frame after the ping"
	watchID  uint64
	stalled  bool
}

// send queues a frame for the writer. A full outbox means the server does
// not read: the connection is given up, from a timer so that callers in the
// middle of a loop over the client's state are not re-entered. c.mu held.
func (c *Client) send(a *attempt, b []byte) {
	if a.out.push(b) || a.stalled {
		return
	}
	a.stalled = true
	c.after(0, func() {
		c.giveUp(a, 1006, fmt.Sprintf("write_stalled: %d bytes wait for a server that does not read", maxOutboxBytes))
	})
}

// run dials a's URL, upgrades, sends the connect frame and reads the socket
// until it closes.
func (c *Client) run(a *attempt) {
	defer c.wg.Done()
	defer a.cancel()
	rawURL, token, err := c.prepare(a)
	if err != nil {
		c.mu.Lock()
		if a == c.conn {
			c.report(fmt.Errorf("pushd: cannot connect: %w", err))
			c.conn = nil
			c.endAttempt(a)
			c.retry(c.cfg.Backoff.Delay(ActionRetry, c.attempt, c.random()))
			c.attempt++
		}
		c.mu.Unlock()
		return
	}
	ws, status, body, err := c.dial(a, rawURL)
	if err != nil {
		c.mu.Lock()
		if status != 0 {
			code, reason := refusal(status, body)
			a.avoidNode, a.avoidSet = avoidNodeOfBody(body)
			c.onCloseLocked(a, code, reason, status)
		} else {
			c.onCloseLocked(a, 1006, "connect_failed: "+err.Error(), 0)
		}
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	if a != c.conn {
		c.mu.Unlock()
		_ = a.raw.Close()
		return
	}
	a.ws, a.token = ws, token
	f := clientFrame{Type: "connect", ID: c.id("c")}
	if token != "" {
		f.Token = token
	} else {
		f.User = c.cfg.User
	}
	if seq, ok := c.user.since(); ok {
		f.Since, a.sinceSet = formatSeq(seq), true
	}
	c.send(a, f.encode())
	c.wg.Add(1)
	go c.write(a)
	c.mu.Unlock()
	ws.ReadLoop()
}

// prepare picks a's URL and gets a token.
func (c *Client) prepare(a *attempt) (rawURL, token string, err error) {
	switch {
	case c.cfg.URLFunc != nil:
		rawURL, err = c.cfg.URLFunc(a.ctx, a.index)
	case len(c.cfg.URLs) > 0:
		rawURL = c.cfg.URLs[a.index%len(c.cfg.URLs)]
	default:
		rawURL = c.cfg.URL
	}
	if err != nil {
		return "", "", fmt.Errorf("URLFunc: %w", err)
	}
	c.mu.Lock()
	a.url = rawURL
	c.mu.Unlock()
	if c.cfg.GetToken != nil {
		if token, err = c.cfg.GetToken(a.ctx); err == nil && token == "" {
			err = errors.New("no token")
		}
		if err != nil {
			return "", "", fmt.Errorf("GetToken: %w", err)
		}
	}
	return rawURL, token, nil
}

// dial opens the TCP (and TLS) connection and upgrades it. A refused upgrade
// returns its HTTP status and body.
func (c *Client) dial(a *attempt, rawURL string) (ws *gws.Conn, status int, body []byte, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, 0, nil, err
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, 0, nil, fmt.Errorf("URL %q: the scheme must be ws or wss", rawURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"ws": "80", "wss": "443"}[u.Scheme])
	}
	var d net.Dialer
	raw, err := d.DialContext(a.ctx, "tcp", host)
	if err != nil {
		return nil, 0, nil, err
	}
	c.mu.Lock()
	a.raw = raw
	gone := a != c.conn
	c.mu.Unlock()
	if gone { // given up meanwhile (Close, connect timeout)
		_ = raw.Close()
		return nil, 0, nil, context.Canceled
	}
	var nc net.Conn = raw
	if u.Scheme == "wss" {
		cfg := &tls.Config{}
		if c.cfg.TLSConfig != nil {
			cfg = c.cfg.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		cfg.NextProtos = []string{"http/1.1"} // a WebSocket upgrade is HTTP/1.1
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(a.ctx); err != nil {
			_ = raw.Close()
			return nil, 0, nil, err
		}
		nc = tc
	}
	hc := &holdConn{Conn: nc}
	hc.hold.Store(true)
	ws, resp, err := gws.NewClientFromConn(&wsEvents{c: c, a: a}, &gws.ClientOption{
		Addr:             rawURL,
		RequestHeader:    c.cfg.Header.Clone(),
		HandshakeTimeout: c.cfg.ConnectTimeout,
		CheckUtf8Enabled: true,
	}, hc)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			status = resp.StatusCode
			_ = raw.SetReadDeadline(time.Now().Add(2 * time.Second))
			body, _ = io.ReadAll(io.LimitReader(resp.Body, 4096))
		}
		_ = raw.Close()
		return nil, status, body, err
	}
	hc.hold.Store(false)
	return ws, 0, nil, nil
}

// holdConn keeps the connection open when gws closes it after a refused
// upgrade, so that the refusal's body can still be read.
type holdConn struct {
	net.Conn
	hold atomic.Bool
}

func (h *holdConn) Close() error {
	if h.hold.Load() {
		return nil
	}
	return h.Conn.Close()
}

// write sends a's queued frames until the connection ends.
func (c *Client) write(a *attempt) {
	defer c.wg.Done()
	for {
		select {
		case <-a.out.ready:
			for _, b := range a.out.take() {
				if err := a.ws.WriteMessage(gws.OpcodeText, b); err != nil {
					_ = a.raw.Close() // the read loop ends and reports the close
					return
				}
			}
		case <-a.ctx.Done():
			return
		}
	}
}

// endAttempt stops a's timers and goroutines and closes its socket. c.mu
// held.
func (c *Client) endAttempt(a *attempt) {
	a.cancel()
	if a.ping != nil {
		a.ping.Stop()
	}
	if a.watch != nil {
		a.watch.Stop()
	}
	a.watchID++
	if a.raw != nil {
		_ = a.raw.Close()
	}
}

// wsEvents hands a connection's frames and its close to the client.
type wsEvents struct {
	gws.BuiltinEventHandler
	c *Client
	a *attempt
}

func (e *wsEvents) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	e.c.onFrame(e.a, m.Bytes())
}

func (e *wsEvents) OnPong(*gws.Conn, []byte) { e.c.alive(e.a) }

func (e *wsEvents) OnPing(s *gws.Conn, _ []byte) {
	e.c.alive(e.a)
	_ = s.WritePong(nil)
}

func (e *wsEvents) OnClose(_ *gws.Conn, err error) {
	code, reason := uint16(1006), "connection_lost"
	var ce *gws.CloseError
	switch {
	case errors.As(err, &ce):
		code, reason = ce.Code, string(ce.Reason)
		if code == 0 {
			code = 1005 // a close frame without a status
		}
	case err != nil:
		reason += ": " + strings.TrimSpace(err.Error())
	}
	e.c.mu.Lock()
	e.c.onCloseLocked(e.a, code, reason, 0)
	e.c.mu.Unlock()
}
