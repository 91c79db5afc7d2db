package presence

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/internal/pushtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, pushtest.IgnoredLeaks()...) }

// sink collects the batches a tracker hands out.
type sink chan *contract.PresenceEvents

func (s sink) PresenceEvents(ev *contract.PresenceEvents) { s <- ev }

// tracker runs a tracker for node on the NATS server at url, with its own
// no-echo connection, stopped at cleanup.
func tracker(t *testing.T, url string, node int64, cfg Config) (*Tracker, sink) {
	t.Helper()
	nc, err := nats.Connect(url, nats.NoEcho())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Conn, cfg.Node = nc, node
	if cfg.Instance == "" {
		cfg.Instance = fmt.Sprint("inst-", node, "-", time.Now().UnixNano())
	}
	if cfg.GoneAfter == 0 {
		cfg.GoneAfter = -1 // no cluster here: Peer is called by the tests
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := make(sink, 1024)
	if err := tr.Start(s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tr.Close()
		nc.Close()
	})
	return tr, s
}

// sid makes the session ID of node's i-th session: a snowflake with the
// node in bits 12-21.
func sid(node int64, i int) string {
	return strconv.FormatInt(1<<40|node<<12|int64(i)<<22, 10)
}

func member(node int64, i int) contract.Member {
	return contract.Member{SID: sid(node, i), User: fmt.Sprint("user-", i%7), Node: node, JoinedAt: time.Now().UTC()}
}

// members pages through doc's members as tr answers them.
func members(t *testing.T, tr *Tracker, doc string) ([]string, contract.PresencePage) {
	t.Helper()
	var out []string
	var first contract.PresencePage
	q := contract.PresenceQuery{Limit: contract.MaxPageSize}
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		p, err := tr.Query(ctx, doc, q)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = p
		}
		for _, m := range p.Members {
			out = append(out, m.SID)
		}
		if p.Next == "" {
			return out, first
		}
		q.Cursor = p.Next
	}
}

func expectMembers(t *testing.T, tr *Tracker, doc string, want []string) {
	t.Helper()
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b string) int { return cmpI64(sidNum(a), sidNum(b)) })
	pushtest.Eventually(t, 5*time.Second, func() error {
		got, p := members(t, tr, doc)
		if !slices.Equal(got, want) || p.Sessions != len(want) {
			return fmt.Errorf("node %d sees %d members (%d counted), want %d: %v, want %v", tr.cfg.Node, len(got), p.Sessions, len(want), got, want)
		}
		return nil
	})
}

func sidNum(s string) int64 { return (&contract.Member{SID: s}).SIDNum() }

// TestLargeSnapshotIsFetchedInPages: a holder with more members than one
// snapshot message carries is fetched page by page by a node that starts
// holding the doc; the deltas during the fetch are not lost.
func TestLargeSnapshotIsFetchedInPages(t *testing.T) {
	ns := pushtest.RunNATS(t)
	a, _ := tracker(t, ns.URL(), 1, Config{})
	b, _ := tracker(t, ns.URL(), 2, Config{})
	var all []string
	for i := range 1234 {
		m := member(1, i)
		a.Track("big", m, nil)
		all = append(all, m.SID)
	}
	mb := member(2, 1)
	b.Track("big", mb, nil)
	all = append(all, mb.SID)
	// Changes on a while b fetches: the result is the same.
	a.Untrack("big", sid(1, 3), contract.LeaveLeft)
	extra := member(1, 5000)
	a.Track("big", extra, nil)
	all = append(slices.DeleteFunc(all, func(s string) bool { return s == sid(1, 3) }), extra.SID)
	expectMembers(t, b, "big", all)
	expectMembers(t, a, "big", all)
	if got := counterValue(t, b.metrics.syncs.WithLabelValues("fetch")); got < 1 {
		t.Fatalf("fetches %v, want the large snapshot fetched", got)
	}
}

// TestGapIsRepaired: a delta that never arrived (a slow consumer drop, a
// route hiccup) shows as a gap in the sender's numbering; the receiver
// fetches the sender's members and catches up.
func TestGapIsRepaired(t *testing.T) {
	ns := pushtest.RunNATS(t)
	a, _ := tracker(t, ns.URL(), 1, Config{})
	b, _ := tracker(t, ns.URL(), 2, Config{})
	a.Track("doc", member(1, 1), nil)
	b.Track("doc", member(2, 1), nil)
	expectMembers(t, b, "doc", []string{sid(1, 1), sid(2, 1)})

	// a's next deltas are "lost": the test applies them to a only, by
	// taking its doc state, then makes b see a later one.
	d := a.held("doc")
	for i := 2; i <= 4; i++ {
		m := member(1, i)
		d.local[m.SID] = local{m: m}
		d.counted(m.User, 1)
		d.seq++ // published by nobody: a gap for b
	}
	d.mu.Unlock()
	m5 := member(1, 5)
	a.Track("doc", m5, nil) // seq+1: b sees the gap
	expectMembers(t, b, "doc", []string{sid(1, 1), sid(1, 2), sid(1, 3), sid(1, 4), m5.SID, sid(2, 1)})
	if got := counterValue(t, b.metrics.syncs.WithLabelValues("fetch")); got != 1 {
		t.Fatalf("fetches %v, want 1", got)
	}
}

