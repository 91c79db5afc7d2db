package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/history"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// withHistory runs a dev node with history on the JetStream server at url.
func withHistory(t *testing.T, url string, id int64, hc history.Config) *testnode.Node {
	t.Helper()
	n := testnode.StartWith(t, url, node.Config{Dev: true, NodeID: id}, testnode.Options{History: &hc})
	pushtest.Eventually(t, 10*time.Second, func() error {
		if !n.History.Available() || n.Metric(t, "pushd_history_subscribed") != 1 {
			return fmt.Errorf("history not available on a JetStream server")
		}
		return nil
	})
	return n
}

// dialSince opens a dev session for user resuming its pushes from since.
func dialSince(t *testing.T, n *testnode.Node, user, since string) *client.Conn {
	t.Helper()
	c, err := client.Dial(pushtest.Ctx(t), n.WSURL(), client.Options{User: user, Since: since})
	if err != nil {
		t.Fatalf("dial %s since %s: %v", user, since, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// next reads c's next push and checks its data.
func next(t *testing.T, c *client.Conn, data string) client.Frame {
	t.Helper()
	f, err := c.Next(pushtest.Ctx(t))
	if err != nil {
		t.Fatalf("waiting for push %s: %v", data, err)
	}
	if string(f.Data) != data {
		t.Fatalf("push %s (seq %s), want %s", f.Data, f.Seq, data)
	}
	return f
}

// store publishes a push while no session takes it and waits for
// JetStream to confirm it is in history.
func store(t *testing.T, nc *nats.Conn, subject, data string) uint64 {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(pushtest.Ctx(t), subject, []byte(data))
	if err != nil {
		t.Fatalf("store %s: %v", subject, err)
	}
	return ack.Sequence
}

// away closes c and waits until n no longer holds its session, so pushes
// published next are missed, not delivered to a closing socket.
func away(t *testing.T, n *testnode.Node, c *client.Conn) {
	t.Helper()
	_ = c.Close()
	pushtest.Eventually(t, 5*time.Second, func() error {
		if _, ok := n.SessionInfo(c.SID()); ok {
			return fmt.Errorf("session %s still open", c.SID())
		}
		return nil
	})
}

func seqOf(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("position %q: %v", s, err)
	}
	return n
}

func recovered(f client.Frame) string {
	if f.Recovered == nil {
		return "absent"
	}
	return strconv.FormatBool(*f.Recovered)
}

// TestResumeAfterADisconnect: pushes published while a client is away, to
// its user and to a doc it had joined, come back in order when it resumes
// from the last seq it processed; then live ones follow, nothing twice.
func TestResumeAfterADisconnect(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	n := withHistory(t, ns.URL(), 1, history.Config{})
	c := pushtest.Dial(t, n.WSURL(), "alice")
	if c.Hello().Seq == "" || c.Hello().Recovered != nil {
		t.Fatalf("hello %+v: want a position and no recovered flag", c.Hello())
	}
	if err := c.Join(pushtest.Ctx(t), "d1"); err != nil {
		t.Fatal(err)
	}
	pushtest.Publish(t, nc, "push.user.alice", nil, `"u1"`, 1)
	pushtest.Publish(t, nc, "push.doc.d1", nil, `"d1"`, 1)
	u1, d1 := next(t, c, `"u1"`), next(t, c, `"d1"`)
	if seqOf(t, u1.Seq) <= seqOf(t, c.Hello().Seq) || d1.Seq == "" {
		t.Fatalf("positions: hello %s, user push %s, doc push %s", c.Hello().Seq, u1.Seq, d1.Seq)
	}
	away(t, n, c)

	// Away: two user pushes and two doc pushes.
	for _, p := range []string{"u2", "u3"} {
		store(t, nc, "push.user.alice", strconv.Quote(p))
	}
	for _, p := range []string{"d2", "d3"} {
		store(t, nc, "push.doc.d1", strconv.Quote(p))
	}

	c = dialSince(t, n, "alice", u1.Seq)
	if recovered(c.Hello()) != "true" {
		t.Fatalf("hello %+v: want recovered:true", c.Hello())
	}
	u2, u3 := next(t, c, `"u2"`), next(t, c, `"u3"`)
	if seqOf(t, u2.Seq) >= seqOf(t, u3.Seq) || seqOf(t, u3.Seq) > seqOf(t, c.Hello().Seq) {
		t.Fatalf("replayed seqs %s, %s with hello at %s", u2.Seq, u3.Seq, c.Hello().Seq)
	}
	j, err := c.JoinSince(pushtest.Ctx(t), "d1", d1.Seq)
	if err != nil || recovered(j) != "true" || j.Doc != "d1" {
		t.Fatalf("resume d1: %+v %v", j, err)
	}
	next(t, c, `"d2"`)
	next(t, c, `"d3"`)
	pushtest.Publish(t, nc, "push.user.alice", nil, `"live"`, 1)
	if f := next(t, c, `"live"`); seqOf(t, f.Seq) <= seqOf(t, u3.Seq) {
		t.Fatalf("live push seq %s after %s", f.Seq, u3.Seq)
	}
	pushtest.Marker(t, nc, c) // and nothing else
}

// TestResumeSeamWhilePushesFlow: a publisher never stops, and a client
// keeps dropping its connection (with pushes in flight) and resuming from
// the last push it processed, on alternating nodes. Every push stored
// reaches it exactly once, in order.
func TestResumeSeamWhilePushesFlow(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	hc := history.Config{Doc: history.Limits{MaxMsgsPerSubject: 10_000}, ReplayMaxMsgs: 10_000, ReplayMaxBytes: 8 << 20}
	nodes := []*testnode.Node{withHistory(t, ns.URL(), 1, hc), withHistory(t, ns.URL(), 2, hc)}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var stored []uint64
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() { // about 1,000 pushes a second, each confirmed by JetStream
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			ack, err := js.Publish(context.Background(), "push.doc.stream", []byte(strconv.Itoa(i)))
			if err != nil {
				done <- err
				return
			}
			mu.Lock()
			stored = append(stored, ack.Sequence)
			mu.Unlock()
			time.Sleep(time.Millisecond) // the publishing rate under test
		}
	}()

	var got []uint64
	var seams []string // where each round started, for the failure message
	since := ""
	for round := range 12 {
		c := pushtest.Dial(t, nodes[round%2].WSURL(), "reader")
		var j client.Frame
		if since == "" {
			err = c.Join(pushtest.Ctx(t), "stream")
			j.Seq = "" // first join: from now on
		} else if j, err = c.JoinSince(pushtest.Ctx(t), "stream", since); err == nil && recovered(j) != "true" {
			t.Fatalf("round %d: resume from %s not recovered: %+v", round, since, j)
		}
		if err != nil {
			t.Fatal(err)
		}
		seams = append(seams, fmt.Sprintf("round %d at push %d: since %s, joined at %s", round, len(got), since, j.Seq))
		for range 20 + round*7 {
			f, err := c.Next(pushtest.Ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, seqOf(t, f.Seq))
			since = f.Seq
		}
		_ = c.Close() // with pushes still in flight
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	first := 0
	for first < len(stored) && stored[first] != got[0] {
		first++
	}
	if first == len(stored) {
		t.Fatalf("first push received (%d) was never stored", got[0])
	}
	for i, seq := range got {
		if first+i >= len(stored) || stored[first+i] != seq {
			t.Fatalf("push %d: got seq %d, want %d (a gap or a duplicate at a seam)\n%s", i, seq, stored[first+i], strings.Join(seams, "\n"))
		}
	}
}

// TestResumeAcrossADrain: a draining node closes its sessions with 1012;
// the client resumes on another node and misses nothing published meanwhile.
func TestResumeAcrossADrain(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	a, b := withHistory(t, ns.URL(), 1, history.Config{}), withHistory(t, ns.URL(), 2, history.Config{})
	c := pushtest.Dial(t, a.WSURL(), "bob")
	j, err := c.JoinSince(pushtest.Ctx(t), "room", "")
	if err == nil {
		t.Fatalf("an empty since was accepted: %+v", j)
	}
	if err := c.Join(pushtest.Ctx(t), "room"); err != nil {
		t.Fatal(err)
	}
	pushtest.Publish(t, nc, "push.doc.room", nil, `1`, 1)
	last := next(t, c, `1`)
	go a.Stop()
	<-c.Done()
	if code := pushtest.CloseCode(c.Err()); code != 1012 {
		t.Fatalf("drained with %v, want 1012", c.Err())
	}
	store(t, nc, "push.doc.room", `2`)
	c2 := pushtest.Dial(t, b.WSURL(), "bob")
	if j, err := c2.JoinSince(pushtest.Ctx(t), "room", last.Seq); err != nil || recovered(j) != "true" {
		t.Fatalf("resume on the other node: %+v %v", j, err)
	}
	next(t, c2, `2`)
}

// TestNotRecoveredAfterTrimming: when history no longer reaches back to a
// client's position, joined says recovered:false (the app refetches) and
// no partial replay hides the hole; live pushes follow.
func TestNotRecoveredAfterTrimming(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	n := withHistory(t, ns.URL(), 1, history.Config{Doc: history.Limits{MaxMsgsPerSubject: 5}})
	c := pushtest.Dial(t, n.WSURL(), "carol")
	if err := c.Join(pushtest.Ctx(t), "busy"); err != nil {
		t.Fatal(err)
	}
	pushtest.Publish(t, nc, "push.doc.busy", nil, `0`, 1)
	last := next(t, c, `0`)
	away(t, n, c)
	for i := 1; i <= 8; i++ { // 8 more: the per-doc limit of 5 trims past the client's place
		store(t, nc, "push.doc.busy", strconv.Itoa(i))
	}
	c = pushtest.Dial(t, n.WSURL(), "carol")
	j, err := c.JoinSince(pushtest.Ctx(t), "busy", last.Seq)
	if err != nil || recovered(j) != "false" || seqOf(t, j.Seq) <= seqOf(t, last.Seq) {
		t.Fatalf("resume past the trimmed history: %+v %v, want recovered:false and a newer seq", j, err)
	}
	pushtest.Publish(t, nc, "push.doc.busy", nil, `"live"`, 1)
	next(t, c, `"live"`) // the first push after joined is the live one
}

// TestResumeRefusals: a since that is not a position or is ahead of the
// history gets an error and no data; a since on a doc the session may not
// join is refused like the join itself.
func TestResumeRefusals(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	n := withHistory(t, ns.URL(), 1, history.Config{})
	c := pushtest.Dial(t, n.WSURL(), "dave")
	for since, code := range map[string]string{"abc": "bad_since", "-1": "bad_since", "99999999999999999999": "bad_since"} {
		_, err := c.JoinSince(pushtest.Ctx(t), "x", since)
		var se *client.ServerError
		if !errors.As(err, &se) || se.Code != code {
			t.Fatalf("join since %q: %v, want %s", since, err, code)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	_, docs := history.StreamNames("")
	st, err := js.Stream(pushtest.Ctx(t), docs)
	if err != nil {
		t.Fatal(err)
	}
	future := strconv.FormatUint(st.CachedInfo().State.LastSeq+1_000_000, 10)
	if _, err := c.JoinSince(pushtest.Ctx(t), "x", future); err == nil {
		t.Fatal("a since from the future was accepted")
	}
	// Not joined: a push to x does not reach dave.
	pushtest.Publish(t, nc, "push.doc.x", nil, `1`, 0)
	pushtest.Marker(t, nc, c)

	// A since on the query that is not a position: hello, then the error.
	bad, err := client.Dial(pushtest.Ctx(t), n.WSURL(), client.Options{User: "dave", Since: "soon"})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if f, err := bad.Reply(pushtest.Ctx(t)); err != nil || f.Code != "bad_since" {
		t.Fatalf("connect since soon: %+v %v", f, err)
	}
}

// TestReceipts: a push asking for a receipt carries "ack":true; the
// client's ack makes the node publish the receipt; an unacknowledged one
// is replayed when the client resumes from before it.
func TestReceipts(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	n := withHistory(t, ns.URL(), 3, history.Config{})
	receipts, err := nc.SubscribeSync("receipts.app")
	if err != nil {
		t.Fatal(err)
	}
	c := pushtest.Dial(t, n.WSURL(), "erin")
	start := c.Hello().Seq
	h := pushtest.Header(contract.HeaderReceipt, "receipts.app", contract.HeaderID, "r-1")
	pushtest.Publish(t, nc, "push.user.erin", h, `"please ack"`, 1)
	f := next(t, c, `"please ack"`)
	if !f.Ack || f.ID != "r-1" {
		t.Fatalf("push %+v: want ack:true, id r-1", f)
	}
	if err := c.Ack(f.Seq, ""); err != nil {
		t.Fatal(err)
	}
	m, err := receipts.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Seq, ID, Target, Key, User string
		SID                        string `json:"sid"`
		AckedAt                    string `json:"acked_at"`
	}
	if err := json.Unmarshal(m.Data, &r); err != nil {
		t.Fatal(err)
	}
	if r.Seq != f.Seq || r.ID != "r-1" || r.Target != "user" || r.Key != "erin" || r.SID != c.SID() || r.User != "erin" || r.AckedAt == "" {
		t.Fatalf("receipt %s", m.Data)
	}
	if err := c.Ack(f.Seq, ""); err != nil { // twice: ignored
		t.Fatal(err)
	}

	// Not acknowledged: no receipt; resuming from before it replays it.
	pushtest.Publish(t, nc, "push.user.erin", pushtest.Header(contract.HeaderReceipt, "receipts.app"), `"later"`, 1)
	g := next(t, c, `"later"`)
	// A broadcast has no position: it is acknowledged by its ID, and
	// without one no receipt is asked of it.
	pushtest.Publish(t, nc, "push.all", pushtest.Header(contract.HeaderReceipt, "receipts.app"), `"all"`, 1)
	if b := next(t, c, `"all"`); b.Ack || b.Seq != "" {
		t.Fatalf("broadcast without an ID %+v: want no seq and no ack", b)
	}
	pushtest.Publish(t, nc, "push.all", pushtest.Header(contract.HeaderReceipt, "receipts.app", contract.HeaderID, "news-1"), `"news"`, 1)
	if b := next(t, c, `"news"`); !b.Ack || b.Seq != "" || b.ID != "news-1" {
		t.Fatalf("broadcast with an ID %+v: want ack:true, no seq", b)
	}
	if err := c.Send([]byte(`{"type":"ack","push_id":"news-1"}`)); err != nil {
		t.Fatal(err)
	}
	m, err = receipts.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("receipt of the broadcast: %v", err)
	}
	var br map[string]any
	if err := json.Unmarshal(m.Data, &br); err != nil || br["target"] != "all" || br["id"] != "news-1" || br["sid"] != c.SID() || br["seq"] != nil {
		t.Fatalf("broadcast receipt %s", m.Data)
	}
	_ = c.Close()
	c = dialSince(t, n, "erin", start)
	next(t, c, `"please ack"`)
	again := next(t, c, `"later"`)
	if again.Seq != g.Seq || !again.Ack {
		t.Fatalf("replayed %+v, want seq %s with ack", again, g.Seq)
	}
	if err := c.Ack(again.Seq, ""); err != nil {
		t.Fatal(err)
	}
	// The first receipt since is this one: the unacknowledged copy sent none.
	m, err = receipts.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("receipt of the replayed push: %v", err)
	}
	if !strings.Contains(string(m.Data), `"seq":"`+g.Seq+`"`) || !strings.Contains(string(m.Data), `"sid":"`+c.SID()+`"`) {
		t.Fatalf("receipt %s: want seq %s from session %s", m.Data, g.Seq, c.SID())
	}
}

// TestLiveDeliveryWithoutHistory: with the history streams gone and not
// recreatable (another stream holds their heartbeat subjects), the node
// notices within its heartbeat, takes pushes from the plain subjects and
// delivers them without positions; resumes are told recovered:false; once
// the way is clear it recreates the streams and positions return.
func TestLiveDeliveryWithoutHistory(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	n := withHistory(t, ns.URL(), 1, history.Config{})
	c := pushtest.Dial(t, n.WSURL(), "frank")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	users, docs := history.StreamNames("")
	for _, s := range []string{users, docs} {
		if err := js.DeleteStream(pushtest.Ctx(t), s); err != nil {
			t.Fatal(err)
		}
	}
	// The node recreates deleted streams at once; a stream on the heartbeat
	// subjects (without republish) keeps them from coming back.
	if _, err := js.CreateStream(pushtest.Ctx(t), jetstream.StreamConfig{Name: "BLOCKER", Subjects: []string{"push.history.>"}}); err != nil {
		// The node won the race and recreated them first: delete and retry.
		for _, s := range []string{users, docs} {
			_ = js.DeleteStream(pushtest.Ctx(t), s)
		}
		if _, err := js.CreateStream(pushtest.Ctx(t), jetstream.StreamConfig{Name: "BLOCKER", Subjects: []string{"push.history.>"}}); err != nil {
			t.Fatal(err)
		}
	}
	pushtest.Eventually(t, 10*time.Second, func() error {
		if n.History.Available() || n.Metric(t, "pushd_history_subscribed") != 0 {
			return fmt.Errorf("history still taken for available")
		}
		return nil
	})
	pushtest.Publish(t, nc, "push.user.frank", nil, `"still here"`, 1)
	if f := next(t, c, `"still here"`); f.Seq != "" {
		t.Fatalf("a position without history: %+v", f)
	}
	c2 := dialSince(t, n, "frank", "12345")
	if recovered(c2.Hello()) != "false" {
		t.Fatalf("resume without history: hello %+v, want recovered:false", c2.Hello())
	}

	if err := js.DeleteStream(pushtest.Ctx(t), "BLOCKER"); err != nil {
		t.Fatal(err)
	}
	pushtest.Eventually(t, 15*time.Second, func() error {
		if !n.History.Available() || n.Metric(t, "pushd_history_subscribed") != 1 {
			return fmt.Errorf("history not back")
		}
		return nil
	})
	if rs := pushtest.Publish(t, nc, "push.user.frank", nil, `"positioned"`, 1); pushtest.Delivered(rs) != 2 {
		t.Fatalf("reports %+v: want both sessions", rs)
	}
	if f := next(t, c, `"positioned"`); f.Seq == "" {
		t.Fatalf("push after history came back has no position: %+v", f)
	}
}

// TestResumeWithoutJetStream: on a NATS server without JetStream, live
// delivery works without positions and a resume is not recovered.
func TestResumeWithoutJetStream(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	hc := history.Config{}
	n := testnode.StartWith(t, ns.URL(), node.Config{Dev: true, NodeID: 1}, testnode.Options{History: &hc})
	c := dialSince(t, n, "gina", "12345")
	if c.Hello().Seq != "" || recovered(c.Hello()) != "false" {
		t.Fatalf("hello %+v: want no position and recovered:false", c.Hello())
	}
	pushtest.Publish(t, nc, "push.user.gina", nil, `1`, 1)
	if f := next(t, c, `1`); f.Seq != "" {
		t.Fatalf("a position without history: %+v", f)
	}
	if n.Metric(t, "pushd_history_available") != 0 {
		t.Fatal("pushd_history_available is 1 without JetStream")
	}
}

// TestResumeNeedsTheJoinGrant: a since on a doc the session may not join
// replays nothing, the refusal is the join's own; and a user's since only
// ever reads the token's user's pushes, whatever position it names.
func TestResumeNeedsTheJoinGrant(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	hc := history.Config{}
	n := testnode.StartWith(t, ns.URL(), node.Config{NodeID: 1, Auth: hs256(t)}, testnode.Options{History: &hc})
	pushtest.Eventually(t, 10*time.Second, func() error {
		if !n.History.Available() {
			return fmt.Errorf("history not available")
		}
		return nil
	})
	before := store(t, nc, "push.doc.secret", `"warm-up"`) - 1
	store(t, nc, "push.doc.secret", `"for members"`)
	victim := store(t, nc, "push.user.victim", `"for the victim"`)

	c := dialToken(t, n, signed(t, jwt.MapClaims{"sub": "mallory", "docs": []string{"public"}}))
	_, err := c.JoinSince(pushtest.Ctx(t), "secret", strconv.FormatUint(before, 10))
	var se *client.ServerError
	if !errors.As(err, &se) || se.Code != "forbidden" {
		t.Fatalf("join since on a forbidden doc: %v, want forbidden", err)
	}
	// A since from another user's subject reads mallory's own (empty) history.
	m, err := client.Dial(pushtest.Ctx(t), n.WSURL(), client.Options{BearerToken: signed(t, jwt.MapClaims{"sub": "mallory"}), Since: strconv.FormatUint(victim-1, 10)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if h := m.Hello(); h.Recovered == nil || !*h.Recovered || h.User != "mallory" {
		t.Fatalf("hello %+v", h)
	}
	pushtest.Marker(t, nc, c) // nothing of secret's reached mallory's first session
	pushtest.Marker(t, nc, m) // nor the victim's push her second
}

// TestResumeRidesOutAFailingRead: while history is on, a resume whose read
// of the stream fails (direct gets turned off on the stream here; after a
// NATS server dies, JetStream electing the stream's new leader does the
// same for a few seconds) is read again within the resume's time. Once
// reads work the client is recovered with every push it missed, instead
// of being told they are lost while the stream holds them.
func TestResumeRidesOutAFailingRead(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	n := withHistory(t, ns.URL(), 1, history.Config{})
	c := pushtest.Dial(t, n.WSURL(), "rhea")
	since := c.Hello().Seq
	away(t, n, c)
	var want []uint64
	for i := range 3 {
		want = append(want, store(t, nc, "push.user.rhea", strconv.Itoa(i)))
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	users, _ := history.StreamNames("")
	direct := func(on bool) {
		t.Helper()
		s, err := js.Stream(pushtest.Ctx(t), users)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.AllowDirect = on
		if _, err := js.UpdateStream(pushtest.Ctx(t), cfg); err != nil {
			t.Fatal(err)
		}
	}
	direct(false)
	failed := n.Metric(t, `pushd_history_replays_total{result="error"}`)

	type dialed struct {
		c   *client.Conn
		err error
	}
	done := make(chan dialed, 1)
	go func() {
		c, err := client.Dial(pushtest.Ctx(t), n.WSURL(), client.Options{User: "rhea", Since: since})
		done <- dialed{c, err}
	}()
	pushtest.Eventually(t, 5*time.Second, func() error {
		if n.Metric(t, `pushd_history_replays_total{result="error"}`) == failed {
			return errors.New("no read has failed yet")
		}
		return nil
	})
	direct(true)

	d := <-done
	if d.err != nil {
		t.Fatal(d.err)
	}
	t.Cleanup(func() { _ = d.c.Close() })
	if recovered(d.c.Hello()) != "true" {
		t.Fatalf("hello %+v: want recovered:true once reads work again", d.c.Hello())
	}
	for i, seq := range want {
		if f := next(t, d.c, strconv.Itoa(i)); seqOf(t, f.Seq) != seq {
			t.Fatalf("push %d: seq %s, want %d", i, f.Seq, seq)
		}
	}
}
