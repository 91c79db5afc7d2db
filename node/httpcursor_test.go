package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// publishUser publishes user pushes with the given data, one by one.
func publishUser(t *testing.T, nc *nats.Conn, user string, data ...string) {
	t.Helper()
	for _, d := range data {
		pushtest.Publish(t, nc, "push.user."+user, nil, d, 1)
	}
}

// datas are the data of the pushes among frames.
func datas(frames []client.Frame) []string {
	var out []string
	for _, f := range frames {
		if f.Type == "push" {
			out = append(out, string(f.Data))
		}
	}
	return out
}

// TestPollAcknowledgesByCursor: a poll's frames stay in the session until
// the next poll acknowledges them with the cursor it got, so a poll whose
// answer was lost (sent again with the old cursor) gets the same frames,
// and one with the new cursor gets only what came after: nothing lost,
// nothing twice. Cursors that are not the session's are refused.
func TestPollAcknowledgesByCursor(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 1})
	p := pushtest.HTTPConnect(t, n.URL(), "poll", "alice", "")
	hello := p.Poll(t, "", 0)
	publishUser(t, nc, "alice", `"u1"`, `"u2"`)
	first, cursor := p.PollUntil(t, hello.Cursor, func(fs []client.Frame) bool { return len(fs) == 2 })

	// The answer was lost: the same cursor again gets the same frames.
	again := p.Poll(t, hello.Cursor, 0)
	if fmt.Sprint(datas(again.Decoded(t))) != fmt.Sprint(datas(first)) || again.Cursor != cursor {
		t.Fatalf("repoll %s: %+v (cursor %s), want %v (cursor %s)", hello.Cursor, again, again.Cursor, datas(first), cursor)
	}
	publishUser(t, nc, "alice", `"u3"`)
	next, _ := p.PollUntil(t, cursor, func(fs []client.Frame) bool { return len(fs) > 0 })
	if got := datas(next); fmt.Sprint(got) != `["u3"]` {
		t.Fatalf("after acknowledging: %v, want only u3", got)
	}
	// The frames before cursor are gone now.
	for _, tc := range []struct {
		cursor, code string
		status       int
	}{
		{hello.Cursor, "cursor_lost", http.StatusConflict},
		{"999", "bad_cursor", http.StatusBadRequest},
		{"x", "bad_cursor", http.StatusBadRequest},
		{"-1", "bad_cursor", http.StatusBadRequest},
		{"1-", "bad_cursor", http.StatusBadRequest},
	} {
		status, body := p.PollRaw(t, tc.cursor, 0)
		expectError(t, "poll cursor "+tc.cursor, status, body, tc.status, tc.code)
	}
	if status, body := p.PollRaw(t, cursor, -1); status != http.StatusOK {
		t.Fatalf("the session broke: %d %s", status, body)
	}
}

// expectError checks an HTTP error answer: status and a JSON body
// {"error":code,"message":...}.
func expectError(t *testing.T, what string, status int, body string, wantStatus int, wantCode string) {
	t.Helper()
	var e struct{ Error, Message string }
	if err := json.Unmarshal([]byte(body), &e); err != nil || status != wantStatus || e.Error != wantCode || e.Message == "" {
		t.Errorf("%s: %d %s, want %d with error %q and a message", what, status, body, wantStatus, wantCode)
	}
}

