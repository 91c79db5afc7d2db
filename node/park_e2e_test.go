package node_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// Parking end to end: idle sessions hold no read goroutine (park.go), yet
// every frame, push and close reaches them. (park_test.go has the frame
// tracker's unit tests.)

// goCollector registers the Go runtime collector on the node's registry, as
// pushd does on its own, and returns a reader of go_goroutines: the
// goroutines of the whole test process, which runs the node.
func goCollector(t *testing.T, nd *testnode.Node) func() float64 {
	t.Helper()
	nd.Registry.MustRegister(collectors.NewGoCollector())
	return func() float64 { return nd.Metric(t, "go_goroutines") }
}

// openIdle opens n raw sessions (no goroutine on the test's side) and reads
// each one's hello.
func openIdle(t *testing.T, nd *testnode.Node, n int) []*pushtest.RawConn {
	t.Helper()
	conns := make([]*pushtest.RawConn, n)
	for i := range conns {
		conns[i] = pushtest.RawDial(t, nd.Addr(), fmt.Sprintf("?user=idle%d", i), nil)
		if hello := conns[i].TextFrame(t); !strings.Contains(hello, `"type":"hello"`) {
			t.Fatalf("first frame %s, want hello", hello)
		}
	}
	return conns
}

// TestIdleSessionsHoldNoGoroutine checks that idle sessions park: they hold
// no read goroutine, yet every frame they send is read, pushes reach them and
// a frame that arrives in pieces is read whole.
func TestIdleSessionsHoldNoGoroutine(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	nd := testnode.Start(t, ns.URL(), node.Config{Dev: true, DrainTimeout: time.Second})
	goroutines := goCollector(t, nd)
	const n = 300
	before := goroutines()
	conns := openIdle(t, nd, n)
	metricIs(t, nd, "pushd_sessions_parked", n)
	if grew := goroutines() - before; grew > n/10 {
		t.Fatalf("%d idle sessions added %v goroutines, want none per session", n, grew)
	}

	// A frame wakes its session, which answers and parks again.
	for _, c := range conns[:50] {
		if err := c.Text(`{"type":"ping"}`); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns[:50] {
		if f := c.TextFrame(t); !strings.Contains(f, `"type":"pong"`) {
			t.Fatalf("got %s, want pong", f)
		}
	}
	metricIs(t, nd, "pushd_sessions_parked", n)

	// A push reaches every parked session.
	if got := delivered(publish(t, nc, "push.all", hdr("Push-Event", "wake"), `1`, 1)); got != n {
		t.Fatalf("broadcast delivered %d, want %d", got, n)
	}
	for _, c := range conns {
		if f := c.TextFrame(t); !strings.Contains(f, `"event":"wake"`) {
			t.Fatalf("got %s, want the push", f)
		}
	}

	// Half a frame: the session reads the rest with a goroutine, not parked
	// mid-frame, and answers once the frame is whole.
	c := conns[0]
	frame := maskedText(`{"type":"ping"}`)
	if _, err := c.Write(frame[:5]); err != nil {
		t.Fatal(err)
	}
	metricIs(t, nd, "pushd_sessions_parked", n-1)
	if _, err := c.Write(frame[5:]); err != nil {
		t.Fatal(err)
	}
	if f := c.TextFrame(t); !strings.Contains(f, `"type":"pong"`) {
		t.Fatalf("got %s, want pong", f)
	}
	metricIs(t, nd, "pushd_sessions_parked", n)

	// Parked sessions that go away are noticed.
	for _, c := range conns[n/2:] {
		_ = c.Close()
	}
	metricIs(t, nd, "pushd_connections", n/2)
	metricIs(t, nd, "pushd_sessions_parked", n/2)
}

// TestFrameBehindTheHandshakeIsRead sends the first frame in the same write
// as the upgrade request, so the HTTP server has already read it when the
// connection is hijacked.
func TestFrameBehindTheHandshakeIsRead(t *testing.T) {
	for _, park := range []string{"true", "false"} {
		t.Run("park="+park, func(t *testing.T) {
			ns := pushtest.RunNATS(t)
			nd := testnode.Start(t, ns.URL(), node.Config{Dev: true, NoParking: park == "false"})
			nc, err := net.DialTimeout("tcp", nd.Addr(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
			req := "GET /ws?user=eager HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
			if _, err := io.WriteString(nc, req+string(maskedText(`{"type":"ping"}`))); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(nc)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade: %v %v", resp, err)
			}
			c := pushtest.NewRawConn(nc, br)
			if f := c.TextFrame(t); !strings.Contains(f, `"type":"hello"`) {
				t.Fatalf("got %s, want hello", f)
			}
			if f := c.TextFrame(t); !strings.Contains(f, `"type":"pong"`) {
				t.Fatalf("got %s, want pong for the frame sent with the request", f)
			}
		})
	}
}

// TestParkingCanBeTurnedOff keeps one read goroutine per session.
func TestParkingCanBeTurnedOff(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nd := testnode.Start(t, ns.URL(), node.Config{Dev: true, DrainTimeout: time.Second, NoParking: true})
	goroutines := goCollector(t, nd)
	const n = 100
	before := goroutines()
	conns := openIdle(t, nd, n)
	if got := nd.Metric(t, "pushd_sessions_parked"); got != 0 {
		t.Fatalf("pushd_sessions_parked = %v with parking off", got)
	}
	if grew := goroutines() - before; grew < n*9/10 {
		t.Fatalf("%d sessions added %v goroutines, want one each", n, grew)
	}
	if err := conns[0].Text(`{"type":"ping"}`); err != nil {
		t.Fatal(err)
	}
	if f := conns[0].TextFrame(t); !strings.Contains(f, `"type":"pong"`) {
		t.Fatalf("got %s, want pong", f)
	}
}

// TestParkedSessionWakes follows one session through a real handshake: it
// parks as soon as it is open and wakes for each thing that can happen to
// it: a frame from the client (answered, then it parks again), a push
// (written without waking the read side), a close from the client (the
// session ends as the client's) and a close from the node (a kick reaches
// the parked client with its code and reason).
func TestParkedSessionWakes(t *testing.T) {
	t.Parallel() // it waits for the close handshake to time out, not working
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	nd := testnode.Start(t, ns.URL(), node.Config{Dev: true})
	c := pushtest.RawDial(t, nd.Addr(), "?user=sleeper", nil)
	if hello := c.TextFrame(t); !strings.Contains(hello, `"type":"hello"`) {
		t.Fatalf("first frame %s, want hello", hello)
	}
	metricIs(t, nd, "pushd_sessions_parked", 1)

	// A frame.
	if err := c.Text(`{"type":"ping","id":"p1"}`); err != nil {
		t.Fatal(err)
	}
	if f := c.TextFrame(t); !strings.Contains(f, `"type":"pong"`) || !strings.Contains(f, `"id":"p1"`) {
		t.Fatalf("got %s, want the pong to p1", f)
	}
	metricIs(t, nd, "pushd_sessions_parked", 1)

	// A push.
	if got := delivered(publish(t, nc, "push.user.sleeper", hdr("Push-Event", "wake"), `1`, 1)); got != 1 {
		t.Fatalf("push delivered %d, want 1", got)
	}
	if f := c.TextFrame(t); !strings.Contains(f, `"event":"wake"`) {
		t.Fatalf("got %s, want the push", f)
	}
	metricIs(t, nd, "pushd_sessions_parked", 1)

	// A close from the client: the node answers it and the session ends.
	if err := c.Frame(true, false, 0x8, []byte{0x03, 0xE8, 'b', 'y', 'e'}); err != nil { // 1000 "bye"
		t.Fatal(err)
	}
	if code := c.CloseCode(t, 5*time.Second); code != 1000 {
		t.Fatalf("the node answered a client's close with %d, want 1000", code)
	}
	_ = c.Close()
	metricIs(t, nd, "pushd_connections", 0)
	metricIs(t, nd, "pushd_sessions_parked", 0)
	metricIs(t, nd, `pushd_connections_closed_total{reason="client"}`, 1)

	// A close from the node.
	k := pushtest.RawDial(t, nd.Addr(), "?user=kicked", nil)
	var hello struct{ SID string }
	if err := json.Unmarshal([]byte(k.TextFrame(t)), &hello); err != nil || hello.SID == "" {
		t.Fatalf("hello: %+v %v", hello, err)
	}
	metricIs(t, nd, "pushd_sessions_parked", 1)
	if got := nd.Kick(hello.SID, "", "wake up"); len(got) != 1 || got[0] != hello.SID {
		t.Fatalf("kick closed %v, want %s", got, hello.SID)
	}
	if code, reason := k.CloseFrame(t, 5*time.Second); code != 4010 || reason != "wake up" {
		t.Fatalf("kicked parked session closed %d %q, want 4010 \"wake up\"", code, reason)
	}
	// The client keeps its socket open: the node's read side, parked, must
	// still wake to end the session.
	metricIs(t, nd, `pushd_connections_closed_total{reason="kicked"}`, 1)
	metricIs(t, nd, "pushd_sessions_parked", 0)
	metricIs(t, nd, "pushd_connections", 0)
}

// maskedText is a masked client text frame.
func maskedText(s string) []byte {
	return pushtest.MaskedFrame(true, false, 0x1, uint64(len(s)), []byte(s))
}
