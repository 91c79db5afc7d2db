package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// Tests of the HTTP transports (SSE and long-polling, httpsession.go) with
// real nodes on a real NATS server and net/http as the client.

// publishAllKinds publishes one push of each kind for user, doc and the
// session sid, and returns the events in publish order.
func publishAllKinds(t *testing.T, nc *nats.Conn, user, doc, sid string) []string {
	t.Helper()
	kinds := []struct{ subject, event string }{
		{"push.user." + user, "to-user"},
		{"push.doc." + doc, "to-doc"},
		{"push.all", "to-all"},
		{pushtest.SessionSubject(sid), "to-session"},
	}
	var events []string
	for _, k := range kinds {
		rs := pushtest.Publish(t, nc, k.subject, pushtest.Header("Push-Event", k.event), `{"k":"`+k.event+`"}`, 1)
		if pushtest.Delivered(rs) < 1 {
			t.Fatalf("%s: reports %+v", k.subject, rs)
		}
		events = append(events, k.event)
	}
	return events
}

// pushEvents are the events of the pushes among frames.
func pushEvents(frames []client.Frame) []string {
	var out []string
	for _, f := range frames {
		if f.Type == "push" {
			out = append(out, f.Event)
		}
	}
	return out
}

// TestHTTPSessionsGetEveryPushKind: an SSE session and a long-poll session
// get hello first, join a doc with a POST, and then receive a user, a doc,
// a broadcast and a session push, in order, as the same JSON frames a
// WebSocket gets.
func TestHTTPSessionsGetEveryPushKind(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 3})

	sse := pushtest.HTTPConnect(t, n.URL(), "sse", "alice", "")
	if sse.Node != 3 || sse.User != "alice" || len(sse.Secret) != 43 || !strings.HasPrefix(sse.URL, "/http/sse?sid="+sse.SID) {
		t.Fatalf("connect answer %+v", sse)
	}
	stream := sse.Stream(t, "")
	id, hello := stream.NextFrame(t)
	if hello.Type != "hello" || hello.SID != sse.SID || hello.User != "alice" || hello.PingInterval == 0 || id != "1" {
		t.Fatalf("first event %s %+v, want hello with id 1", id, hello)
	}
	if got := sse.Send(t, `{"type":"join","doc":"d1","id":"j1"}`); len(got) != 1 || got[0].Type != "joined" || got[0].ID != "j1" {
		t.Fatalf("join answered %+v", got)
	}
	want := publishAllKinds(t, nc, "alice", "d1", sse.SID)
	var got []string
	for range want {
		id, f := stream.NextFrame(t)
		if f.Type != "push" || id == "" {
			t.Fatalf("event %s %+v, want a push with an id", id, f)
		}
		got = append(got, f.Event)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sse pushes %v, want %v", got, want)
	}

	poll := pushtest.HTTPConnect(t, n.URL(), "poll", "bob", "")
	first := poll.Poll(t, "", 0)
	if fs := first.Decoded(t); len(fs) != 1 || fs[0].Type != "hello" || fs[0].SID != poll.SID {
		t.Fatalf("first poll %+v, want hello", fs)
	}
	if got := poll.Send(t, `{"type":"join","doc":"d2"}`); len(got) != 1 || got[0].Type != "joined" || got[0].Doc != "d2" {
		t.Fatalf("join answered %+v", got)
	}
	want = publishAllKinds(t, nc, "bob", "d2", poll.SID)
	frames, _ := poll.PollUntil(t, first.Cursor, func(fs []client.Frame) bool { return len(fs) >= len(want) })
	if got := pushEvents(frames); fmt.Sprint(got) != fmt.Sprint(want) || len(frames) != len(want) {
		t.Fatalf("polled %+v, want pushes %v", frames, want)
	}

	for sid, transport := range map[string]string{sse.SID: "sse", poll.SID: "poll"} {
		info, ok := n.SessionInfo(sid)
		if !ok || info.Transport != transport {
			t.Errorf("session %s: %+v, want transport %s", sid, info, transport)
		}
	}
	for series, want := range map[string]float64{
		`pushd_transport_sessions{transport="sse"}`:  1,
		`pushd_transport_sessions{transport="poll"}`: 1,
		`pushd_transport_sessions{transport="ws"}`:   0,
		`pushd_http_streams`:                         1,
	} {
		if got := n.Metric(t, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

// TestHTTPRequestsOnAnotherNode: a session held by node 1 is read and
// written through node 2, as a load balancer without sticky sessions
// would route it: the join POSTed to node 2 runs on node 1 and its reply
// comes back in the POST, polls and an SSE stream through node 2 get node
// 1's pushes, and a close through node 2 ends the session.
func TestHTTPRequestsOnAnotherNode(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	home := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 1})
	edge := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 2})

	poll := pushtest.HTTPConnect(t, home.URL(), "poll", "alice", "").Via(edge.URL())
	if got := poll.Send(t, `{"type":"join","doc":"d","id":"j"}`); len(got) != 1 || got[0].Type != "joined" || got[0].ID != "j" {
		t.Fatalf("join through the other node answered %+v", got)
	}
	if !joinedOn(home, poll.SID, "d") {
		t.Fatal("the join did not reach the session on its node")
	}
	p := poll.Poll(t, "", 0)
	want := publishAllKinds(t, nc, "alice", "d", poll.SID)
	frames, cursor := poll.PollUntil(t, p.Cursor, func(fs []client.Frame) bool { return len(fs) >= len(want) })
	if got := pushEvents(frames); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("polled through the other node %+v, want %v", frames, want)
	}
	_ = cursor

	sse := pushtest.HTTPConnect(t, home.URL(), "sse", "bob", "").Via(edge.URL())
	stream := sse.Stream(t, "")
	if _, hello := stream.NextFrame(t); hello.Type != "hello" || hello.Node != 1 {
		t.Fatalf("relayed first frame %+v", hello)
	}
	sse.Send(t, `{"type":"join","doc":"d2"}`)
	want = publishAllKinds(t, nc, "bob", "d2", sse.SID)
	var got []string
	for range want {
		_, f := stream.NextFrame(t)
		got = append(got, f.Event)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("relayed stream %v, want %v", got, want)
	}
	if status, body := pushtest.HTTPDo(t, "POST", edge.URL()+"/http/close?sid="+sse.SID+"&secret="+sse.Secret, ""); status != http.StatusNoContent {
		t.Fatalf("close through the other node: %d %s", status, body)
	}
	if ev := stream.Next(t); decodeClose(t, ev.Data).Code != 1000 {
		t.Fatalf("after close: %+v", ev)
	}
	stream.Ended(t)
	for _, s := range []string{`pushd_http_forwarded_total{op="send"}`, `pushd_http_forwarded_total{op="pull"}`, `pushd_http_forwarded_total{op="close"}`} {
		if edge.Metric(t, s) == 0 {
			t.Errorf("%s = 0 on the node that forwarded", s)
		}
	}
	if home.Metric(t, `pushd_http_forward_served_total{op="send"}`) == 0 {
		t.Error("the session's node served no forwarded send")
	}
}

