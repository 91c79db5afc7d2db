package client_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/node"
)

// TestConnectJoinPush: a client connects with a token in its connect frame,
// goes connecting → connected, joins a doc, and gets user and doc pushes
// with their seqs; its cursors follow the pushes it handled.
func TestConnectJoinPush(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	nc := js.Connect(t)
	n := historyNode(t, js, 1, node.Config{})
	calls := newCounter()
	c, e := start(t, client.Config{URL: n.WSURL(), GetToken: tokens("amy", time.Hour, calls)})
	connect(t, c)
	if s := recv(t, e.states, "state"); s.State != client.Connecting || s.Previous != client.Disconnected {
		t.Fatalf("first state %+v", s)
	}
	if s := recv(t, e.states, "state"); s.State != client.Connected || s.Code != 0 {
		t.Fatalf("second state %+v", s)
	}
	h := recv(t, e.hellos, "hello")
	if h.User != "amy" || h.Node != 1 || !h.First || h.Resumed || h.Gap || h.URL != n.WSURL() {
		t.Fatalf("hello %+v", h)
	}
	if s, ok := c.Session(); !ok || s.SID != h.SID {
		t.Fatalf("session %+v %v", s, ok)
	}
	if cur, ok := c.Cursor(); !ok || cur != h.Seq {
		t.Fatalf("user cursor %d %v, want hello's seq %d", cur, ok, h.Seq)
	}
	subscribed := make(chan client.SubscribedEvent, 10)
	docPushes := make(chan *client.Push, 10)
	sub := c.Join("amy-doc", client.JoinOptions{
		OnSubscribed: func(e client.SubscribedEvent) { subscribed <- e },
		OnPush:       func(p *client.Push) error { docPushes <- p; return nil },
	})
	if err := sub.Ready(pushtest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	if s := recv(t, subscribed, "subscribed"); !s.First || s.Resumed || s.Gap || s.Doc != "amy-doc" {
		t.Fatalf("subscribed %+v", s)
	}
	if c.Join("amy-doc", client.JoinOptions{}) != sub || c.Subscription("amy-doc") != sub || sub.State() != client.Joined {
		t.Fatal("a second Join is not the same subscription")
	}

	publish(t, nc, "push.user.amy", `{"n":1}`, 1, "Push-Event", "greet", "Push-Id", "g-1")
	p := recv(t, e.pushes, "user push")
	if p.Target != "user" || p.Event != "greet" || p.ID != "g-1" || string(p.Data) != `{"n":1}` || p.Seq <= h.Seq || p.NeedsAck {
		t.Fatalf("user push %+v", p)
	}
	publish(t, nc, "push.doc.amy-doc", `"edit"`, 1)
	d := recv(t, docPushes, "doc push on the subscription")
	if d2 := recv(t, e.pushes, "doc push on the client"); d2 != d || d.Target != "doc" || d.Doc != "amy-doc" || string(d.Data) != `"edit"` {
		t.Fatalf("doc push %+v / %+v", d, d2)
	}
	pushtest.Eventually(t, 5*time.Second, func() error {
		if cur, _ := sub.Cursor(); cur != d.Seq {
			return errorf("doc cursor %d, want %d", cur, d.Seq)
		}
		if cur, _ := c.Cursor(); cur != p.Seq {
			return errorf("user cursor %d, want %d", cur, p.Seq)
		}
		return nil
	})
	if err := sub.Leave(pushtest.Ctx(t)); err != nil || sub.State() != client.Left || c.Subscription("amy-doc") != nil {
		t.Fatalf("leave: %v, state %v", err, sub.State())
	}
	publish(t, nc, "push.doc.amy-doc", `"after leave"`, 0)
	if calls.count() != 1 {
		t.Fatalf("GetToken called %d times, want 1", calls.count())
	}
	empty(t, e.errs, "error")
}

// TestTLS: wss:// URLs, with Config.TLSConfig's roots.
func TestTLS(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	n := historyNode(t, js, 1, node.Config{})
	srv := httptest.NewUnstartedServer(n.Node)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused certificates below
	srv.StartTLS()
	defer srv.Close()
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig
	c, e := start(t, client.Config{URL: "wss://" + srv.Listener.Addr().String() + "/ws", GetToken: tokens("tilda", time.Hour, nil), TLSConfig: roots})
	connect(t, c)
	if h := recv(t, e.hellos, "hello"); h.User != "tilda" {
		t.Fatalf("hello %+v", h)
	}
	bad, be := start(t, client.Config{URL: "wss://" + srv.Listener.Addr().String() + "/ws", GetToken: tokens("tilda", time.Hour, nil)})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := bad.Connect(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an unknown certificate: %v", err)
	}
	if d := recv(t, be.disconnects, "disconnect"); d.Code != 1006 || d.Error != "connect_failed" || !strings.Contains(d.Reason, "certificate") {
		t.Fatalf("disconnect %+v, want connect_failed on the certificate", d)
	}
}

// TestJoinSince: a doc cursor saved by one client resumes the doc in the
// next (the pushes published meanwhile are replayed); a cursor the server
// finds bad (ahead of its history) is dropped and the doc joined without
// it, reporting a gap.
func TestJoinSince(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	nc := js.Connect(t)
	n := historyNode(t, js, 1, node.Config{})
	pushes := make(chan *client.Push, 10)
	subscribed := make(chan client.SubscribedEvent, 10)
	opts := client.JoinOptions{
		OnPush:       func(p *client.Push) error { pushes <- p; return nil },
		OnSubscribed: func(s client.SubscribedEvent) { subscribed <- s },
	}
	first, _ := start(t, client.Config{URL: n.WSURL(), GetToken: tokens("jo", time.Hour, nil)})
	connect(t, first)
	sub := first.Join("jo-doc", opts)
	recv(t, subscribed, "subscribed")
	publish(t, nc, "push.doc.jo-doc", `"a"`, 1)
	recv(t, pushes, "push a")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	saved, ok := sub.Cursor()
	if !ok {
		t.Fatal("no cursor")
	}
	store(t, nc, "push.doc.jo-doc", `"b"`) // while nobody follows the doc

	second, _ := start(t, client.Config{URL: n.WSURL(), GetToken: tokens("jo", time.Hour, nil)})
	connect(t, second)
	opts.Since = &saved
	second.Join("jo-doc", opts)
	if s := recv(t, subscribed, "subscribed"); !s.First || !s.Resumed || !s.Recovered || s.Gap {
		t.Fatalf("subscribed %+v: want resumed and recovered", s)
	}
	if p := recv(t, pushes, "push b"); string(p.Data) != `"b"` {
		t.Fatalf("push %s, want b", p.Data)
	}

	ahead := saved + 1_000_000
	opts.Since = &ahead
	bad := second.Join("jo-other", opts)
	if s := recv(t, subscribed, "subscribed"); !s.First || s.Resumed || !s.Gap || s.Doc != "jo-other" {
		t.Fatalf("subscribed %+v: want a join without the bad cursor, a gap", s)
	}
	if cur, _ := bad.Cursor(); cur >= ahead {
		t.Fatalf("cursor %d: the bad one was kept", cur)
	}
}
