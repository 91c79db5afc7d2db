// Package wsaccept serves WebSocket upgrades on one path without net/http's
// per-connection machinery, and hands every other connection to net/http.
//
// net/http gives each connection a 4 KiB bufio.Reader and a 4 KiB
// bufio.Writer from its pools and a serving goroutine with its context; a
// hijacked connection never returns the buffers, so every upgrade leaves
// 8 KiB of garbage behind, which is most of what a connection ramp allocates
// and what its GC then scans (BENCHMARKS.md, "Connect"). Here a connection
// whose first bytes are "GET <path> " or "GET <path>?" is read with a pooled
// reader, parsed with http.ReadRequest and handed to the handler with a small
// ResponseWriter that can hijack; the reader goes back to the pool once the
// handler returns (the handler copies the bytes it buffered past the request,
// as node's upgrade does). A refusal is written with Content-Length and the
// connection closed: a WebSocket endpoint has no keep-alive. Any other
// connection, replaying what was peeked, is accepted from the Listener that
// Split returns, for an http.Server to serve.
package wsaccept

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Config says which connections take the fast path and how long they may
// take to send their request.
type Config struct {
	// Path is the upgrade path, e.g. "/ws".
	Path string
	// Handler serves the upgrade requests; it must hijack the connection to
	// keep it.
	Handler http.HandlerFunc
	// ReadHeaderTimeout bounds the time to read the request (as
	// http.Server's). Zero means 5 s.
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers. Zero means 32 KiB.
	MaxHeaderBytes int
}

// Split starts accepting on ln: upgrade requests on cfg.Path are served by
// cfg.Handler, each on its own goroutine; every other connection is
// returned by the returned Listener's Accept. Closing the returned Listener
// closes ln and stops accepting; requests being served finish on their own
// (each is bounded by ReadHeaderTimeout until the handler has it).
func Split(ln net.Listener, cfg Config) net.Listener {
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 5 * time.Second
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = 32 << 10
	}
	s := &splitter{ln: ln, cfg: cfg, rest: make(chan net.Conn), done: make(chan struct{}),
		prefix: []byte("GET " + cfg.Path)}
	go s.acceptLoop()
	return s
}

type splitter struct {
	ln     net.Listener
	cfg    Config
	prefix []byte
	rest   chan net.Conn // connections for net/http
	done   chan struct{} // closed by Close
	once   sync.Once
	err    error // why accepting ended, set before done is closed
}

var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

func (s *splitter) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond) // as net/http does for temporary errors
				continue
			}
			s.once.Do(func() {
				s.err = err
				close(s.done)
				_ = s.ln.Close()
			})
			return
		}
		go s.route(c)
	}
}

// route reads the connection's first bytes and serves or forwards it.
func (s *splitter) route(c net.Conn) {
	br := readers.Get().(*bufio.Reader)
	lr := &io.LimitedReader{R: c, N: int64(s.cfg.MaxHeaderBytes) + 4096}
	br.Reset(lr)
	_ = c.SetReadDeadline(time.Now().Add(s.cfg.ReadHeaderTimeout))
	head, err := br.Peek(len(s.prefix) + 1)
	if err != nil || !bytes.Equal(head[:len(s.prefix)], s.prefix) || (head[len(s.prefix)] != ' ' && head[len(s.prefix)] != '?') {
		// Not ours: net/http reads it again from the start.
		buffered, _ := br.Peek(br.Buffered())
		rc := &replayConn{Conn: c, pending: append([]byte(nil), buffered...)}
		br.Reset(nil)
		readers.Put(br)
		_ = c.SetReadDeadline(time.Time{})
		select {
		case s.rest <- rc:
		case <-s.done:
			_ = c.Close()
		}
		return
	}
	defer func() {
		br.Reset(nil)
		readers.Put(br)
	}()
	req, err := http.ReadRequest(br)
	if err != nil {
		writeError(c, http.StatusBadRequest, "bad_request", "malformed upgrade request")
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	req.RemoteAddr = c.RemoteAddr().String()
	w := &responseWriter{c: c, br: br, header: http.Header{}}
	s.cfg.Handler(w, req)
	if !w.hijacked {
		w.finish()
		_ = c.Close()
	}
}

// Accept returns the next connection that is not an upgrade on Path.
func (s *splitter) Accept() (net.Conn, error) {
	select {
	case c := <-s.rest:
		return c, nil
	case <-s.done:
		if s.err != nil {
			return nil, s.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the underlying listener.
func (s *splitter) Close() error {
	err := net.ErrClosed
	s.once.Do(func() {
		close(s.done)
		err = s.ln.Close()
	})
	return err
}

// Addr is the underlying listener's address.
func (s *splitter) Addr() net.Addr { return s.ln.Addr() }

// replayConn serves bytes already read before those of its Conn.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite lets net/http half-close a connection it refuses, as it does a
// plain *net.TCPConn.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// responseWriter answers one request on a connection that closes after it,
// unless the handler hijacks it.
type responseWriter struct {
	c        net.Conn
	br       *bufio.Reader
	header   http.Header
	status   int
	body     []byte
	hijacked bool
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	w.body = append(w.body, p...)
	return len(p), nil
}

// Hijack hands the connection over; the bufio.Reader holds what was read past
// the request and is valid only until the handler returns.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	return w.c, bufio.NewReadWriter(w.br, bufio.NewWriterSize(w.c, 16)), nil
}

// finish writes the response the handler made, with a length, and says the
// connection closes.
func (w *responseWriter) finish() {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	b := make([]byte, 0, 256+len(w.body))
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\n"...)
	w.header.Del("Content-Length")
	w.header.Set("Connection", "close")
	if w.header.Get("Content-Type") == "" && len(w.body) > 0 {
		w.header.Set("Content-Type", http.DetectContentType(w.body))
	}
	w.header.Set("Content-Length", strconv.Itoa(len(w.body)))
	var hb bytes.Buffer
	_ = w.header.Write(&hb)
	b = append(b, hb.Bytes()...)
	b = append(b, "\r\n"...)
	b = append(b, w.body...)
	_ = w.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = w.c.Write(b)
}

func writeError(c net.Conn, status int, code, message string) {
	w := &responseWriter{c: c, header: http.Header{"Content-Type": {"application/json"}}}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":"` + code + `","message":"` + message + `"}` + "\n"))
	w.finish()
}