// TestSecondPollReplacesTheFirst: one poll per session: a poll arriving
// while another is held takes over, and the held one is answered 409
// replaced at once.
func TestSecondPollReplacesTheFirst(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 1})
	p := pushtest.HTTPConnect(t, n.URL(), "poll", "alice", "")
	hello := p.Poll(t, "", 0)
	held := make(chan string, 1)
	go func() {
		resp, err := http.Get(p.Base + "/http/poll?sid=" + p.SID + "&secret=" + p.Secret + "&cursor=" + hello.Cursor + "&wait=10000")
		if err != nil {
			held <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		held <- fmt.Sprint(resp.StatusCode, " ", strings.TrimSpace(string(b)))
	}()
	pushtest.Eventually(t, 5*time.Second, func() error {
		if v := n.Metric(t, "pushd_http_polls_held"); v != 1 {
			return fmt.Errorf("%v polls held", v)
		}
		return nil
	})
	if second := p.Poll(t, hello.Cursor, 0); len(second.Frames) != 0 {
		t.Fatalf("the second poll got %+v", second)
	}
	select {
	case got := <-held:
		if !strings.HasPrefix(got, "409 ") || !strings.Contains(got, `"error":"replaced"`) {
			t.Fatalf("the held poll: %s, want 409 replaced", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held poll was not answered when another replaced it")
	}
	publishUser(t, nc, "alice", `"u1"`)
	frames, _ := p.PollUntil(t, hello.Cursor, func(fs []client.Frame) bool { return len(fs) > 0 })
	if fmt.Sprint(datas(frames)) != `["u1"]` {
		t.Fatalf("after the replaced poll: %+v", frames)
	}
}

// TestHTTPSessionsExpire: a poll session polled no more ends after
// ping_timeout (interval + grace): 4002 in a close frame its client can
// still poll, a disconnect event with reason heartbeat_timeout and its
// transport, and the metrics. An open SSE stream keeps its session alive
// with keep-alive comments, however long nothing comes.
func TestHTTPSessionsExpire(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	events, err := nc.SubscribeSync("push.events.disconnect")
	if err != nil {
		t.Fatal(err)
	}
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 1,
		PingInterval: 200 * time.Millisecond, PingGrace: 200 * time.Millisecond, SweepInterval: 20 * time.Millisecond})

	sse := pushtest.HTTPConnect(t, n.URL(), "sse", "bob", "")
	stream := sse.Stream(t, "")
	stream.NextFrame(t)
	p := pushtest.HTTPConnect(t, n.URL(), "poll", "alice", "")
	hello := p.Poll(t, "", 0)
	m, err := events.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no disconnect event: %v", err)
	}
	var ev struct{ SID, Reason, Transport string }
	if err := json.Unmarshal(m.Data, &ev); err != nil || ev.SID != p.SID || ev.Reason != "heartbeat_timeout" || ev.Transport != "poll" {
		t.Fatalf("disconnect event %s, want session %s, heartbeat_timeout, poll", m.Data, p.SID)
	}
	last := p.Poll(t, hello.Cursor, 0)
	if len(last.Frames) != 1 {
		t.Fatalf("after expiry: %+v, want the close frame", last)
	}
	if c := decodeClose(t, string(last.Frames[0])); c.Code != 4002 || !strings.Contains(c.Reason, "ping_timeout") {
		t.Fatalf("close frame %+v, want 4002", c)
	}
	status, body := p.PollRaw(t, last.Cursor, 0)
	expectError(t, "poll after the close frame", status, body, http.StatusGone, "session_closed")
	for series, want := range map[string]float64{
		`pushd_connections_closed_total{reason="heartbeat_timeout"}`: 1,
		`pushd_transport_sessions_closed_total{transport="poll"}`:    1,
		`pushd_transport_sessions{transport="poll"}`:                 0,
	} {
		if got := n.Metric(t, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}

	// Three keep-alives (3 x 200ms) outlast the 400ms timeout.
	for range 3 {
		stream.Comment(t, 2*time.Second)
	}
	if _, ok := n.SessionInfo(sse.SID); !ok {
		t.Fatal("the SSE session expired while its stream was open")
	}
}

