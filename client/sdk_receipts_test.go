package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/node"
)

// Receipts against real nodes: a push published with Push-Receipt is
// acknowledged when its handlers return nil, withheld when one fails, and an
// unacknowledged push is replayed on the next resume; the cursor never
// passes it.

// receipt reads the next receipt on sub.
func receipt(t *testing.T, sub *nats.Subscription) (seq, id string) {
	t.Helper()
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no receipt: %v", err)
	}
	var r struct{ Seq, ID string }
	if err := json.Unmarshal(m.Data, &r); err != nil {
		t.Fatalf("receipt %s: %v", m.Data, err)
	}
	return r.Seq, r.ID
}

// TestReceiptsAuto: the receipt goes when the handler returns, not before
// (the cursor stays below the push meanwhile); a handler's error withholds
// it, and the push comes again on the next session, whose receipt the
// backend then gets.
func TestReceiptsAuto(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	nc := js.Connect(t)
	receipts, err := nc.SubscribeSync("receipts.rita")
	if err != nil {
		t.Fatal(err)
	}
	a, b := historyNode(t, js, 1, node.Config{}), historyNode(t, js, 2, node.Config{})
	entered, release := make(chan *client.Push, 10), make(chan error, 10)
	handler := func(p *client.Push) error {
		entered <- p
		return <-release
	}
	c, e := start(t, client.Config{URLs: []string{a.WSURL(), b.WSURL()}, GetToken: tokens("rita", time.Hour, nil), OnPush: handler})
	connect(t, c)
	h := recv(t, e.hellos, "hello")

	publish(t, nc, "push.user.rita", `{"order":1}`, 1, "Push-Receipt", "receipts.rita", "Push-Id", "o-1")
	p := recv(t, entered, "push")
	if !p.NeedsAck || p.Seq <= h.Seq {
		t.Fatalf("push %+v: want a receipt asked for, a seq", p)
	}
	if cur, _ := c.Cursor(); cur >= p.Seq {
		t.Fatalf("cursor %d passed the push %d its handler still works on", cur, p.Seq)
	}
	release <- nil
	if seq, id := receipt(t, receipts); seq != strconv.FormatUint(p.Seq, 10) || id != "o-1" {
		t.Fatalf("receipt seq %s id %s, want %d o-1", seq, id, p.Seq)
	}
	pushtest.Eventually(t, 5*time.Second, func() error {
		if cur, _ := c.Cursor(); cur != p.Seq {
			return errorf("cursor %d, want %d", cur, p.Seq)
		}
		return nil
	})

	// A failing handler: no receipt, the cursor stays; after a reconnect
	// the push comes again.
	publish(t, nc, "push.user.rita", `{"order":2}`, 1, "Push-Receipt", "receipts.rita", "Push-Id", "o-2")
	p2 := recv(t, entered, "push 2")
	release <- errors.New("database down")
	if err := recv(t, e.errs, "handler error"); err == nil {
		t.Fatal("no error")
	}
	publish(t, nc, "push.user.rita", `{"order":3}`, 1) // no receipt asked: handled, held above the cursor
	recv(t, entered, "push 3")
	release <- nil
	pushtest.Eventually(t, 5*time.Second, func() error {
		if len(e.errs) > 0 {
			return errorf("error: %v", <-e.errs)
		}
		if cur, _ := c.Cursor(); cur != p.Seq {
			return errorf("cursor %d, want it held at %d, below the unacknowledged %d", cur, p.Seq, p2.Seq)
		}
		return nil
	})
	if err := a.Drain(pushtest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	again := recv(t, entered, "the replayed push")
	release <- nil
	if again.Seq != p2.Seq || string(again.Data) != `{"order":2}` || !again.NeedsAck {
		t.Fatalf("replayed %+v, want seq %d again", again, p2.Seq)
	}
	if seq, id := receipt(t, receipts); seq != strconv.FormatUint(p2.Seq, 10) || id != "o-2" {
		t.Fatalf("receipt seq %s id %s, want %d o-2", seq, id, p2.Seq)
	}
	publish(t, nc, "push.user.rita", `"marker"`, 1)
	if m := recv(t, entered, "marker"); string(m.Data) != `"marker"` {
		t.Fatalf("push 3 came again: %+v", m)
	}
	release <- nil
}

// TestReceiptsManual: with ManualAck the application acknowledges; a push
// not acknowledged before the connection ends is replayed, and a receipt
// given while disconnected is sent when the resume replays the push, which
// is not handed over again.
func TestReceiptsManual(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	nc := js.Connect(t)
	receipts, err := nc.SubscribeSync("receipts.mia")
	if err != nil {
		t.Fatal(err)
	}
	a, b, cc := historyNode(t, js, 1, node.Config{}), historyNode(t, js, 2, node.Config{}), historyNode(t, js, 3, node.Config{})
	// Each attempt takes the next URL the test hands over.
	urls := make(chan string, 1)
	urls <- a.WSURL()
	urlFunc := func(ctx context.Context, _ int) (string, error) {
		select {
		case u := <-urls:
			return u, nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	c, e := start(t, client.Config{URLFunc: urlFunc, GetToken: tokens("mia", time.Hour, nil), ManualAck: true})
	connect(t, c)
	recv(t, e.hellos, "hello")
	subscribed := make(chan client.SubscribedEvent, 10)
	sub := c.Join("mia-doc", client.JoinOptions{OnSubscribed: func(s client.SubscribedEvent) { subscribed <- s }})
	recv(t, subscribed, "subscribed")

	// Not acknowledged: replayed on the next session, then acknowledged.
	publish(t, nc, "push.doc.mia-doc", `"first"`, 1, "Push-Receipt", "receipts.mia")
	p := recv(t, e.pushes, "push")
	urls <- b.WSURL()
	if err := a.Drain(pushtest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	if s := recv(t, subscribed, "subscribed on the second node"); !s.Recovered {
		t.Fatalf("subscribed %+v", s)
	}
	again := recv(t, e.pushes, "the replayed push")
	if again.Seq != p.Seq || !again.NeedsAck {
		t.Fatalf("replayed %+v, want seq %d", again, p.Seq)
	}
	if cur, _ := sub.Cursor(); cur >= p.Seq {
		t.Fatalf("doc cursor %d passed the unacknowledged push %d", cur, p.Seq)
	}
	again.Ack()
	p.Ack() // the first copy's: given already, nothing is sent
	if seq, _ := receipt(t, receipts); seq != strconv.FormatUint(p.Seq, 10) {
		t.Fatalf("receipt %s, want %d", seq, p.Seq)
	}

	// Acknowledged while disconnected: sent on the replay, not handed over.
	publish(t, nc, "push.doc.mia-doc", `"second"`, 1, "Push-Receipt", "receipts.mia")
	p2 := recv(t, e.pushes, "push 2")
	if err := b.Drain(pushtest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	recv(t, e.disconnects, "disconnect")
	recv(t, e.disconnects, "disconnect")
	p2.Ack() // no session: kept until the replay
	urls <- cc.WSURL()
	if s := recv(t, subscribed, "subscribed on the third node"); !s.Recovered {
		t.Fatalf("subscribed %+v", s)
	}
	if seq, _ := receipt(t, receipts); seq != strconv.FormatUint(p2.Seq, 10) {
		t.Fatalf("receipt %s, want %d", seq, p2.Seq)
	}
	publish(t, nc, "push.doc.mia-doc", `"marker"`, 1)
	if m := recv(t, e.pushes, "marker"); string(m.Data) != `"marker"` {
		t.Fatalf("the acknowledged push was handed over again: %+v", m)
	}
	pushtest.Eventually(t, 5*time.Second, func() error {
		if cur, _ := sub.Cursor(); cur <= p2.Seq {
			return errorf("doc cursor %d, want past %d", cur, p2.Seq)
		}
		return nil
	})
	if _, err := receipts.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatal("a second receipt")
	}
}
