package client_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/node"
)

// Tokens: refresh before exp, a fresh token after 4001, a stop after
// repeated 4003, a kick (4010) that stays disconnected, join grants and join
// tokens.

// TestTokenRefreshKeepsTheSession: every token lives 3s (2 to 3s: exp is in
// whole seconds) and the node closes a session at exp (4001) unless it is
// refreshed: three tokens in, the same session has outlived the first one,
// with no disconnect.
func TestTokenRefreshKeepsTheSession(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	nc := js.Connect(t)
	n := historyNode(t, js, 1, node.Config{SweepInterval: 100 * time.Millisecond})
	calls := newCounter()
	c, e := start(t, client.Config{URL: n.WSURL(), GetToken: tokens("tess", 3*time.Second, calls)})
	begun := time.Now()
	connect(t, c)
	h := recv(t, e.hellos, "hello")
	pushtest.Eventually(t, 10*time.Second, func() error {
		if calls.count() < 3 {
			return errorf("%d tokens so far", calls.count())
		}
		return nil
	})
	pushtest.Eventually(t, 5*time.Second, func() error {
		if since := time.Since(begun); since < 3500*time.Millisecond {
			return errorf("only %s since the first token", since)
		}
		return nil
	})
	empty(t, e.disconnects, "disconnect")
	if s, ok := c.Session(); !ok || s.SID != h.SID {
		t.Fatalf("session %+v, want the first one (%s)", s, h.SID)
	}
	publish(t, nc, "push.user.tess", `"still here"`, 1)
	recv(t, e.pushes, "push")
	empty(t, e.errs, "error")
}

// TestExpiredTokenGetsAFreshOne: a token refused as expired (4001) makes
// the client ask for a new one and connect with it.
func TestExpiredTokenGetsAFreshOne(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	n := historyNode(t, js, 1, node.Config{})
	calls := newCounter()
	getToken := func(ctx context.Context) (string, error) {
		calls.add()
		if calls.count() == 1 {
			return signToken("ezra", -10*time.Second)
		}
		return signToken("ezra", time.Hour)
	}
	c, e := start(t, client.Config{URL: n.WSURL(), GetToken: getToken})
	connect(t, c)
	d := recv(t, e.disconnects, "disconnect")
	if d.Code != 4001 || d.Error != "token_expired" || !d.WillReconnect {
		t.Fatalf("disconnect %+v, want 4001 token_expired, reconnecting", d)
	}
	if calls.count() != 2 {
		t.Fatalf("GetToken called %d times, want 2", calls.count())
	}
}

// TestAuthFailuresStopAfterThree: a token the node cannot verify (4003, or
// HTTP 401 when it came in a header) is not retried blindly: after three
// refusals in a row the client stops, and Connect says why. A dev user
// refused by a production node stops at once.
func TestAuthFailuresStopAfterThree(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	n := historyNode(t, js, 1, node.Config{})
	calls := newCounter()
	wrong := func(ctx context.Context) (string, error) {
		calls.add()
		return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "eve", "exp": time.Now().Add(time.Hour).Unix()}).
			SignedString([]byte("wrong-secret"))
	}
	c, e := start(t, client.Config{URL: n.WSURL(), GetToken: wrong})
	err := c.Connect(pushtest.Ctx(t))
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != 4003 || !strings.HasPrefix(ce.Reason, "token_invalid: ") {
		t.Fatalf("connect: %v, want a CloseError 4003 token_invalid", err)
	}
	for i := range 3 {
		if d := recv(t, e.disconnects, "disconnect"); d.Code != 4003 || d.WillReconnect != (i < 2) {
			t.Fatalf("disconnect %d: %+v", i, d)
		}
	}
	s := until(t, e.states, "disconnected", func(s client.StateEvent) bool { return s.State == client.Disconnected })
	if s.Code != 4003 || c.State() != client.Disconnected || calls.count() != 3 {
		t.Fatalf("state %+v after %d tokens", s, calls.count())
	}
	if err := recv(t, e.errs, "error"); !errors.As(err, &ce) {
		t.Fatalf("OnError %v, want the close that stopped the client", err)
	}
	if err := c.Publish(pushtest.Ctx(t), "d", "e", nil); !errors.Is(err, client.ErrStopped) {
		t.Fatalf("publish on a stopped client: %v", err)
	}

	// A refusal by HTTP status (here a bad token in an Authorization header
	// the application added) counts as the close code it stands for.
	hdr, he := start(t, client.Config{URL: n.WSURL(), GetToken: tokens("hank", time.Hour, nil),
		Header: http.Header{"Authorization": {"Bearer garbage"}}})
	if err := hdr.Connect(pushtest.Ctx(t)); !errors.As(err, &ce) || ce.Code != 4003 {
		t.Fatalf("a bad Authorization header: %v", err)
	}
	for i := range 3 {
		if d := recv(t, he.disconnects, "disconnect"); d.Status != http.StatusUnauthorized || d.Code != 4003 || d.Error != "token_invalid" || d.WillReconnect != (i < 2) {
			t.Fatalf("disconnect %d: %+v, want HTTP 401 token_invalid as 4003", i, d)
		}
	}

	dev, de := start(t, client.Config{URL: n.WSURL(), User: "mallory"})
	if err := dev.Connect(pushtest.Ctx(t)); !errors.As(err, &ce) || ce.Code != 4003 {
		t.Fatalf("dev user on a production node: %v", err)
	}
	if d := recv(t, de.disconnects, "disconnect"); d.WillReconnect {
		t.Fatalf("disconnect %+v, want no retry without GetToken", d)
	}
}

