package router

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/history"
	"github.com/pushd/pushd/internal/pushtest"
)

// TestTailStartsAtTheFirstLivePush: a subject's tail that began tracking
// before the node delivered anything (a resume whose read failed or came
// back not recovered, or one still reading when a live push arrives) covers
// only from the first live push's predecessor on, never from position 0.
// pushbench's rolling restart lost doc pushes this way: clients resuming a
// doc on a freshly started node were answered from a tail that held only
// the live pushes, without the stored ones before them.
func TestTailStartsAtTheFirstLivePush(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := history.New(history.Config{Conn: nc, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Close() }()
	rec := &recorder{n: 1}
	r, err := New(Config{Conn: nc, History: h})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(rec); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	pushtest.Eventually(t, 10*time.Second, func() error {
		if _, ok := r.Position(contract.TargetDoc); !ok {
			return errors.New("history not on yet")
		}
		return nil
	})
	since, _ := r.Position(contract.TargetDoc)

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{`"a"`, `"b"`, `"c"`} { // stored while nobody here holds d1
		if _, err := js.Publish(ctx, "push.doc.d1", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Subscribe(contract.TargetDoc, "d1"); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// A resume that fails (from a position ahead of the stream) still makes
	// the subject keep a tail.
	if _, err := r.Replay(ctx, contract.TargetDoc, "d1", since+1<<40); !errors.Is(err, history.ErrFuture) {
		t.Fatalf("replay from the future: %v, want ErrFuture", err)
	}
	if _, err := js.Publish(ctx, "push.doc.d1", []byte(`"live"`)); err != nil {
		t.Fatal(err)
	}
	pushtest.Eventually(t, 5*time.Second, func() error {
		if len(rec.deliveries()) == 0 {
			return errors.New("live push not delivered")
		}
		return nil
	})
	rep, err := r.Replay(ctx, contract.TargetDoc, "d1", since)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range rep.Pushes {
		got = append(got, string(p.Data))
	}
	if !rep.Recovered || len(got) != 4 || got[0] != `"a"` || got[3] != `"live"` {
		t.Fatalf("resume from before the stored pushes: recovered %v, pushes %v; want a, b, c, live", rep.Recovered, got)
	}
}
