package history

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/internal/pushtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, pushtest.IgnoredLeaks()...) }

func start(t *testing.T, url string, cfg Config) *History {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cfg.Conn = nc
	if cfg.Interval == 0 {
		cfg.Interval = 50 * time.Millisecond
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// publish publishes n pushes to subject with plain NATS, as a backend does,
// and returns their positions from the republished copies.
func publish(t *testing.T, nc *nats.Conn, subject string, n int) []uint64 {
	t.Helper()
	seqSubject := "push.seq." + subject[len("push."):]
	sub, err := nc.SubscribeSync(seqSubject)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for i := range n {
		if err := nc.Publish(subject, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("republished copy of %s: %v", subject, err)
		}
		seq, _ := strconv.ParseUint(m.Header.Get(contract.HeaderStreamSequence), 10, 64)
		seqs = append(seqs, seq)
	}
	return seqs
}

func TestStreamsRepublishWithPositionsAndAChain(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	h := start(t, ns.URL(), Config{})
	if !h.Available() {
		t.Fatal("history not available after Start")
	}
	nc := ns.Connect(t)
	sub, err := nc.SubscribeSync("push.seq.doc.>")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"push.doc.a", "push.doc.b", "push.doc.a"} {
		if err := nc.Publish(s, []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	var got []*nats.Msg
	for range 3 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	seq := func(m *nats.Msg, h string) uint64 { v, _ := strconv.ParseUint(m.Header.Get(h), 10, 64); return v }
	a1, b1, a2 := got[0], got[1], got[2]
	if a1.Subject != "push.seq.doc.a" || seq(a1, contract.HeaderLastSequence) != 0 || seq(b1, contract.HeaderLastSequence) != 0 {
		t.Fatalf("first pushes: %s last=%s, %s last=%s", a1.Subject, a1.Header.Get(contract.HeaderLastSequence), b1.Subject, b1.Header.Get(contract.HeaderLastSequence))
	}
	if seq(a2, contract.HeaderLastSequence) != seq(a1, contract.HeaderStreamSequence) || seq(a2, contract.HeaderStreamSequence) <= seq(b1, contract.HeaderStreamSequence) {
		t.Fatalf("chain: a2 last %s, want a1 %s", a2.Header.Get(contract.HeaderLastSequence), a1.Header.Get(contract.HeaderStreamSequence))
	}
	// A new stream starts at the time it was created, in nanoseconds.
	if first := h.docs.firstSeq.Load(); first < uint64(time.Now().Add(-time.Minute).UnixNano()) || seq(a1, contract.HeaderStreamSequence) < first {
		t.Fatalf("stream first seq %d, first push %d", first, seq(a1, contract.HeaderStreamSequence))
	}
}

func TestReplay(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	h := start(t, ns.URL(), Config{Doc: Limits{MaxMsgsPerSubject: 10}, ReplayMaxMsgs: 5})
	ctx := context.Background()
	pos, ok := h.Position(contract.TargetDoc)
	if !ok {
		t.Fatal("no position while available")
	}
	seqs := publish(t, nc, "push.doc.d", 3)
	publish(t, nc, "push.doc.other", 2)

	// From a position before the pushes: all three, recovered.
	r, err := h.Replay(ctx, contract.TargetDoc, "d", pos)
	if err != nil || !r.Recovered || len(r.Msgs) != 3 || r.Msgs[0].Seq != seqs[0] || r.Msgs[2].Seq != seqs[2] || string(r.Msgs[1].Data) != "1" {
		t.Fatalf("replay from %d: %+v, %v", pos, r, err)
	}
	// From the second: the third only.
	if r, err = h.Replay(ctx, contract.TargetDoc, "d", seqs[1]); err != nil || !r.Recovered || len(r.Msgs) != 1 || r.Msgs[0].Seq != seqs[2] {
		t.Fatalf("replay from the second push: %+v, %v", r, err)
	}
	// From the last: nothing missed, known from the subject's last push
	// alone (the stream info is cached): one read, not a walk of the stream.
	reads := testutil.ToFloat64(h.metrics.reads)
	if r, err = h.Replay(ctx, contract.TargetDoc, "d", seqs[2]); err != nil || !r.Recovered || len(r.Msgs) != 0 || r.Position < seqs[2] {
		t.Fatalf("replay from the last push: %+v, %v", r, err)
	}
	if n := testutil.ToFloat64(h.metrics.reads) - reads; n != 1 {
		t.Fatalf("a replay with nothing missed read %v times, want 1 (the subject's last push)", n)
	}
	// A subject nothing was ever published to: recovered, nothing.
	if r, err = h.Replay(ctx, contract.TargetDoc, "never", pos); err != nil || !r.Recovered || len(r.Msgs) != 0 {
		t.Fatalf("replay of a silent doc: %+v, %v", r, err)
	}
	// Ahead of the stream: ErrFuture.
	if _, err = h.Replay(ctx, contract.TargetDoc, "d", seqs[2]+1000); !errors.Is(err, ErrFuture) {
		t.Fatalf("replay from the future: %v", err)
	}
	// More than a replay carries: not recovered.
	more := publish(t, nc, "push.doc.d", 6)
	if r, err = h.Replay(ctx, contract.TargetDoc, "d", seqs[2]); err != nil || r.Recovered || len(r.Msgs) != 5 {
		t.Fatalf("replay of 6 with a limit of 5: %+v, %v", r, err)
	}
	// Trimmed by the per-subject limit (10): a position before the oldest
	// kept push cannot be recovered, the one just before the last ten can.
	if r, err = h.Replay(ctx, contract.TargetDoc, "d", pos); err != nil || r.Recovered {
		t.Fatalf("replay past the trimmed history: recovered=%v, %v", r.Recovered, err)
	}
	if r, err = h.Replay(ctx, contract.TargetDoc, "d", more[0]); err != nil || !r.Recovered || len(r.Msgs) != 5 {
		t.Fatalf("replay of the last five: %+v, %v", r, err)
	}
}

// TestReplayAfterAStreamReset: a client resuming from a position of a
// stream that was deleted and created again is told recovered:false, not
// served the new stream's pushes as if they followed its own.
func TestReplayAfterAStreamReset(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	h := start(t, ns.URL(), Config{})
	old := publish(t, nc, "push.user.alice", 2)
	js, _ := jetstream.New(nc)
	if err := js.DeleteStream(context.Background(), h.users.name); err != nil {
		t.Fatal(err)
	}
	pushtest.Eventually(t, 10*time.Second, func() error { // the heartbeat notices and recreates it
		if _, err := js.Stream(context.Background(), h.users.name); err != nil {
			return err
		}
		if !h.Available() {
			return errors.New("not available yet")
		}
		return nil
	})
	fresh := publish(t, nc, "push.user.alice", 1)
	if fresh[0] <= old[1] {
		t.Fatalf("recreated stream's push %d is not above the old one's %d", fresh[0], old[1])
	}
	r, err := h.Replay(context.Background(), contract.TargetUser, "alice", old[0])
	if err != nil || r.Recovered {
		t.Fatalf("resume from the old stream: %+v, %v; want recovered:false", r, err)
	}
}

// TestUnavailableWithoutJetStream: a NATS server without JetStream leaves
// history unavailable, and Start still succeeds (live delivery goes on).
func TestUnavailableWithoutJetStream(t *testing.T) {
	ns := pushtest.RunNATS(t)
	h := start(t, ns.URL(), Config{})
	if h.Available() {
		t.Fatal("available without JetStream")
	}
	if _, ok := h.Position(contract.TargetUser); ok {
		t.Fatal("a position without history")
	}
	if _, err := h.Replay(context.Background(), contract.TargetUser, "u", 1); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("replay: %v", err)
	}
}

// TestRead: the tools' read lists a subject's pushes after a position,
// oldest first, says when more follow, and fails clearly without streams.
func TestRead(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	start(t, ns.URL(), Config{})
	seqs := publish(t, nc, "push.doc.notes", 5)
	publish(t, nc, "push.doc.other", 2)
	ctx := pushtest.Ctx(t)

	msgs, more, err := Read(ctx, nc, "", contract.TargetDoc, "notes", 0, 10)
	if err != nil || more || len(msgs) != 5 {
		t.Fatalf("read all: %d msgs, more %v, %v", len(msgs), more, err)
	}
	for i, m := range msgs {
		if m.Seq != seqs[i] || string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("msg %d: seq %d %q, want %d %q", i, m.Seq, m.Data, seqs[i], strconv.Itoa(i))
		}
	}
	msgs, more, err = Read(ctx, nc, "", contract.TargetDoc, "notes", seqs[1], 2)
	if err != nil || !more || len(msgs) != 2 || msgs[0].Seq != seqs[2] {
		t.Fatalf("read 2 after the second: %+v, more %v, %v", msgs, more, err)
	}
	if msgs, _, err := Read(ctx, nc, "", contract.TargetUser, "nobody", 0, 10); err != nil || len(msgs) != 0 {
		t.Fatalf("read of a subject with no pushes: %d msgs, %v", len(msgs), err)
	}
	if _, _, err := Read(ctx, nc, "elsewhere", contract.TargetDoc, "notes", 0, 10); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("read without streams: %v, want ErrUnavailable", err)
	}
	if _, _, err := Read(ctx, nc, "", contract.TargetAll, "", 0, 10); err == nil {
		t.Fatal("read of broadcasts: want an error")
	}
}

// TestLastSeqs: the last position of each subject that has pushes, in
// batches, whatever the number of subjects asked about.
func TestLastSeqs(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	h := start(t, ns.URL(), Config{})
	a := publish(t, nc, "push.user.a", 3)
	b := publish(t, nc, "push.user.b.with.dots", 1)
	keys := []string{"a", "b.with.dots"}
	for i := range 600 { // three batches, mostly subjects without pushes
		keys = append(keys, "silent"+strconv.Itoa(i))
	}
	lasts, err := h.LastSeqs(pushtest.Ctx(t), contract.TargetUser, keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(lasts) != 2 || lasts["a"] != a[2] || lasts["b.with.dots"] != b[0] {
		t.Fatalf("lasts %v, want a=%d b.with.dots=%d", lasts, a[2], b[0])
	}
}
