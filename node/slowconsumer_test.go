package node_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// TestSlowConsumerReasonsAreToldApart: a session is cut off as a slow
// consumer for one of two reasons, and the client, the metrics and the
// disconnect event each say which. Its outbound queue was full when a push
// came (close 4008 "slow consumer: outbound queue full", reason
// slow_consumer), or one socket write blocked past WriteTimeout (reason
// write_timeout, and close 4008 "slow consumer: write timed out" if the
// client can still read it: a client whose socket is full usually cannot).
func TestSlowConsumerReasonsAreToldApart(t *testing.T) {
	t.Parallel() // it waits out WriteTimeout, not working
	t.Run("outbound queue full", func(t *testing.T) {
		ns := pushtest.RunNATS(t)
		nc := ns.Connect(t)
		// The queue takes a frame only while it is empty.
		n := testnode.Start(t, ns.URL(), node.Config{Dev: true, MaxQueuedBytes: 1})
		events, err := nc.SubscribeSync("push.events.disconnect")
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		c := pushtest.RawDial(t, n.Addr(), "?user=full", nil)
		if hello := c.TextFrame(t); !strings.Contains(hello, `"type":"hello"`) {
			t.Fatalf("first frame %s, want hello", hello)
		}
		// Two pushes in one batch, as the router delivers a backlog: the
		// first waits in the queue for the writer, the second finds the
		// queue full.
		b := n.NewBatch()
		push := &contract.Push{Target: contract.TargetUser, Key: "full", Event: "message", Data: []byte(`1`)}
		if r := b.Deliver(push); r.Delivered != 1 || r.CutOff != 0 {
			t.Fatalf("first push %+v, want delivered", r)
		}
		if r := b.Deliver(push); r.Delivered != 0 || r.CutOff != 1 {
			t.Fatalf("second push %+v, want the session cut off", r)
		}
		b.Flush()
		// The client reads: it hears why.
		if code, reason := c.CloseFrame(t, 5*time.Second); code != 4008 || reason != "slow consumer: outbound queue full" {
			t.Fatalf("closed %d %q, want 4008 \"slow consumer: outbound queue full\"", code, reason)
		}
		if _, e := nextEvent(t, events); e.Reason != "slow_consumer" {
			t.Fatalf("disconnect event %+v, want reason slow_consumer", e)
		}
		metricIs(t, n, `pushd_connections_closed_total{reason="slow_consumer"}`, 1)
		metricIs(t, n, `pushd_connections_closed_total{reason="write_timeout"}`, 0)
		metricIs(t, n, "pushd_slow_consumers_total", 1)
		metricIs(t, n, "pushd_connections", 0)
	})

	t.Run("write timed out", func(t *testing.T) {
		ns := pushtest.RunNATS(t)
		nc := ns.Connect(t)
		// A queue that never fills: only a blocked write can cut the session off.
		n := testnode.Start(t, ns.URL(), node.Config{Dev: true, MaxQueuedBytes: 64 << 20, WriteTimeout: time.Second,
			SweepInterval: 100 * time.Millisecond})
		events, err := nc.SubscribeSync("push.events.disconnect")
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		c := stuckClient(t, n.Addr(), "stuck")
		metricIs(t, n, "pushd_connections", 1)
		// ~9 MB: more than the kernel buffers on both ends hold, far less
		// than the queue limit.
		payload := []byte(`"` + strings.Repeat("w", 900<<10) + `"`)
		for range 10 {
			if err := nc.Publish("push.user.stuck", payload); err != nil {
				t.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		metricIs(t, n, `pushd_connections_closed_total{reason="write_timeout"}`, 1)
		metricIs(t, n, `pushd_connections_closed_total{reason="slow_consumer"}`, 0)
		metricIs(t, n, "pushd_slow_consumers_total", 1)
		metricIs(t, n, "pushd_connections", 0)
		if _, e := nextEvent(t, events); e.Reason != "write_timeout" {
			t.Fatalf("disconnect event %+v, want reason write_timeout", e)
		}
		// The client now reads what its socket holds, to the end: the
		// pushes, likely a frame cut short by the blocked write, and a
		// close frame only if the node's short courtesy write got through.
		code, reason := c.CloseFrame(t, 10*time.Second)
		if code != 0 && (code != 4008 || reason != "slow consumer: write timed out") {
			t.Fatalf("closed %d %q, want 4008 \"slow consumer: write timed out\" (or no close frame)", code, reason)
		}
	})
}

// stuckClient upgrades a connection to addr as a dev user with a tiny
// receive buffer and returns it unread: a client that stopped reading.
func stuckClient(t *testing.T, addr, user string) *pushtest.RawConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	req := "GET /ws?user=" + user + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return pushtest.NewRawConn(conn, br)
}
