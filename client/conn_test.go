package client_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pushd/pushd/auth"
	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// The Go client against real nodes (testnode: real NATS, real handshake),
// and, for what a node never does, against a hand-written server.

const secret = "client-test-secret"

// startNode runs a node that verifies HS256 tokens signed with secret.
func startNode(t *testing.T, cfg node.Config) *testnode.Node {
	t.Helper()
	v, err := auth.New(auth.Config{Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Auth = v
	return testnode.Start(t, pushtest.RunNATS(t).URL(), cfg)
}

// token is an HS256 token for sub that expires after ttl.
func token(t *testing.T, sub string, ttl time.Duration) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix()}).
		SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dial(t *testing.T, url string, opts client.Options) *client.Conn {
	t.Helper()
	c, err := client.Dial(pushtest.Ctx(t), url, opts)
	if err != nil {
		t.Fatalf("dial %s %+v: %v", url, opts, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestDialOptions: each way Options identifies a session reaches the node,
// and Hello reports what the node made of it.
func TestDialOptions(t *testing.T) {
	n := startNode(t, node.Config{Dev: true, NodeID: 9})

	c := dial(t, n.WSURL(), client.Options{User: "alice"})
	if h := c.Hello(); h.Type != "hello" || h.User != "alice" || h.Node != 9 || h.SID == "" || h.SID != c.SID() || h.PingInterval <= 0 {
		t.Fatalf("User: hello %+v", h)
	}
	if c := dial(t, n.WSURL(), client.Options{Token: token(t, "bob", time.Hour)}); c.Hello().User != "bob" {
		t.Fatalf("Token: hello %+v", c.Hello())
	}
	if c := dial(t, n.WSURL(), client.Options{BearerToken: token(t, "carol", time.Hour)}); c.Hello().User != "carol" {
		t.Fatalf("BearerToken: hello %+v", c.Hello())
	}
	// Options add to the URL's own query.
	if c := dial(t, n.WSURL()+"?user=dave", client.Options{}); c.Hello().User != "dave" {
		t.Fatalf("query in the URL: hello %+v", c.Hello())
	}

	// Header is sent with the handshake: an Origin the node does not allow
	// gets a browser's refusal, a close frame.
	prod := startNode(t, node.Config{NodeID: 10})
	tok := token(t, "erin", time.Hour)
	if c := dial(t, prod.WSURL(), client.Options{Token: tok, Header: http.Header{"Origin": {"http://" + prod.Addr()}}}); c.Hello().User != "erin" {
		t.Fatalf("same-host Origin: hello %+v", c.Hello())
	}
	_, err := client.Dial(pushtest.Ctx(t), prod.WSURL(), client.Options{Token: tok, Header: http.Header{"Origin": {"https://evil.test"}}})
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != 4004 || !strings.HasPrefix(ce.Reason, "forbidden_origin: ") {
		t.Fatalf("foreign Origin: %v, want a CloseError 4004 forbidden_origin", err)
	}
	if !strings.Contains(err.Error(), "4004") {
		t.Fatalf("CloseError says %q", err)
	}
}

// TestHandshakeError: a refused upgrade is a *HandshakeError with the HTTP
// status.
func TestHandshakeError(t *testing.T) {
	n := startNode(t, node.Config{MaxSessionsPerUser: 1})
	for _, tc := range []struct {
		name string
		opts client.Options
		want int
	}{
		{"expired token", client.Options{Token: token(t, "alice", -time.Minute)}, http.StatusUnauthorized},
		{"dev user on a production node", client.Options{User: "alice"}, http.StatusUnauthorized},
		{"bad bearer token", client.Options{BearerToken: "garbage"}, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.Dial(pushtest.Ctx(t), n.WSURL(), tc.opts)
			var he *client.HandshakeError
			if !errors.As(err, &he) || he.Status != tc.want || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", tc.want)) {
				t.Fatalf("got %v, want a HandshakeError with HTTP %d", err, tc.want)
			}
		})
	}
	dial(t, n.WSURL(), client.Options{Token: token(t, "bob", time.Hour)})
	_, err := client.Dial(pushtest.Ctx(t), n.WSURL(), client.Options{Token: token(t, "bob", time.Hour)})
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.Status != http.StatusTooManyRequests {
		t.Fatalf("second session of bob: %v, want a HandshakeError with HTTP 429", err)
	}
}

// TestRequests: Join, Leave, Ping, Publish, Send and Reply against a node;
// an error frame answering Join or Leave is a *ServerError.
func TestRequests(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, PingInterval: 5 * time.Second})
	up, err := nc.SubscribeSync("push.up.doc.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, n.WSURL(), client.Options{User: "alice"})
	ctx := pushtest.Ctx(t)

	if err := c.Join(ctx, "doc-1"); err != nil {
		t.Fatal(err)
	}
	var se *client.ServerError
	if err := c.Join(ctx, "a..b"); !errors.As(err, &se) || se.Code != "invalid_doc" || se.Message == "" || !strings.Contains(err.Error(), "invalid_doc") {
		t.Fatalf("join a..b: %v, want a ServerError invalid_doc", err)
	}
	if err := c.Leave(ctx, "never-joined"); !errors.As(err, &se) || se.Code != "not_joined" {
		t.Fatalf("leave never-joined: %v, want a ServerError not_joined", err)
	}

	p, err := c.Ping(ctx)
	if err != nil || p.Type != "pong" || p.PingInterval != 5000 || p.PingTimeout != 15000 {
		t.Fatalf("ping: %+v %v", p, err)
	}

	// Publish marshals data, unless it is JSON already; no event is the
	// default one.
	if err := c.Publish("doc-1", "edit", map[string]int{"x": 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish("doc-1", "", "text"); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish("doc-1", "raw", json.RawMessage(`{"already":"json"}`)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ event, data string }{{"edit", `{"x":1}`}, {"message", `"text"`}, {"raw", `{"already":"json"}`}} {
		m, err := up.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "push.up.doc.doc-1" || string(m.Data) != want.data || m.Header.Get("Push-Session") != c.SID() {
			t.Fatalf("upstream %s %q %v, want data %s", m.Subject, m.Data, m.Header, want.data)
		}
		if m.Header.Get("Push-Event") != want.event {
			t.Fatalf("upstream event %q, want %q", m.Header.Get("Push-Event"), want.event)
		}
	}

	// Send writes a raw frame; Reply returns the next non-push frame.
	if err := c.Send([]byte(`{"type":"join","doc":"doc-2","id":"j1"}`)); err != nil {
		t.Fatal(err)
	}
	if f, err := c.Reply(ctx); err != nil || f.Type != "joined" || f.Doc != "doc-2" || f.ID != "j1" {
		t.Fatalf("reply %+v %v, want joined doc-2 j1", f, err)
	}
	if err := c.Leave(ctx, "doc-2"); err != nil {
		t.Fatal(err)
	}
	// Reply and Next give up with their context.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.Reply(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("reply with nothing to read: %v, want the context's deadline", err)
	}
	if _, err := c.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next with nothing to read: %v, want the context's deadline", err)
	}
}