// joinedOn reports whether session sid on n joined doc.
func joinedOn(n *testnode.Node, sid, doc string) bool {
	info, ok := n.SessionInfo(sid)
	if !ok {
		return false
	}
	for _, d := range info.Docs {
		if d == doc {
			return true
		}
	}
	return false
}

// closeFrame is an HTTP session's last frame.
type closeFrame struct {
	Type   string `json:"type"`
	Code   int    `json:"close_code"`
	Reason string `json:"reason"`
	Retry  int    `json:"retry"`
}

func decodeClose(t *testing.T, raw string) closeFrame {
	t.Helper()
	var c closeFrame
	if err := json.Unmarshal([]byte(raw), &c); err != nil || c.Type != "close" {
		t.Fatalf("%s is not a close frame (%v)", raw, err)
	}
	return c
}

var _ = time.Second

// TestForwardedAnswersFitNATS: a poll or a stream forwarded between nodes
// is answered in parts no bigger than a NATS message: with max_payload at
// 32 KiB, 80 KB of pushes waiting in a session come through the other node
// in several answers, in order, nothing lost.
func TestForwardedAnswersFitNATS(t *testing.T) {
	ns := pushtest.RunNATSWith(t, func(o *server.Options) { o.MaxPayload = 32 << 10 })
	nc := ns.Connect(t)
	home := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 1})
	edge := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 2})
	poll := pushtest.HTTPConnect(t, home.URL(), "poll", "alice", "").Via(edge.URL())
	sse := pushtest.HTTPConnect(t, home.URL(), "sse", "alice", "").Via(edge.URL())
	hello := poll.Poll(t, "", 0)
	const count = 40
	body := strings.Repeat("x", 2000)
	for i := range count {
		pushtest.Publish(t, nc, "push.user.alice", nil, fmt.Sprintf(`"%02d%s"`, i, body), 1)
	}
	var got []string
	answers := 0
	for cursor := hello.Cursor; len(got) < count; answers++ {
		p := poll.Poll(t, cursor, 1000)
		for _, f := range p.Decoded(t) {
			got = append(got, string(f.Data[1:3]))
		}
		cursor = p.Cursor
	}
	if answers < 3 {
		t.Fatalf("80 KB came in %d answers under a 32 KiB max_payload", answers)
	}
	stream := sse.Stream(t, "")
	stream.NextFrame(t) // hello
	for i := range count {
		if want := fmt.Sprintf("%02d", i); got[i] != want {
			t.Fatalf("poll: push %d is %s", i, got[i])
		}
		if _, f := stream.NextFrame(t); string(f.Data[1:3]) != fmt.Sprintf("%02d", i) {
			t.Fatalf("stream: push %d is %.3s", i, f.Data)
		}
	}
}
