package client_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/node"
)

// Reconnecting: drain (1012) to the other node, refused upgrades by HTTP
// status, kill -9 and a frozen node (real pushd processes), each time
// resuming without a gap or a duplicate.

// gate is a URLFunc: the first attempt goes to first, every later one waits
// until open is called, then goes to rest.
type gate struct {
	first, rest string
	once        sync.Once
	ch          chan struct{}
}

func newGate(first, rest string) *gate {
	return &gate{first: first, rest: rest, ch: make(chan struct{})}
}

func (g *gate) url(ctx context.Context, attempt int) (string, error) {
	if attempt == 0 {
		return g.first, nil
	}
	select {
	case <-g.ch:
		return g.rest, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// TestDrainReconnectsToTheOtherNode: a node drains (1012): the client
// reconnects at once (the restart jitter) to the next URL, resumes the
// user's pushes and rejoins its doc with its cursors, so the pushes
// published while it was away arrive once, in order; a publish made while
// it reconnects goes out on the new session.
func TestDrainReconnectsToTheOtherNode(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	nc := js.Connect(t)
	jsc, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	a, b := historyNode(t, js, 1, node.Config{}), historyNode(t, js, 2, node.Config{})
	up, err := nc.SubscribeSync("push.up.doc.dr-doc")
	if err != nil {
		t.Fatal(err)
	}
	g := newGate(a.WSURL(), b.WSURL())
	c, e := start(t, client.Config{URLFunc: g.url, GetToken: tokens("dru", time.Hour, nil)})
	connect(t, c)
	recv(t, e.hellos, "first hello")
	subscribed := make(chan client.SubscribedEvent, 10)
	sub := c.Join("dr-doc", client.JoinOptions{OnSubscribed: func(s client.SubscribedEvent) { subscribed <- s }})
	recv(t, subscribed, "subscribed")
	for _, s := range []string{"push.user.dru", "push.doc.dr-doc"} {
		publish(t, nc, s, `"1"`, 1)
		recv(t, e.pushes, "push 1")
	}

	if err := a.Drain(pushtest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	d := recv(t, e.disconnects, "disconnect")
	if d.Code != 1012 || !strings.Contains(d.Reason, "node 1") || !d.WillReconnect || d.Delay > 50*time.Millisecond || d.URL != a.WSURL() {
		t.Fatalf("disconnect %+v: want 1012 naming node 1, reconnecting within the restart jitter", d)
	}
	if s := until(t, e.states, "state", func(s client.StateEvent) bool { return s.Previous == client.Connected }); s.State != client.Connecting || s.Code != 1012 {
		t.Fatalf("state %+v, want connecting because of 1012", s)
	}
	// Away: pushes are stored, and a publish waits for the next session.
	for _, s := range []string{"push.user.dru", "push.doc.dr-doc"} {
		for _, v := range []string{`"2"`, `"3"`} {
			if _, err := jsc.Publish(pushtest.Ctx(t), s, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
	}
	published := make(chan error, 1)
	go func() { published <- c.Publish(pushtest.Ctx(t), "dr-doc", "note", "while away") }()
	g.open()

	h := recv(t, e.hellos, "hello on b")
	if h.Node != 2 || h.First || !h.Resumed || !h.Recovered || h.Gap || h.URL != b.WSURL() {
		t.Fatalf("hello %+v: want node 2, resumed and recovered", h)
	}
	if s := recv(t, subscribed, "subscribed again"); s.First || !s.Resumed || !s.Recovered || s.Gap {
		t.Fatalf("subscribed %+v: want a recovered rejoin", s)
	}
	if err := recv(t, published, "publish"); err != nil {
		t.Fatalf("publish made while reconnecting: %v", err)
	}
	if m, err := up.NextMsg(5 * time.Second); err != nil || string(m.Data) != `"while away"` {
		t.Fatalf("upstream %v %v", m, err)
	}
	publish(t, nc, "push.user.dru", `"4"`, 1)
	publish(t, nc, "push.doc.dr-doc", `"4"`, 1)
	got := map[string][]string{}
	for range 6 {
		p := recv(t, e.pushes, "push")
		got[p.Target] = append(got[p.Target], string(p.Data))
	}
	want := []string{`"2"`, `"3"`, `"4"`}
	if strings.Join(got["user"], ",") != strings.Join(want, ",") || strings.Join(got["doc"], ",") != strings.Join(want, ",") {
		t.Fatalf("pushes after the drain %v, want %v for user and doc", got, want)
	}
	publish(t, nc, pushtest.SessionSubject(h.SID), `"marker"`, 1)
	if p := recv(t, e.pushes, "marker"); string(p.Data) != `"marker"` {
		t.Fatalf("a duplicate came before the marker: %+v", p)
	}
	if s, _ := sub.Cursor(); s == 0 {
		t.Fatal("no doc cursor")
	}
}

// TestRefusedUpgrades: a non-browser client is refused with an HTTP status
// and a JSON body; the client acts on them as on the close codes a browser
// gets: 503 over_capacity (1013) and 429 rate_limited (4029) back off
// longer, 503 draining (1012) moves on at once; each time to the next URL.
func TestRefusedUpgrades(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	full := historyNode(t, js, 1, node.Config{MaxConnections: 1})
	draining := historyNode(t, js, 2, node.Config{})
	limited := historyNode(t, js, 3, node.Config{HandshakeRatePerIP: 0.001, HandshakeBurstPerIP: 1})
	ok := historyNode(t, js, 4, node.Config{})
	occupant, err := client.Dial(pushtest.Ctx(t), full.WSURL(), client.Options{Token: mustToken(t, "someone")})
	if err != nil {
		t.Fatal(err)
	}
	defer occupant.Close()
	if err := draining.Drain(pushtest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	if status, _ := pushtest.Handshake(t, limited.WSURL(), http.Header{"Authorization": {"Bearer nonsense"}}); status != http.StatusUnauthorized {
		t.Fatalf("the handshake that uses up the limit: %d", status)
	}
	backoff := client.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond, Restart: 20 * time.Millisecond}
	c, e := start(t, client.Config{URLs: []string{full.WSURL(), draining.WSURL(), limited.WSURL(), ok.WSURL()},
		GetToken: tokens("ref", time.Hour, nil), Backoff: backoff})
	connect(t, c)
	for i, want := range []struct {
		code   uint16
		status int
		err    string
		min    time.Duration
		max    time.Duration
	}{
		{1013, 503, "over_capacity", 40 * time.Millisecond, 80 * time.Millisecond}, // slow: [cap/2, cap], cap = 8·10ms
		{1012, 503, "draining", 0, 20 * time.Millisecond},                          // restart
		{4029, 429, "rate_limited", 50 * time.Millisecond, 100 * time.Millisecond}, // slow, third failure: cap min(100, 320)
	} {
		d := recv(t, e.disconnects, "disconnect")
		if d.Code != want.code || d.Status != want.status || d.Error != want.err || !d.WillReconnect || d.Delay < want.min || d.Delay > want.max {
			t.Fatalf("refusal %d: %+v, want %d/%d %s with a delay in [%s, %s]", i, d, want.code, want.status, want.err, want.min, want.max)
		}
	}
	if h := recv(t, e.hellos, "hello"); h.Node != 4 {
		t.Fatalf("hello from node %d, want 4", h.Node)
	}
}

// TestReconnectAfterKill9WhilePushesFlow: a backend publishes user and doc
// pushes without pause; the client's node is killed with SIGKILL (a real
// process: no close frame, no drain). The client reconnects to the other
// node and resumes both subjects: it handles every push exactly once, in
// order.
func TestReconnectAfterKill9WhilePushesFlow(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	nc := js.Connect(t)
	jsc, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--dev", "--nats-url", js.URL(), "--replay-max-msgs", "1000"}
	a := pushtest.StartPushd(t, bins.Path(t, "pushd"), append(args, "--node-id", "1")...)
	b := pushtest.StartPushd(t, bins.Path(t, "pushd"), append(args, "--node-id", "2")...)

	const total = 150
	got := map[string][]string{}
	var mu sync.Mutex
	all := make(chan struct{})
	record := func(p *client.Push) error {
		mu.Lock()
		defer mu.Unlock()
		got[p.Target] = append(got[p.Target], string(p.Data))
		if len(got["user"]) == total && len(got["doc"]) == total {
			close(all)
		}
		return nil
	}
	c, e := start(t, client.Config{URLs: []string{a.WSURL(), b.WSURL()}, User: "kim", OnPush: record})
	connect(t, c)
	recv(t, e.hellos, "hello")
	subscribed := make(chan client.SubscribedEvent, 10)
	c.Join("k", client.JoinOptions{OnSubscribed: func(s client.SubscribedEvent) { subscribed <- s }})
	recv(t, subscribed, "subscribed")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	publishing := make(chan error, 1)
	third := make(chan struct{})
	go func() {
		tick := time.NewTicker(3 * time.Millisecond)
		defer tick.Stop()
		for i := 1; i <= total; i++ {
			if i == total/3 {
				close(third)
			}
			for _, s := range []string{"push.user.kim", "push.doc.k"} {
				if _, err := jsc.Publish(ctx, s, []byte(strconv.Itoa(i))); err != nil {
					publishing <- err
					return
				}
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				publishing <- ctx.Err()
				return
			}
		}
		publishing <- nil
	}()
	<-third
	a.Kill()
	if d := recv(t, e.disconnects, "disconnect"); d.Code != 1006 || !d.WillReconnect {
		t.Fatalf("disconnect %+v: want 1006 (no close frame), reconnecting", d)
	}
	if h := recv(t, e.hellos, "hello on b"); h.Node != 2 || !h.Resumed || !h.Recovered || h.Gap {
		t.Fatalf("hello %+v: want node 2, recovered", h)
	}
	if s := recv(t, subscribed, "subscribed again"); !s.Resumed || !s.Recovered || s.Gap {
		t.Fatalf("subscribed %+v: want recovered", s)
	}
	if err := recv(t, publishing, "the publisher's end"); err != nil {
		t.Fatal(err)
	}
	recv(t, all, "every push")
	mu.Lock()
	defer mu.Unlock()
	for _, target := range []string{"user", "doc"} {
		for i, v := range got[target] {
			if v != strconv.Itoa(i+1) {
				t.Fatalf("%s pushes: #%d is %s, want %d (all: %v)", target, i+1, v, i+1, got[target])
			}
		}
	}
}

// TestDeadServerDetected: the node freezes (SIGSTOP: its sockets stay open,
// nothing is read or written). No frame answers the client's heartbeat
// within the server's grace, so the client gives up on it (1006
// heartbeat_timeout) and reconnects to the other node.
func TestDeadServerDetected(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	args := []string{"--dev", "--nats-url", js.URL(), "--ping-interval", "200ms", "--ping-interval-max", "200ms", "--ping-grace", "400ms"}
	a := pushtest.StartPushd(t, bins.Path(t, "pushd"), append(args, "--node-id", "1")...)
	b := pushtest.StartPushd(t, bins.Path(t, "pushd"), append(args, "--node-id", "2")...)
	c, e := start(t, client.Config{URLs: []string{a.WSURL(), b.WSURL()}, User: "fritz"})
	connect(t, c)
	recv(t, e.hellos, "hello")
	if err := a.Freeze(); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	d := recv(t, e.disconnects, "disconnect")
	if d.Code != 1006 || d.Error != "heartbeat_timeout" || !d.WillReconnect || d.URL != a.WSURL() {
		t.Fatalf("disconnect %+v: want 1006 heartbeat_timeout", d)
	}
	// At most an interval to the next ping, then the grace.
	if took := time.Since(frozen); took > 2*time.Second {
		t.Fatalf("the frozen node was noticed after %s", took)
	}
	if h := recv(t, e.hellos, "hello on b"); h.Node != 2 {
		t.Fatalf("hello %+v, want node 2", h)
	}
}

// mustToken is a token for user that lives an hour.
func mustToken(t *testing.T, user string) string {
	t.Helper()
	tok, err := signToken(user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
