package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/pushd/pushd/internal/pushtest"
)

// TestSessionsShowTransports: real pushd processes serve the HTTP
// transports under /http/ and forward between nodes (a poll session opened
// on node 1 is joined, polled and closed through node 2, an SSE session
// streams through node 2), and pushctl lists each session's transport.
func TestSessionsShowTransports(t *testing.T) {
	bin := bins.Path(t, "pushctl")
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n1 := startPushd(t, ns.URL(), 1)
	n2 := startPushd(t, ns.URL(), 2)
	base1, base2 := "http://"+n1.Listen, "http://"+n2.Listen
	ws := dial(t, n1, "wendy")

	poll := pushtest.HTTPConnect(t, base1, "poll", "paula", "").Via(base2)
	if got := poll.Send(t, `{"type":"join","doc":"wired","id":"j"}`); len(got) != 1 || got[0].Type != "joined" {
		t.Fatalf("join through node 2: %+v", got)
	}
	hello := poll.Poll(t, "", 0)
	pushtest.Publish(t, nc, "push.doc.wired", nil, `"to the doc"`, 1)
	p := poll.Poll(t, hello.Cursor, 5000)
	if fs := p.Decoded(t); len(fs) != 1 || string(fs[0].Data) != `"to the doc"` {
		t.Fatalf("polled through node 2: %+v", fs)
	}

	sse := pushtest.HTTPConnect(t, base1, "sse", "sam", "").Via(base2)
	stream := sse.Stream(t, "")
	stream.NextFrame(t)
	pushtest.Publish(t, nc, "push.user.sam", nil, `"to sam"`, 1)
	if _, f := stream.NextFrame(t); string(f.Data) != `"to sam"` {
		t.Fatalf("relayed %+v", f)
	}

	pc := ctl{t: t, bin: bin, env: []string{"PUSHCTL_NATS_URL=" + ns.URL(), "PUSHCTL_TIMEOUT=1s"}}
	out := pc.ok("sessions", "--node", "1")
	columnsAligned(t, out)
	rs := rows(out)
	if !slices.Equal(rs[0][:5], []string{"SID", "USER", "NODE", "TRANSPORT", "REMOTE"}) {
		t.Fatalf("header %q", rs[0])
	}
	transports := map[string]string{}
	for _, r := range rs[1:] {
		transports[r[1]] = r[3]
	}
	if transports["wendy"] != "ws" || transports["paula"] != "poll" || transports["sam"] != "sse" {
		t.Fatalf("transports %v:\n%s", transports, out)
	}
	var one struct{ Transport string }
	if err := json.Unmarshal([]byte(pc.ok("session", sse.SID, "-o", "json")), &one); err != nil || one.Transport != "sse" {
		t.Fatalf("pushctl session %s: %+v %v", sse.SID, one, err)
	}

	if status, body := pushtest.HTTPDo(t, "POST", base2+"/http/close?sid="+poll.SID+"&secret="+poll.Secret, ""); status != http.StatusNoContent {
		t.Fatalf("close through node 2: %d %s", status, body)
	}
	last := poll.Poll(t, p.Cursor, 5000)
	if fs := last.Decoded(t); len(fs) != 1 || fs[0].CloseCode != 1000 {
		t.Fatalf("after close: %+v", fs)
	}
	if status, body := poll.PollRaw(t, last.Cursor, 0); status != http.StatusGone {
		t.Fatalf("poll after the close frame: %d %s, want 410", status, body)
	}
	pushtest.Marker(t, nc, ws) // the WebSocket next to them carried on
}