// TestKickStaysDisconnected: an admin's kick (4010) is not undone by a
// reconnect; Connect starts the client again.
func TestKickStaysDisconnected(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	n := historyNode(t, js, 1, node.Config{})
	calls := newCounter()
	c, e := start(t, client.Config{URL: n.WSURL(), GetToken: tokens("kurt", time.Hour, calls)})
	connect(t, c)
	h := recv(t, e.hellos, "hello")
	if got := n.Kick(h.SID, "", "account suspended"); len(got) != 1 {
		t.Fatalf("kicked %v", got)
	}
	d := recv(t, e.disconnects, "disconnect")
	if d.Code != 4010 || d.Reason != "account suspended" || d.WillReconnect {
		t.Fatalf("disconnect %+v, want 4010 without reconnect", d)
	}
	s := until(t, e.states, "disconnected", func(s client.StateEvent) bool { return s.State == client.Disconnected })
	if s.Code != 4010 || s.Reason != "account suspended" || c.State() != client.Disconnected || calls.count() != 1 {
		t.Fatalf("state %+v, %d tokens", s, calls.count())
	}
	connect(t, c)
	if h2 := recv(t, e.hellos, "hello after Connect"); h2.SID == h.SID || !h2.First {
		t.Fatalf("hello %+v: want a new session, first again", h2)
	}
}

// TestJoinGrants: a join needs a grant in the token or a join token; a
// refused join fails for good with the server's error, and goes to the
// subscription's OnError.
func TestJoinGrants(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	nc := js.Connect(t)
	n := historyNode(t, js, 1, node.Config{})
	sign := func(claims jwt.MapClaims) (string, error) {
		claims["exp"] = time.Now().Add(time.Hour).Unix()
		return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	}
	c, _ := start(t, client.Config{URL: n.WSURL(), GetToken: func(context.Context) (string, error) {
		return sign(jwt.MapClaims{"sub": "dan", "docs": []string{"team-7/*"}})
	}})
	connect(t, c)
	if err := c.Join("team-7/plan", client.JoinOptions{}).Ready(pushtest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	refused := make(chan error, 1)
	hidden := c.Join("secret", client.JoinOptions{OnError: func(err error) { refused <- err }})
	var se *client.ServerError
	if err := hidden.Ready(pushtest.Ctx(t)); !errors.As(err, &se) || se.Code != "forbidden" || se.Doc != "secret" {
		t.Fatalf("join secret: %v, want forbidden", err)
	}
	if err := recv(t, refused, "OnError"); !errors.As(err, &se) || hidden.State() != client.Failed || c.Subscription("secret") != nil {
		t.Fatalf("OnError %v, state %v", err, hidden.State())
	}
	pushes := make(chan *client.Push, 1)
	tokenCalls := newCounter()
	sub := c.Join("secret-2", client.JoinOptions{
		TokenFunc: func(context.Context) (string, error) {
			tokenCalls.add()
			return sign(jwt.MapClaims{"sub": "dan", "doc": "secret-2"})
		},
		OnPush: func(p *client.Push) error { pushes <- p; return nil },
	})
	if err := sub.Ready(pushtest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	publish(t, nc, "push.doc.secret-2", `{"ok":true}`, 1)
	if p := recv(t, pushes, "push"); string(p.Data) != `{"ok":true}` || tokenCalls.count() != 1 {
		t.Fatalf("push %+v, %d join tokens", p, tokenCalls.count())
	}
}
