package node_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/history"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// TestSSEResumesFromItsLastEventID: once an SSE session is gone, the ID
// of the last event its client got is all it needs: a new session with
// {"last_event_id": ...} gets the user pushes published meanwhile from
// history, recovered:true in hello, in order, then the live ones. A doc
// rejoined with "since" over POST replays the same way, and a poll session
// resumes with since.
func TestSSEResumesFromItsLastEventID(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	n := withHistory(t, ns.URL(), 1, history.Config{})
	s := pushtest.HTTPConnect(t, n.URL(), "sse", "alice", "")
	stream := s.Stream(t, "")
	helloID, hello := stream.NextFrame(t)
	if !strings.HasSuffix(helloID, "-"+hello.Seq) || hello.Seq == "" {
		t.Fatalf("hello's event ID %s does not carry its position %s", helloID, hello.Seq)
	}
	if got := s.Send(t, `{"type":"join","doc":"room"}`); len(got) != 1 || got[0].Seq == "" {
		t.Fatalf("joined %+v, want a position", got)
	}
	pushtest.Publish(t, nc, "push.user.alice", nil, `"u1"`, 1)
	pushtest.Publish(t, nc, "push.doc.room", nil, `"d1"`, 1)
	lastID, u1 := stream.NextFrame(t)
	if !strings.HasSuffix(lastID, "-"+u1.Seq) {
		t.Fatalf("event ID %s does not carry the user position %s", lastID, u1.Seq)
	}
	var d1 client.Frame
	lastID, d1 = stream.NextFrame(t)
	if !strings.HasSuffix(lastID, "-"+u1.Seq) || d1.Seq == "" {
		t.Fatalf("after a doc push the event ID %s must still carry the user position %s", lastID, u1.Seq)
	}
	pushtest.HTTPDo(t, "POST", n.URL()+"/http/close?sid="+s.SID+"&secret="+s.Secret, "")
	stream.Next(t) // the close frame
	stream.Ended(t)
	pushtest.Eventually(t, 5*time.Second, func() error {
		if _, ok := n.SessionInfo(s.SID); ok {
			return fmt.Errorf("session %s still open", s.SID)
		}
		return nil
	})
	for _, p := range []string{"u2", "u3"} {
		store(t, nc, "push.user.alice", strconv.Quote(p))
	}
	store(t, nc, "push.doc.room", `"d2"`)

	s2 := pushtest.HTTPConnect(t, n.URL(), "sse", "alice", `{"last_event_id":"`+lastID+`"}`)
	stream2 := s2.Stream(t, "")
	if _, h := stream2.NextFrame(t); h.Type != "hello" || recovered(h) != "true" {
		t.Fatalf("hello %+v: want recovered:true", h)
	}
	for _, want := range []string{`"u2"`, `"u3"`} {
		if _, f := stream2.NextFrame(t); string(f.Data) != want {
			t.Fatalf("replayed %+v, want %s", f, want)
		}
	}
	j := s2.Send(t, `{"type":"join","doc":"room","since":"`+d1.Seq+`"}`)
	if len(j) != 1 || j[0].Type != "joined" || recovered(j[0]) != "true" {
		t.Fatalf("join since answered %+v", j)
	}
	if _, f := stream2.NextFrame(t); string(f.Data) != `"d2"` {
		t.Fatalf("doc replay %+v", f)
	}

	p := pushtest.HTTPConnect(t, n.URL(), "poll", "alice", `{"since":"`+u1.Seq+`"}`)
	frames, _ := p.PollUntil(t, "", func(fs []client.Frame) bool { return len(fs) >= 3 })
	if frames[0].Type != "hello" || recovered(frames[0]) != "true" || fmt.Sprint(datas(frames)) != `["u2" "u3"]` {
		t.Fatalf("poll session resumed with %+v", frames)
	}
}

// TestHTTPReceipts: a push asking for a receipt reaches a poll session
// with "ack":true, and the ack POSTed through another node publishes the
// receipt.
func TestHTTPReceipts(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	n := withHistory(t, ns.URL(), 1, history.Config{})
	other := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 2})
	receipts, err := nc.SubscribeSync("receipts.http")
	if err != nil {
		t.Fatal(err)
	}
	p := pushtest.HTTPConnect(t, n.URL(), "poll", "erin", "")
	hello := p.Poll(t, "", 0)
	pushtest.Publish(t, nc, "push.user.erin", pushtest.Header(contract.HeaderReceipt, "receipts.http", contract.HeaderID, "r-1"), `"please ack"`, 1)
	frames, _ := p.PollUntil(t, hello.Cursor, func(fs []client.Frame) bool { return len(fs) > 0 })
	if !frames[0].Ack || frames[0].Seq == "" {
		t.Fatalf("push %+v, want ack:true and a seq", frames[0])
	}
	if got := p.Via(other.URL()).Send(t, `{"type":"ack","seq":"`+frames[0].Seq+`"}`); len(got) != 0 {
		t.Fatalf("ack answered %+v, want nothing", got)
	}
	m, err := receipts.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no receipt: %v", err)
	}
	var r struct{ Seq, ID, SID string }
	if err := json.Unmarshal(m.Data, &r); err != nil || r.Seq != frames[0].Seq || r.ID != "r-1" || r.SID != p.SID {
		t.Fatalf("receipt %s", m.Data)
	}
}

// TestHTTPSlowConsumer: a poll session that stops polling while pushes
// keep coming is cut off once its unacknowledged frames pass
// --max-queued-bytes, as a WebSocket would be: its next poll gets the
// backlog and the close frame 4008.
func TestHTTPSlowConsumer(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 1, MaxQueuedBytes: 4 << 10})
	p := pushtest.HTTPConnect(t, n.URL(), "poll", "slow", "")
	hello := p.Poll(t, "", 0)
	body := `"` + strings.Repeat("x", 1000) + `"`
	cut := false
	for i := 0; i < 20 && !cut; i++ {
		rs := pushtest.Publish(t, nc, "push.user.slow", nil, body, 1)
		cut = rs[0].CutOff == 1
	}
	if !cut {
		t.Fatal("20 KB unpolled never cut the session off at 4 KB")
	}
	frames, _ := p.PollUntil(t, hello.Cursor, func(fs []client.Frame) bool { return len(fs) > 0 && fs[len(fs)-1].Type == "close" })
	if last := frames[len(frames)-1]; last.CloseCode != 4008 || len(frames) < 4 {
		t.Fatalf("got %d frames ending %+v, want the backlog and 4008", len(frames), last)
	}
	if got := n.Metric(t, `pushd_connections_closed_total{reason="slow_consumer"}`); got != 1 {
		t.Fatalf("slow_consumer closes = %v", got)
	}
}