// TestSSEContinuesFromLastEventID: a stream that reconnects with the ID of
// the last event its client got continues after it, with what came
// meanwhile; one that reconnects from an earlier ID (events lost on the
// way) gets them again; a second stream replaces the first, which is told
// so with 4011 and ends.
func TestSSEContinuesFromLastEventID(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 1})
	s := pushtest.HTTPConnect(t, n.URL(), "sse", "alice", "")
	first := s.Stream(t, "")
	helloID, _ := first.NextFrame(t)
	publishUser(t, nc, "alice", `"u1"`)
	u1ID, f := first.NextFrame(t)
	if string(f.Data) != `"u1"` {
		t.Fatalf("got %+v", f)
	}
	first.Close()
	publishUser(t, nc, "alice", `"u2"`, `"u3"`)

	second := s.Stream(t, u1ID)
	var got []string
	var lastID string
	for range 2 {
		id, f := second.NextFrame(t)
		got, lastID = append(got, string(f.Data)), id
	}
	if fmt.Sprint(got) != `["u2" "u3"]` {
		t.Fatalf("continuing from %s: %v", u1ID, got)
	}
	second.Close()

	third := s.Stream(t, helloID)
	got = nil
	for range 3 {
		_, f := third.NextFrame(t)
		got = append(got, string(f.Data))
	}
	if fmt.Sprint(got) != `["u1" "u2" "u3"]` {
		t.Fatalf("continuing from %s: %v", helloID, got)
	}

	fourth := s.Stream(t, lastID)
	if c := decodeClose(t, third.Next(t).Data); c.Code != 4011 {
		t.Fatalf("the replaced stream got %+v, want 4011", c)
	}
	third.Ended(t)
	publishUser(t, nc, "alice", `"u4"`)
	if _, f := fourth.NextFrame(t); string(f.Data) != `"u4"` {
		t.Fatalf("the new stream got %+v", f)
	}
	if status, body, _ := s.StreamRaw(t, "x"); status != http.StatusBadRequest || !strings.Contains(body, "bad_cursor") {
		t.Fatalf("Last-Event-ID x: %d %s", status, body)
	}
}

// TestHTTPDrain: a draining node ends its SSE streams and answers its
// polls with the close frame 1012 and a retry hint (SSE's retry field
// too), and refuses new sessions 503; a stream it relays for another node's
// session ends without a close frame, and continues through that node.
func TestHTTPDrain(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	home := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 1})
	edge := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 2})

	relayed := pushtest.HTTPConnect(t, home.URL(), "sse", "carol", "").Via(edge.URL())
	rs := relayed.Stream(t, "")
	rid, _ := rs.NextFrame(t)
	edge.Stop()
	rs.Ended(t)
	cont := relayed.Via(home.URL()).Stream(t, rid)
	publishUser(t, nc, "carol", `"c1"`)
	if _, f := cont.NextFrame(t); string(f.Data) != `"c1"` {
		t.Fatalf("continued after the relay drained: %+v", f)
	}

	sse := pushtest.HTTPConnect(t, home.URL(), "sse", "alice", "")
	stream := sse.Stream(t, "")
	stream.NextFrame(t)
	p := pushtest.HTTPConnect(t, home.URL(), "poll", "bob", "")
	hello := p.Poll(t, "", 0)
	drained := make(chan error, 1)
	go func() { drained <- home.Drain(context.Background()) }()

	ev := stream.Next(t)
	if c := decodeClose(t, ev.Data); c.Code != 1012 || c.Retry <= 0 || ev.Retry == "" {
		t.Fatalf("drained stream's last event %+v, want 1012 with a retry hint", ev)
	}
	stream.Ended(t)
	last := p.Poll(t, hello.Cursor, 5000)
	if len(last.Frames) != 1 || decodeClose(t, string(last.Frames[0])).Code != 1012 {
		t.Fatalf("drained poll %+v, want the close frame 1012", last)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	status, body := pushtest.HTTPDo(t, "POST", home.URL()+"/http/connect?transport=poll&user=dave", "")
	expectError(t, "connect while draining", status, body, http.StatusServiceUnavailable, "draining")
}
