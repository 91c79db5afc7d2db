package rebalance_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/cluster"
	"github.com/pushd/pushd/history"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
	"github.com/pushd/pushd/rebalance"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// interval is the tests' heartbeat and rebalancing period.
const interval = 100 * time.Millisecond

// member is a node under test with its heartbeats and rebalancer, wired as
// cmd/pushd wires them.
type member struct {
	*testnode.Node
	cluster *cluster.Cluster
	rb      *rebalance.Rebalancer
}

// startMember runs node id with history on js, heartbeats every interval
// carrying its load, and a rebalancer with cfg (Node, Cluster, Interval
// filled in).
func startMember(t *testing.T, js *pushtest.NATS, id int64, cfg rebalance.Config) *member {
	t.Helper()
	n := testnode.StartWith(t, js.URL(), node.Config{Dev: true, NodeID: id, MaxSessionsPerUser: -1},
		testnode.Options{History: &history.Config{}})
	cl, err := cluster.New(cluster.Config{Conn: js.Connect(t), Interval: interval, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Load: func() cluster.Load {
		ok, _ := n.Ready()
		return cluster.Load{Sessions: n.Sessions(), Accepting: ok}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Start(id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	cfg.Node, cfg.Cluster, cfg.Interval, cfg.Registerer = n, cl, interval, n.Registry
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	rb, err := rebalance.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rb.Start()
	t.Cleanup(rb.Close) // before the cluster and the node stop
	return &member{Node: n, cluster: cl, rb: rb}
}

// small are thresholds for a few dozen sessions, shed quickly.
var small = rebalance.Config{Ratio: 1.2, MinExcess: 2, Fraction: 1, Rate: 20}

// TestANewNodeTakesItsShare: every session is on node A; node B starts; A
// sheds until it holds the average, the Go SDK's clients (URLs of both
// nodes) reconnect to B and resume, every push published to their doc
// during the move arrives exactly once and in order, and the counts
// settle: B never sheds, A stops.
func TestANewNodeTakesItsShare(t *testing.T) {
	js := pushtest.RunJetStream(t)
	a := startMember(t, js, 1, small)
	const clients = 30

	var mu sync.Mutex
	got := make([][]int, clients) // pushes each client handled (their data), in order
	type handle struct {
		c  *client.Client
		up chan struct{}
	}
	hs := make([]handle, clients)
	var b *member
	urls := []string{a.WSURL(), ""} // B's URL once it runs
	var urlMu sync.Mutex
	for i := range hs {
		i := i
		hs[i].up = make(chan struct{}, 1)
		hs[i].c = client.New(client.Config{
			URLFunc: func(_ context.Context, attempt int) (string, error) {
				urlMu.Lock()
				defer urlMu.Unlock()
				if urls[1] == "" {
					return urls[0], nil
				}
				return urls[attempt%2], nil
			},
			User:    "u" + strconv.Itoa(i),
			Backoff: client.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond, Restart: 50 * time.Millisecond},
		})
		hs[i].c.Join("room", client.JoinOptions{
			OnPush: func(p *client.Push) error {
				v, err := strconv.Atoi(string(p.Data))
				if err != nil {
					return err
				}
				mu.Lock()
				got[i] = append(got[i], v)
				mu.Unlock()
				return nil
			},
			OnSubscribed: func(client.SubscribedEvent) {
				select {
				case hs[i].up <- struct{}{}:
				default:
				}
			},
		})
		if err := hs[i].c.Connect(pushtest.Ctx(t)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = hs[i].c.Close() })
	}
	for i := range hs {
		select {
		case <-hs[i].up:
		case <-time.After(10 * time.Second):
			t.Fatalf("client %d never joined", i)
		}
	}
	if n := a.Sessions(); n != clients {
		t.Fatalf("node A holds %d sessions, want %d", n, clients)
	}
	// Alone, A has nowhere to send anyone.
	pushtest.Eventually(t, 5*time.Second, func() error {
		if v := a.rb.View(); v.Why != rebalance.WhyAlone {
			return fmt.Errorf("A's view %+v, want %s", v, rebalance.WhyAlone)
		}
		return nil
	})

	// Pushes flow to the doc through JetStream for the whole move.
	jsc, err := jetstream.New(js.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	published := make(chan int, 1)
	t.Cleanup(func() { halt(); <-published })
	go func() {
		last := 0
		defer func() { published <- last }()
		for i := 1; ; i++ {
			_, err := jsc.Publish(pushtest.Ctx(t), "push.doc.room", []byte(strconv.Itoa(i)))
			if err != nil {
				select {
				case <-stop:
				default:
					t.Errorf("publish %d: %v", i, err)
				}
				return
			}
			last = i
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()

	b = startMember(t, js, 2, small)
	urlMu.Lock()
	urls[1] = b.WSURL()
	urlMu.Unlock()

	// A sheds down to the average, B takes the rest, and it stays so.
	settled := func() error {
		na, nb := a.Sessions(), b.Sessions()
		if na+nb != clients || na > clients/2+1 || nb < clients/2-1 {
			return fmt.Errorf("A holds %d, B %d", na, nb)
		}
		return nil
	}
	pushtest.Eventually(t, 20*time.Second, settled)
	shedA := a.Metric(t, `pushd_rebalance_closed_total{trigger="auto"}`)
	// Ten more rounds: nothing moves.
	for range 10 {
		time.Sleep(interval)
		if err := settled(); err != nil {
			t.Fatalf("counts did not stay settled: %v", err)
		}
	}
	if now := a.Metric(t, `pushd_rebalance_closed_total{trigger="auto"}`); now != shedA || shedA < clients/2-1 {
		t.Fatalf("A shed %v, then %v more after settling", shedA, now-shedA)
	}
	if shedB := b.Metric(t, `pushd_rebalance_closed_total{trigger="auto"}`); shedB != 0 {
		t.Fatalf("B shed %v sessions back: ping-pong", shedB)
	}
	if avg := a.Metric(t, "pushd_cluster_average_sessions"); avg != clients/2 {
		t.Fatalf("pushd_cluster_average_sessions = %v, want %d", avg, clients/2)
	}

	halt()
	last := <-published
	published <- last // for the cleanup
	// Every client handles every push, 1..last, once each, in order.
	pushtest.Eventually(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for i, seqs := range got {
			if len(seqs) == 0 || seqs[len(seqs)-1] < last {
				return fmt.Errorf("client %d at %d pushes", i, len(seqs))
			}
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for i, seqs := range got {
		if len(seqs) != last {
			t.Fatalf("client %d handled %d pushes, want %d: %v", i, len(seqs), last, seqs)
		}
		for j, v := range seqs {
			if v != j+1 {
				t.Fatalf("client %d: its push %d is %d: lost, repeated or out of order", i, j+1, v)
			}
		}
	}
}
