package router

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/internal/pushtest"
)

// batchRecorder is a Batcher that logs "d" for each delivery and "f" for each
// flush, and can hold its first delivery until released.
type batchRecorder struct {
	mu      sync.Mutex
	log     []byte
	hold    chan struct{} // closed to let the first delivery return
	holding chan struct{} // closed when the first delivery is being held
	once    sync.Once
}

func (b *batchRecorder) Flush() { b.add('f') }

func (b *batchRecorder) add(c byte) {
	b.mu.Lock()
	b.log = append(b.log, c)
	b.mu.Unlock()
}

func (b *batchRecorder) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.log)
}

type heldBatch struct{ *batchRecorder }

func (h heldBatch) Deliver(*contract.Push) contract.Report {
	h.once.Do(func() { close(h.holding); <-h.hold })
	h.add('d')
	return contract.Report{Matched: 1, Delivered: 1}
}

type heldBatcher struct{ *batchRecorder }

func (h heldBatcher) Deliver(p *contract.Push) contract.Report { return heldBatch(h).Deliver(p) }
func (h heldBatcher) NewBatch() contract.Batch                 { return heldBatch(h) }

// TestBatchFlushesAfterTheBacklog checks that a worker delivers the messages
// waiting in its queue before one flush, that a message with no backlog is
// flushed on its own, and that a run stops at BatchMessages.
func TestBatchFlushesAfterTheBacklog(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	rec := &batchRecorder{hold: make(chan struct{}), holding: make(chan struct{})}
	r, err := New(Config{Conn: nc, Workers: 1, BatchMessages: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(heldBatcher{rec}); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pub := ns.Connect(t)
	backlog(t, pub, r, rec, 6)
	// The held message and three queued ones (BatchMessages 4), a flush, the
	// last three, a flush.
	rec.wait(t, "ddddfdddf")
	// With no backlog every message is flushed at once.
	for range 2 {
		before := rec.String()
		if err := pub.Publish("push.all", nil); err != nil {
			t.Fatal(err)
		}
		rec.wait(t, before+"df")
	}
}

// TestBatchDeliveriesBoundARun checks that a run also ends once its messages
// reached BatchDeliveries sessions.
func TestBatchDeliveriesBoundARun(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	rec := &batchRecorder{hold: make(chan struct{}), holding: make(chan struct{})}
	r, err := New(Config{Conn: nc, Workers: 1, BatchDeliveries: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(heldBatcher{rec}); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	backlog(t, ns.Connect(t), r, rec, 4)
	rec.wait(t, "ddfddfdf")
}

// backlog publishes one push, which the router's only worker takes and
// holds in its first delivery, then n more that queue up behind it, and lets
// the held delivery go once they are all queued.
func backlog(t *testing.T, pub *nats.Conn, r *Router, rec *batchRecorder, n int) {
	t.Helper()
	for i := range n + 1 {
		if err := pub.Publish("push.all", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			<-rec.holding
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	pushtest.Eventually(t, 5*time.Second, func() error {
		if len(r.queues[0]) < n {
			return errAgain
		}
		return nil
	})
	close(rec.hold)
}

// wait waits until the log of deliveries and flushes is want.
func (b *batchRecorder) wait(t *testing.T, want string) {
	t.Helper()
	pushtest.Eventually(t, 5*time.Second, func() error {
		if got := b.String(); got != want {
			return fmt.Errorf("log %q, want %q", got, want)
		}
		return nil
	})
}

// TestConcurrentSyncsSeeTheirSubscriptions checks that concurrent Syncs,
// which share round trips, each return only once the caller's own
// subscription is known to the server.
func TestConcurrentSyncsSeeTheirSubscriptions(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	r, err := New(Config{Conn: nc})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Start(&recorder{}); err != nil {
		t.Fatal(err)
	}
	acc := ns.GlobalAccount()
	const callers = 300
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := "u" + strconv.Itoa(i)
			if err := r.Subscribe(contract.TargetUser, user); err != nil {
				errs <- err
				return
			}
			if err := r.Sync(t.Context()); err != nil {
				errs <- err
				return
			}
			if n := acc.Interest("push.user." + user); n != 1 {
				errs <- fmt.Errorf("after Sync the server has %d subscriptions on %s, want 1", n, user)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