// TestNext: pushes come out of Next in order, with every field of the push
// frame, and apart from the replies.
func TestNext(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true})
	c := dial(t, n.WSURL(), client.Options{User: "alice"})
	ctx := pushtest.Ctx(t)
	if err := c.Join(ctx, "doc-1"); err != nil {
		t.Fatal(err)
	}
	pushtest.Publish(t, nc, "push.user.alice", pushtest.Header("Push-Event", "greet", "Push-Id", "m-1"), `{"hi":1}`, 1)
	if err := c.Send([]byte(`{"type":"ping","id":"between"}`)); err != nil {
		t.Fatal(err)
	}
	pushtest.Publish(t, nc, "push.doc.doc-1", nil, `"v1"`, 1)
	if f, err := c.Reply(ctx); err != nil || f.Type != "pong" || f.ID != "between" {
		t.Fatalf("reply %+v %v, want the pong between the pushes", f, err)
	}
	f, err := c.Next(ctx)
	if err != nil || f.Type != "push" || f.Target != "user" || f.Event != "greet" || f.ID != "m-1" || string(f.Data) != `{"hi":1}` {
		t.Fatalf("first push %+v %v", f, err)
	}
	f, err = c.Next(ctx)
	if err != nil || f.Type != "push" || f.Target != "doc" || f.Doc != "doc-1" || f.Event != "message" || string(f.Data) != `"v1"` {
		t.Fatalf("second push %+v %v", f, err)
	}
}

