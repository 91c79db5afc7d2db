package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/node"
)

// One session's life: heartbeats, slow handlers, publish, Close and
// contexts, and a server that sends nonsense.

// TestHeartbeatsKeepTheSessionAlive: with a 100ms interval (rising to
// 200ms as the server adapts it) and a ping_timeout of 1.2s at most, the
// client's heartbeats, at the interval each pong says, keep one session open
// through two timeouts and more, while a client that sends none is closed
// with 4002.
func TestHeartbeatsKeepTheSessionAlive(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	n := historyNode(t, js, 1, node.Config{Dev: true, PingInterval: 100 * time.Millisecond, PingIntervalMax: 200 * time.Millisecond,
		PingGrace: time.Second, SweepInterval: 20 * time.Millisecond})
	silent := pushtest.Dial(t, n.WSURL(), "quiet")
	c, e := start(t, client.Config{URL: n.WSURL(), User: "hal"})
	connect(t, c)
	h := recv(t, e.hellos, "hello")
	select {
	case <-silent.Done():
		if code := pushtest.CloseCode(silent.Err()); code != 4002 {
			t.Fatalf("the silent client closed with %d, want 4002", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the silent client was not closed")
	}
	began := time.Now()
	pushtest.Eventually(t, 15*time.Second, func() error {
		if pongs := n.Metric(t, "pushd_heartbeat_interval_seconds"); pongs < 10 {
			return errorf("%v heartbeats answered", pongs)
		}
		if time.Since(began) < 2500*time.Millisecond { // twice the longest ping_timeout, and more
			return errorf("only %s", time.Since(began))
		}
		return nil
	})
	empty(t, e.disconnects, "disconnect")
	if s, ok := c.Session(); !ok || s.SID != h.SID {
		t.Fatalf("session %+v, want %s still", s, h.SID)
	}
}

// TestSlowHandlers: pushes pile up behind a blocked handler; past
// PushBuffer the client drops the connection (4008 slow_handlers) rather
// than stall its socket or grow without bound, and once the handler catches
// up it resumes: every push is handled once, in order. (Its events wait in
// line behind the handler, as every event does.)
func TestSlowHandlers(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	nc := js.Connect(t)
	jsc, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	n := historyNode(t, js, 1, node.Config{Dev: true})
	blocked := make(chan struct{})
	var got []string
	done := make(chan struct{})
	const total = 12
	handler := func(p *client.Push) error {
		<-blocked
		got = append(got, string(p.Data))
		if len(got) == total {
			close(done)
		}
		return nil
	}
	c, e := start(t, client.Config{URL: n.WSURL(), User: "sloane", PushBuffer: 4, OnPush: handler})
	connect(t, c)
	for i := 1; i <= total; i++ {
		if _, err := jsc.Publish(pushtest.Ctx(t), "push.user.sloane", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	// The events queue behind the blocked handler too: the state says it.
	pushtest.Eventually(t, 10*time.Second, func() error {
		if st := c.State(); st != client.Connecting {
			return errorf("state %v while the handler is blocked", st)
		}
		return nil
	})
	close(blocked)
	d := recv(t, e.disconnects, "disconnect")
	if d.Code != 4008 || d.Error != "slow_handlers" || !d.WillReconnect {
		t.Fatalf("disconnect %+v, want 4008 slow_handlers", d)
	}
	recv(t, done, "every push")
	if strings.Join(got, ",") != "1,2,3,4,5,6,7,8,9,10,11,12" {
		t.Fatalf("handled %v", got)
	}
	until(t, e.hellos, "a resumed session", func(h client.HelloEvent) bool { return h.Resumed && h.Recovered })
}

// TestPublish: Publish waits for the node's published reply; a doc not
// joined is a *ServerError; before Connect it is ErrStopped; data is JSON
// (a json.RawMessage as is); a context ends the wait.
func TestPublish(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	nc := js.Connect(t)
	n := historyNode(t, js, 1, node.Config{})
	up, err := nc.SubscribeSync("push.up.doc.>")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := start(t, client.Config{URL: n.WSURL(), GetToken: tokens("pam", time.Hour, nil)})
	ctx := pushtest.Ctx(t)
	if err := c.Publish(ctx, "notes", "edit", 1); !errors.Is(err, client.ErrStopped) {
		t.Fatalf("publish before Connect: %v", err)
	}
	connect(t, c)
	var se *client.ServerError
	if err := c.Publish(ctx, "notes", "edit", 1); !errors.As(err, &se) || se.Code != "not_joined" || se.Doc != "notes" {
		t.Fatalf("publish to a doc not joined: %v", err)
	}
	if err := c.Join("notes", client.JoinOptions{}).Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "notes", "edit", map[string]int{"line": 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "notes", "", json.RawMessage(`[1,2]`)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ event, data string }{{"edit", `{"line":2}`}, {"message", `[1,2]`}} {
		m, err := up.NextMsg(5 * time.Second)
		if err != nil || m.Subject != "push.up.doc.notes" || string(m.Data) != want.data || m.Header.Get("Push-Event") != want.event {
			t.Fatalf("upstream %v %v, want %s %s", m, err, want.event, want.data)
		}
	}
	if err := c.Publish(ctx, "notes", "edit", json.RawMessage(`{`)); err == nil {
		t.Fatal("invalid raw JSON published")
	}
	if err := c.Publish(ctx, "notes", "edit", func() {}); err == nil {
		t.Fatal("a func published")
	}
	if err := c.Publish(ctx, "notes", strings.Repeat("e", 200), 1); !errors.As(err, &se) || se.Code != "invalid_event" {
		t.Fatalf("a long event: %v", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Publish(done, "notes", "edit", 1); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("publish with a cancelled context: %v", err)
	}
}

// TestCloseAndContexts: Connect gives up waiting when its context ends and
// the client goes on trying; Close stops it at once, even while GetToken
// waits or the server does not answer the upgrade, and then everything
// fails with ErrClientClosed.
func TestCloseAndContexts(t *testing.T) {
	t.Parallel()
	// A server that accepts TCP connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	mute := "ws://" + ln.Addr().String() + "/ws"
	for _, tc := range []struct {
		name string
		cfg  client.Config
	}{
		{"mute server", client.Config{URL: mute, User: "x"}},
		{"GetToken waits", client.Config{URL: mute, GetToken: func(ctx context.Context) (string, error) { <-ctx.Done(); return "", ctx.Err() }}},
		{"URLFunc waits", client.Config{URLFunc: func(ctx context.Context, _ int) (string, error) { <-ctx.Done(); return "", ctx.Err() }, User: "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := client.New(tc.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := c.Connect(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("connect: %v", err)
			}
			if c.State() != client.Connecting {
				t.Fatalf("state %v after Connect gave up waiting: want connecting still", c.State())
			}
			published := make(chan error, 1)
			go func() { published <- c.Publish(context.Background(), "d", "e", 1) }()
			sub := c.Join("d", client.JoinOptions{})
			start := time.Now()
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("Close took %s", took)
			}
			if err := recv(t, published, "publish"); !errors.Is(err, client.ErrClientClosed) && !errors.Is(err, client.ErrStopped) {
				t.Fatalf("publish: %v", err)
			}
			if err := c.Connect(context.Background()); !errors.Is(err, client.ErrClientClosed) {
				t.Fatalf("connect after Close: %v", err)
			}
			if err := c.Publish(context.Background(), "d", "e", 1); !errors.Is(err, client.ErrClientClosed) {
				t.Fatalf("publish after Close: %v", err)
			}
			if err := c.Join("e", client.JoinOptions{}).Ready(context.Background()); !errors.Is(err, client.ErrClientClosed) {
				t.Fatalf("join after Close: %v", err)
			}
			if err := sub.Ready(context.Background()); c.State() != client.Disconnected || !errors.Is(err, client.ErrClientClosed) {
				t.Fatalf("after Close: %v, sub ready: %v", c.State(), err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
	if err := client.New(client.Config{User: "x"}).Connect(context.Background()); err == nil || !strings.Contains(err.Error(), "URL") {
		t.Fatalf("no URL: %v", err)
	}
	if err := client.New(client.Config{URL: mute}).Connect(context.Background()); err == nil || !strings.Contains(err.Error(), "GetToken") {
		t.Fatalf("no token: %v", err)
	}
}

// TestServerNonsense: what no node sends, from a hand-written server: frames
// that are not JSON, wrong types, bad seqs, absurd heartbeat intervals,
// replies to nothing. The client reports what it cannot read, ignores what
// it does not know, and stays up; nothing panics.
func TestServerNonsense(t *testing.T) {
	t.Parallel()
	frames := []string{
		`not json`,
		`[1,2]`,
		`{"type":1}`,
		`{"type":""}`,
		`{"type":"hello","sid":"1","user":"x","ping_interval":"soon"}`,
		`{"type":"hello","sid":"1","node":1,"user":"x","ping_interval":9223372036854775807,"ping_timeout":-5,"seq":"-3","recovered":true}`,
		`{"type":"hello","sid":"2","user":"x","ping_interval":1}`,
		`{"type":"pong","ping_interval":-1,"ping_timeout":9223372036854775807}`,
		`{"type":"push","target":"user","seq":"99999999999999999999999","ack":true,"data":1}`,
		`{"type":"push","target":"user","seq":"abc","data":2}`,
		`{"type":"push","target":"doc","doc":"never-joined","seq":"5","data":3}`,
		`{"type":"push","target":"nowhere","seq":"5","ack":true}`,
		`{"type":"push","target":"user","seq":"7","ack":true,"data":{"fine":true}}`,
		`{"type":"push","target":"user","seq":"7","ack":true,"data":{"fine":true}}`,
		`{"type":"joined","id":"j999","seq":"x"}`,
		`{"type":"published","id":"nobody"}`,
		`{"type":"error","code":"surprise","message":"from nowhere"}`,
		`{"type":"something_new","with":"fields"}`,
		`{"type":"push","target":"all","event":"marker"}`,
	}
	acks := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := gws.NewUpgrader(&fakeNode{frames: frames, acks: acks}, nil)
		conn, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		conn.ReadLoop()
	}))
	defer srv.Close()
	c, e := start(t, client.Config{URL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", User: "x"})
	connect(t, c)
	var pushes []string
	for {
		p := recv(t, e.pushes, "push")
		pushes = append(pushes, p.Target+":"+string(p.Data))
		if p.Event == "marker" {
			break
		}
	}
	if got := strings.Join(pushes, " "); got != `user:1 user:2 nowhere:null user:{"fine":true} all:null` {
		t.Fatalf("pushes %s", got)
	}
	if ack := recv(t, acks, "ack"); ack != `{"type":"ack","seq":"7"}` {
		t.Fatalf("ack %s", ack)
	}
	var errs []string
	for len(e.errs) > 0 {
		errs = append(errs, (<-e.errs).Error())
	}
	if len(errs) != 6 || !strings.Contains(strings.Join(errs, "\n"), "surprise") {
		t.Fatalf("errors reported:\n%s", strings.Join(errs, "\n"))
	}
	if h, ok := c.Session(); !ok || h.SID != "1" {
		t.Fatalf("session %+v %v", h, ok)
	}
	empty(t, e.disconnects, "disconnect")
}

// fakeNode answers a connect frame with its frames, and passes on acks.
type fakeNode struct {
	gws.BuiltinEventHandler
	frames []string
	acks   chan string
}

func (f *fakeNode) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	var fr struct{ Type string }
	_ = json.Unmarshal(m.Bytes(), &fr)
	switch fr.Type {
	case "connect":
		for _, s := range f.frames {
			_ = c.WriteString(s)
		}
	case "ack":
		f.acks <- string(m.Bytes())
	}
}

// TestCloseAndHandlers: Close waits for a running handler, so nothing runs
// after it returns; a handler may call Close itself.
func TestCloseAndHandlers(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	nc := js.Connect(t)
	n := historyNode(t, js, 1, node.Config{Dev: true})

	entered, release := make(chan struct{}), make(chan struct{})
	var returned atomic.Bool
	c, _ := start(t, client.Config{URL: n.WSURL(), User: "carl", OnPush: func(*client.Push) error {
		close(entered)
		<-release
		returned.Store(true)
		return nil
	}})
	connect(t, c)
	publish(t, nc, "push.user.carl", `1`, 1)
	<-entered
	go close(release)
	if err := c.Close(); err != nil || !returned.Load() {
		t.Fatalf("Close returned (%v) before the running handler", err)
	}

	closed := make(chan error, 1)
	var self *client.Client
	self, _ = start(t, client.Config{URL: n.WSURL(), User: "cleo", OnPush: func(*client.Push) error {
		closed <- self.Close()
		return nil
	}})
	connect(t, self)
	publish(t, nc, "push.user.cleo", `1`, 1)
	if err := recv(t, closed, "Close from a handler"); err != nil || self.State() != client.Disconnected {
		t.Fatalf("Close from a handler: %v, state %v", err, self.State())
	}
}

// A client connecting without a cursor (its connect frame has no since)
// makes the node read no history: its hello carries the user's position
// and the node counts no resume. (It used to read the stream from 0 and
// count a not_recovered resume for every such connect.)
func TestConnectWithoutCursorReadsNoHistory(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	n := historyNode(t, js, 1, node.Config{})
	c, e := start(t, client.Config{URL: n.WSURL(), GetToken: tokens("fresh", time.Hour, nil)})
	connect(t, c)
	if h := recv(t, e.hellos, "hello"); h.Seq == 0 || h.Resumed {
		t.Fatalf("hello %+v: want the user's position, not a resume", h)
	}
	for _, result := range []string{"recovered", "not_recovered"} {
		if got := n.Metric(t, `pushd_resumes_total{result="`+result+`"}`); got != 0 {
			t.Errorf("resumes %s = %v, want 0", result, got)
		}
	}
}
