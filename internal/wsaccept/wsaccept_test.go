package wsaccept

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs an http.Server over Split(ln): /ws takes the fast path to ws,
// everything else net/http's mux, which also has a /ws that must not be hit.
func serve(t *testing.T, ws http.HandlerFunc, timeout time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/ws", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "net/http served /ws", http.StatusTeapot) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	split := Split(ln, Config{Path: "/ws", Handler: ws, ReadHeaderTimeout: timeout})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(split) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

type echo struct{ gws.BuiltinEventHandler }

func (echo) OnMessage(c *gws.Conn, m *gws.Message) {
	_ = c.WriteMessage(m.Opcode, m.Bytes())
	_ = m.Close()
}

type collect struct {
	gws.BuiltinEventHandler
	got chan string
}

func (h *collect) OnMessage(_ *gws.Conn, m *gws.Message) { h.got <- m.Data.String(); _ = m.Close() }

// An upgrade on the path is served by the handler and works as a WebSocket,
// with a frame the client sent right behind its request.
func TestUpgradeIsServedByTheHandler(t *testing.T) {
	up := gws.NewUpgrader(echo{}, nil)
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go c.ReadLoop()
	}, time.Second)
	h := &collect{got: make(chan string, 1)}
	c, _, err := gws.NewClient(h, &gws.ClientOption{Addr: "ws://" + addr + "/ws?user=ann"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.NetConn().Close()
	go c.ReadLoop()
	if err := c.WriteString("hello"); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-h.got:
		if got != "hello" {
			t.Fatalf("echo %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no echo")
	}
}

// Other paths, and paths that only start like the upgrade path, go to
// net/http, which keeps the connection alive between requests.
func TestOtherRequestsGoToNetHTTP(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "fast path", http.StatusConflict) }, time.Second)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, path := range []string{"/healthz", "/healthz?x=1", "/wsx"} {
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		want := http.StatusOK
		if path == "/wsx" {
			want = http.StatusNotFound
		}
		if resp.StatusCode != want {
			t.Fatalf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// A POST to the upgrade path is not an upgrade either.
	resp, err := http.Post("http://"+addr+"/ws", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Fatalf("POST /ws: %d, want net/http's 418", resp.StatusCode)
	}
}

// A refusal the handler writes reaches the client whole, with its length,
// and the connection closes.
func TestRefusalIsWrittenWithItsLengthAndCloses(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"draining","message":"reconnect elsewhere"}`+"\n")
	}, time.Second)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /ws?user=ann HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || resp.Header.Get("Content-Type") != "application/json" ||
		!resp.Close || string(body) != `{"error":"draining","message":"reconnect elsewhere"}`+"\n" {
		t.Fatalf("%d %v %q", resp.StatusCode, resp.Header, body)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the refusal: %v, want EOF", err)
	}
}

// A malformed request on the path gets a 400; one that never finishes is
// closed after ReadHeaderTimeout.
func TestBadAndSlowRequests(t *testing.T) {
	addr := serve(t, func(http.ResponseWriter, *http.Request) { t.Error("handler called") }, 200*time.Millisecond)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /ws HTTP/1.1\r\nno colon here\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed: %d", resp.StatusCode)
	}

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := io.WriteString(slow, "GET /ws HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(slow), nil)
	if err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("slow request: %d", resp.StatusCode)
		}
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a request that never finished was kept open")
	}
}

// Close stops Accept with net.ErrClosed and closes the listener.
func TestCloseEndsAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Split(ln, Config{Path: "/ws", Handler: func(http.ResponseWriter, *http.Request) {}})
	errc := make(chan error, 1)
	go func() { _, err := s.Accept(); errc <- err }()
	_ = s.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if _, err := (&net.Dialer{}).DialContext(context.Background(), "tcp", ln.Addr().String()); err == nil {
		t.Fatal("the listener still accepts")
	}
}

// FuzzRoute: whatever a client sends first, a connection is served, handed
// to net/http with its bytes intact, or refused; nothing panics.
func FuzzRoute(f *testing.F) {
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("GET /ws?user=a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\r\n"))
	f.Add([]byte("GET /healthz HTTP/1.1\r\n\r\n"))
	f.Add([]byte("GET /ws"))
	f.Add([]byte("\x16\x03\x01"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &splitter{cfg: Config{Path: "/ws", ReadHeaderTimeout: time.Second, MaxHeaderBytes: 1 << 10,
			Handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }},
			prefix: []byte("GET /ws"), rest: make(chan net.Conn, 1), done: make(chan struct{})}
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		_, _ = client.Write(data)
		_ = client.(*net.TCPConn).CloseWrite()
		s.route(server)
		select {
		case c := <-s.rest:
			got, _ := io.ReadAll(c)
			if string(got) != string(data) {
				t.Fatalf("forwarded %q, sent %q", got, data)
			}
			_ = c.Close()
		default: // served or refused, and closed
		}
	})
}
