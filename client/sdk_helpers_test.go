package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushd/pushd/auth"
	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/history"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// Helpers of the Client's tests: real nodes (in process, or the pushd binary)
// with history on a real JetStream server, and a client whose events land on
// channels the test reads.

// historyNode runs a node with history on js. Nodes verify HS256 tokens
// signed with secret; cfg.Dev lets ?user= in too.
func historyNode(t *testing.T, js *pushtest.NATS, id int64, cfg node.Config) *testnode.Node {
	t.Helper()
	v, err := auth.New(auth.Config{Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.NodeID, cfg.Auth = id, v
	return testnode.StartWith(t, js.URL(), cfg, testnode.Options{History: &history.Config{}})
}

// events are a client's events, on channels (buffered far beyond what a test
// sends, so handlers never wait).
type events struct {
	states      chan client.StateEvent
	hellos      chan client.HelloEvent
	disconnects chan client.DisconnectEvent
	pushes      chan *client.Push
	errs        chan error
}

const eventBuffer = 10_000

// start makes a client with cfg's handlers replaced by channels, fast
// backoff unless cfg sets one, closed when the test ends; it does not
// connect.
func start(t *testing.T, cfg client.Config) (*client.Client, *events) {
	t.Helper()
	e := &events{
		states:      make(chan client.StateEvent, eventBuffer),
		hellos:      make(chan client.HelloEvent, eventBuffer),
		disconnects: make(chan client.DisconnectEvent, eventBuffer),
		pushes:      make(chan *client.Push, eventBuffer),
		errs:        make(chan error, eventBuffer),
	}
	cfg.OnState = func(s client.StateEvent) { e.states <- s }
	cfg.OnHello = func(h client.HelloEvent) { e.hellos <- h }
	cfg.OnDisconnect = func(d client.DisconnectEvent) { e.disconnects <- d }
	if cfg.OnPush == nil {
		cfg.OnPush = func(p *client.Push) error { e.pushes <- p; return nil }
	}
	cfg.OnError = func(err error) { e.errs <- err }
	if cfg.Backoff == (client.Backoff{}) {
		cfg.Backoff = client.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond, Restart: 50 * time.Millisecond}
	}
	c := client.New(cfg)
	t.Cleanup(func() { _ = c.Close() })
	return c, e
}

// connect starts c and waits for its first session.
func connect(t *testing.T, c *client.Client) {
	t.Helper()
	if err := c.Connect(pushtest.Ctx(t)); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

// tokens is a GetToken for user, each token valid for ttl; calls counts the
// calls.
func tokens(user string, ttl time.Duration, calls *counter) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		if calls != nil {
			calls.add()
		}
		return signToken(user, ttl)
	}
}

// counter counts calls from the client's goroutines.
type counter struct{ ch chan struct{} }

func newCounter() *counter { return &counter{ch: make(chan struct{}, eventBuffer)} }

func (c *counter) add() { c.ch <- struct{}{} }

// count is the calls so far.
func (c *counter) count() int { return len(c.ch) }

// recv waits for the next value on ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		var zero T
		t.Fatalf("no %s within 10s", what)
		return zero
	}
}

// until reads ch until match accepts a value, and returns it.
func until[T any](t *testing.T, ch <-chan T, what string, match func(T) bool) T {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case v := <-ch:
			if match(v) {
				return v
			}
		case <-deadline:
			var zero T
			t.Fatalf("no %s within 15s", what)
			return zero
		}
	}
}

// empty fails the test if ch holds anything now.
func empty[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %+v", what, v)
	default:
	}
}

// publish publishes data to subject as a backend would and waits for want
// delivery reports.
func publish(t *testing.T, nc *nats.Conn, subject, data string, want int, kv ...string) {
	t.Helper()
	pushtest.Publish(t, nc, subject, pushtest.Header(kv...), data, want)
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// store publishes data to subject through JetStream: it returns once the
// push is stored, whoever holds the subject.
func store(t *testing.T, nc *nats.Conn, subject, data string) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(pushtest.Ctx(t), subject, []byte(data)); err != nil {
		t.Fatal(err)
	}
}