// TestNodeLostAndBack: members of an instance declared gone are dropped
// with node_lost leaves, its late deltas ignored; when it heartbeats again
// (a healed partition), its members are fetched again.
func TestNodeLostAndBack(t *testing.T) {
	ns := pushtest.RunNATS(t)
	a, _ := tracker(t, ns.URL(), 1, Config{Window: -1})
	b, events := tracker(t, ns.URL(), 2, Config{Window: -1})
	listener := member(2, 1)
	var since uint64
	b.Track("doc", listener, func(s uint64) { since = s })
	a.Track("doc", member(1, 1), nil)
	a.Track("doc", member(1, 2), nil)
	expectMembers(t, b, "doc", []string{sid(1, 1), sid(1, 2), listener.SID})
	drain := func(n int) []contract.PresenceChange {
		var out []contract.PresenceChange
		for len(out) < n {
			select {
			case ev := <-events:
				for _, c := range ev.Changes {
					if c.Seq > since {
						out = append(out, c)
					}
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("got %d of %d changes", len(out), n)
			}
		}
		return out
	}
	drain(2)

	b.Peer(1, a.cfg.Instance, true)
	b.Peer(1, a.cfg.Instance, false)
	for _, c := range drain(2) {
		if c.Join || c.Reason != contract.LeaveNodeLost {
			t.Fatalf("change %+v, want a node_lost leave", c)
		}
	}
	expectMembers(t, b, "doc", []string{listener.SID})
	// While a is gone to b, its deltas change nothing there.
	a.Track("doc", member(1, 3), nil)
	expectMembers(t, a, "doc", []string{sid(1, 1), sid(1, 2), sid(1, 3), listener.SID})
	expectMembers(t, b, "doc", []string{listener.SID})

	// a heartbeats again: b fetches a's members.
	b.Peer(1, a.cfg.Instance, true)
	expectMembers(t, b, "doc", []string{sid(1, 1), sid(1, 2), sid(1, 3), listener.SID})
	if got := counterValue(t, b.metrics.membersLost); got != 2 {
		t.Fatalf("members lost %v, want 2", got)
	}
}

// TestUnconfirmedInstanceIsDropped: members of an instance the heartbeats
// never confirm (it died before its first heartbeat was heard) go after
// GoneAfter; those of a confirmed one stay.
func TestUnconfirmedInstanceIsDropped(t *testing.T) {
	ns := pushtest.RunNATS(t)
	a, _ := tracker(t, ns.URL(), 1, Config{})
	b, _ := tracker(t, ns.URL(), 2, Config{GoneAfter: 300 * time.Millisecond})
	c, _ := tracker(t, ns.URL(), 3, Config{})
	b.Peer(3, c.cfg.Instance, true)
	b.Track("doc", member(2, 1), nil)
	c.Track("doc", member(3, 1), nil)
	a.Track("doc", member(1, 1), nil)
	expectMembers(t, b, "doc", []string{sid(1, 1), sid(2, 1), sid(3, 1)})
	expectMembers(t, b, "doc", []string{sid(2, 1), sid(3, 1)})
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestResyncAfterReconnect: deltas published while a node's NATS
// connection was away are lost to it; when it reconnects it syncs the docs
// it holds again, and the members it missed arrive and leave.
func TestResyncAfterReconnect(t *testing.T) {
	ns := pushtest.RunNATS(t)
	a, _ := tracker(t, ns.URL(), 1, Config{})
	b, _ := tracker(t, ns.URL(), 2, Config{})
	c, _ := tracker(t, ns.URL(), 3, Config{})
	a.Track("doc", member(1, 1), nil)
	b.Track("doc", member(2, 1), nil)
	b.Track("doc", member(2, 2), nil)
	c.Track("doc", member(3, 1), nil)
	expectMembers(t, a, "doc", []string{sid(1, 1), sid(2, 1), sid(2, 2), sid(3, 1)})

	// While a is away (as far as it can tell), b's member 2 leaves, c stops
	// holding the doc and b's member 3 joins: a hears none of it.
	for _, tr := range []*Tracker{b, c} {
		d := tr.held("doc")
		if tr == b {
			delete(d.local, sid(2, 2))
			d.counted("user-2", -1)
			m := member(2, 3)
			d.local[m.SID] = local{m: m}
			d.counted(m.User, 1)
			d.seq += 2
			d.mu.Unlock()
			continue
		}
		d.mu.Unlock()
		sh := tr.shardOf("doc") // c lets go of the doc without a word
		sh.mu.Lock()
		d.mu.Lock()
		delete(d.local, sid(3, 1))
		tr.release(d)
		delete(sh.docs, "doc")
		d.mu.Unlock()
		sh.mu.Unlock()
	}
	if err := a.nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	expectMembers(t, a, "doc", []string{sid(1, 1), sid(2, 1), sid(2, 3)})
	if got := counterValue(t, a.metrics.syncs.WithLabelValues("resync")); got != 1 {
		t.Fatalf("resyncs %v, want 1", got)
	}
}

// TestSubscriptionsFollowHeldDocs: interest-only, like the push
// subscriptions: a node subscribes to a doc's two presence subjects while
// one of its sessions is in the doc, and to nothing else per doc.
func TestSubscriptionsFollowHeldDocs(t *testing.T) {
	ns := pushtest.RunNATS(t)
	a, _ := tracker(t, ns.URL(), 1, Config{})
	base := int(ns.NumSubscriptions()) // the node subject and the reply inbox
	want := func(d int) {
		t.Helper()
		pushtest.Eventually(t, 5*time.Second, func() error {
			if got := int(ns.NumSubscriptions()); got != base+d {
				return fmt.Errorf("NATS server has %d subscriptions, want %d", got, base+d)
			}
			return nil
		})
	}
	a.Track("d1", member(1, 1), nil)
	want(2)
	a.Track("d1", member(1, 2), nil)
	a.Track("d2", member(1, 1), nil)
	want(4)
	a.Untrack("d1", sid(1, 1), contract.LeaveLeft)
	want(4)
	a.Untrack("d1", sid(1, 2), contract.LeaveLeft)
	a.Untrack("d2", sid(1, 1), contract.LeaveDisconnected)
	want(0)
}