// TestCloseError: a session the node closes ends Next, Reply and Done with
// a *CloseError carrying the node's code and reason, and pushes that came
// before the close are still read.
func TestCloseError(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true})
	c := dial(t, n.WSURL(), client.Options{User: "mallory"})
	pushtest.Publish(t, nc, "push.user.mallory", nil, `"last"`, 1)
	if got := n.Kick(c.SID(), "", "account suspended"); len(got) != 1 {
		t.Fatalf("kick closed %v", got)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after a kick")
	}
	pushtest.ExpectPush(t, c, "message", `"last"`)
	_, err := c.Next(pushtest.Ctx(t))
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != 4010 || ce.Reason != "account suspended" {
		t.Fatalf("next after a kick: %v, want CloseError 4010 account suspended", err)
	}
	if _, err := c.Reply(pushtest.Ctx(t)); !errors.As(err, &ce) || ce.Code != 4010 {
		t.Fatalf("reply after a kick: %v", err)
	}
	if !errors.As(c.Err(), &ce) || ce.Code != 4010 || pushtest.CloseCode(c.Err()) != 4010 {
		t.Fatalf("Err after a kick: %v", c.Err())
	}
	if err := c.Join(pushtest.Ctx(t), "doc"); err == nil {
		t.Fatal("join on a closed session succeeded")
	}
}

// TestClose: Close ends the session normally (the node counts the client's
// close), ends Done, and may be called again.
func TestClose(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true})
	c, err := client.Dial(pushtest.Ctx(t), n.WSURL(), client.Options{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Err() != nil {
		t.Fatalf("Err of an open session: %v", c.Err())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed when Close returned")
	}
	if c.Err() == nil {
		t.Fatal("Err nil after Close")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	pushtest.Eventually(t, 10*time.Second, func() error {
		if got := n.Metric(t, `pushd_connections_closed_total{reason="client"}`); got != 1 {
			return errors.New("the node has not counted the client's close yet")
		}
		return nil
	})
}

// TestServerMisbehaving: what no node does, from a hand-written server: a
// first frame other than hello fails Dial, no hello within HandshakeTimeout
// fails Dial, and a socket that ends without a close frame is ErrClosed.
func TestServerMisbehaving(t *testing.T) {
	t.Run("first frame not hello", func(t *testing.T) {
		url := fakeServer(t, `{"type":"pong"}`, false)
		_, err := client.Dial(pushtest.Ctx(t), url, client.Options{User: "x"})
		if err == nil || !strings.Contains(err.Error(), `first frame is "pong", want hello`) {
			t.Fatalf("dial: %v", err)
		}
	})
	t.Run("no hello", func(t *testing.T) {
		url := fakeServer(t, "", false)
		start := time.Now()
		_, err := client.Dial(pushtest.Ctx(t), url, client.Options{User: "x", HandshakeTimeout: 200 * time.Millisecond})
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Fatalf("dial: %v after %s, want the handshake timeout", err, time.Since(start))
		}
	})
	t.Run("no close frame", func(t *testing.T) {
		url := fakeServer(t, `{"type":"hello","sid":"1","user":"x"}`, true)
		c, err := client.Dial(pushtest.Ctx(t), url, client.Options{User: "x"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.SID() != "1" || c.Hello().User != "x" {
			t.Fatalf("hello %+v", c.Hello())
		}
		if _, err := c.Next(pushtest.Ctx(t)); !errors.Is(err, client.ErrClosed) {
			t.Fatalf("next: %v, want ErrClosed", err)
		}
		if !errors.Is(c.Err(), client.ErrClosed) || pushtest.CloseCode(c.Err()) != 0 {
			t.Fatalf("Err: %v, want ErrClosed", c.Err())
		}
	})
}

// fakeServer accepts one WebSocket upgrade and sends first (if not empty)
// as a text frame. Then it ends the connection without a close frame: at
// once with end, else once the client has written anything (its close) or
// after 5s. It returns the URL to dial.
func fakeServer(t *testing.T, first string, end bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		req, err := http.ReadRequest(bufio.NewReader(conn))
		if err != nil {
			return
		}
		sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
		if first != "" {
			resp += string([]byte{0x81, byte(len(first))}) + first // unmasked, shorter than 126 bytes
		}
		if _, err := conn.Write([]byte(resp)); err != nil || end {
			return
		}
		_, _ = conn.Read(make([]byte, 1)) // the client's close, or the deadline
	}()
	return "ws://" + ln.Addr().String() + "/ws"
}
