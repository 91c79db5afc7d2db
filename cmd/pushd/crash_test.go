package main

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
)

// TestResumeOnAnotherNodeAfterKill9: a node is killed with SIGKILL, no drain,
// no goodbye. Its client reconnects to another node with the positions it
// last processed and gets every user and doc push published meanwhile, in
// order, then the live ones.
func TestResumeOnAnotherNodeAfterKill9(t *testing.T) {
	t.Parallel()
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	a := pushtest.StartPushd(t, binary(t), "--dev", "--nats-url", ns.URL(), "--node-id", "1")
	b := pushtest.StartPushd(t, binary(t), "--dev", "--nats-url", ns.URL(), "--node-id", "2")
	ctx := pushtest.Ctx(t)

	c, err := client.Dial(ctx, a.WSURL(), client.Options{User: "kim"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Join(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	pushtest.Publish(t, nc, "push.user.kim", nil, `"u0"`, 1)
	pushtest.Publish(t, nc, "push.doc.k", nil, `"d0"`, 1)
	u0, d0 := next(t, c, `"u0"`), next(t, c, `"d0"`)

	a.Kill()
	<-c.Done()
	for i := 1; i <= 3; i++ {
		for _, subject := range []string{"push.user.kim", "push.doc.k"} {
			if _, err := js.Publish(ctx, subject, []byte(strconv.Quote(subject[5:6]+strconv.Itoa(i)))); err != nil {
				t.Fatal(err)
			}
		}
	}

	c2, err := client.Dial(ctx, b.WSURL(), client.Options{User: "kim", Since: u0.Seq})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if h := c2.Hello(); h.Recovered == nil || !*h.Recovered || h.Node != 2 {
		t.Fatalf("hello %+v: want node 2, recovered:true", h)
	}
	for _, want := range []string{`"u1"`, `"u2"`, `"u3"`} {
		next(t, c2, want)
	}
	j, err := c2.JoinSince(ctx, "k", d0.Seq)
	if err != nil || j.Recovered == nil || !*j.Recovered {
		t.Fatalf("join since %s: %+v %v", d0.Seq, j, err)
	}
	for _, want := range []string{`"d1"`, `"d2"`, `"d3"`} {
		next(t, c2, want)
	}
	pushtest.Publish(t, nc, "push.doc.k", nil, `"live"`, 1)
	next(t, c2, `"live"`)
}

// next reads c's next push and checks its data.
func next(t *testing.T, c *client.Conn, data string) client.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("waiting for push %s: %v", data, err)
	}
	if string(f.Data) != data || f.Seq == "" {
		t.Fatalf("push %s (seq %q), want %s with a seq", f.Data, f.Seq, data)
	}
	return f
}
