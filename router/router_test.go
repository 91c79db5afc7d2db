package router

import (
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/internal/pushtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type recorder struct {
	mu  sync.Mutex
	got []contract.Push
	n   int // sessions each push matches
	cut int // of them, cut off
}

func (r *recorder) Deliver(p *contract.Push) contract.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := *p
	c.Data = append([]byte(nil), p.Data...)
	r.got = append(r.got, c)
	return contract.Report{Matched: r.n, Delivered: r.n - r.cut, CutOff: r.cut}
}

// NewBatch: the recorder writes nothing, so its batch is itself.
func (r *recorder) NewBatch() contract.Batch { return recBatch{r} }

type recBatch struct{ *recorder }

func (recBatch) Flush() {}

func (r *recorder) deliveries() []contract.Push {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]contract.Push(nil), r.got...)
}

func TestRouterRoutesHeadersAndReports(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rec := &recorder{n: 3, cut: 1}
	r, err := New(Config{Conn: nc, NodeID: 9, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Start(rec); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(rec); err == nil {
		t.Fatal("a second Start was accepted")
	}
	if err := r.Subscribe(contract.TargetUser, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := r.Subscribe(contract.TargetUser, "alice"); err != nil { // idempotent
		t.Fatal(err)
	}
	if got := r.Subscriptions(); got != 3 {
		t.Fatalf("subscriptions %d, want 3 (all, the node's sessions, alice)", got)
	}
	if err := r.Subscribe(contract.TargetSession, "1"); err == nil {
		t.Fatal("a per-session subscription was accepted")
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	pub := ns.Connect(t)
	msg := &nats.Msg{Subject: "push.user.alice", Data: []byte(`{"a":1}`), Header: nats.Header{}}
	msg.Header.Set(contract.HeaderEvent, "e")
	msg.Header.Set(contract.HeaderID, "i")
	msg.Header.Set(contract.HeaderExcludeSession, "42")
	msg.Header.Set(contract.HeaderTimestamp, "1795000000123")
	reply, err := pub.RequestMsg(msg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(reply.Data) != `{"node":9,"matched":3,"delivered":2,"cut_off":1}` {
		t.Fatalf("delivery report %s", reply.Data)
	}
	d := rec.deliveries()[0]
	if d.Target != contract.TargetUser || d.Key != "alice" || d.Event != "e" || d.ID != "i" || d.ExcludeSession != "42" ||
		d.SentUnixNano != 1795000000123*1e6 || string(d.Data) != `{"a":1}` {
		t.Fatalf("delivery %+v", d)
	}
	// Without headers: default event; no session matched means no report.
	rec.mu.Lock()
	rec.n = 0
	rec.mu.Unlock()
	if _, err := pub.Request("push.all", []byte("x"), 300*time.Millisecond); err == nil {
		t.Fatal("a report was sent though no session matched")
	}
	pushtest.Eventually(t, 5*time.Second, func() error {
		if ds := rec.deliveries(); len(ds) < 2 || ds[1].Event != contract.DefaultEvent || ds[1].Target != contract.TargetAll {
			return errAgain
		}
		return nil
	})
	// Upstream and events carry the contract's subjects and headers.
	up, err := pub.SubscribeSync("push.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := r.PublishUpstream("d", "7", "alice", "edit", []byte(`[1]`)); err != nil {
		t.Fatal(err)
	}
	m, err := up.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "push.up.doc.d" || m.Header.Get(contract.HeaderSession) != "7" || m.Header.Get(contract.HeaderUser) != "alice" ||
		m.Header.Get(contract.HeaderEvent) != "edit" || m.Header.Get(contract.HeaderNode) != "9" {
		t.Fatalf("upstream %s %v", m.Subject, m.Header)
	}
	if err := r.Unsubscribe(contract.TargetUser, "alice"); err != nil {
		t.Fatal(err)
	}
	if got := r.Subscriptions(); got != 2 {
		t.Fatalf("subscriptions after unsubscribe %d, want 2", got)
	}
}

type again struct{}

func (again) Error() string { return "not yet" }

var errAgain = again{}
