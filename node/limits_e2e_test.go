package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// Limits end to end: what a node does to clients that send too much, too
// fast or the wrong thing, and to clients that read too slowly, through a
// real handshake. (limits_test.go has the limiters' unit tests.)

func TestUpstreamFloodIsRateLimitedThenClosed(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, UpstreamRate: 20, UpstreamBurst: 20})
	neighbour := dial(t, n, "neighbour")
	flooder := dial(t, n, "flooder")
	if err := flooder.Join(ctxT(t), "shared"); err != nil {
		t.Fatal(err)
	}
	if err := neighbour.Join(ctxT(t), "shared"); err != nil {
		t.Fatal(err)
	}
	// Publishing on the flooder's doc, as fast as the socket takes it.
	frame := []byte(`{"type":"publish","doc":"shared","event":"spam","data":"x"}`)
	for i := 0; i < 2000; i++ {
		if err := flooder.Send(frame); err != nil {
			break // closed under us: the point
		}
	}
	for {
		if _, err := flooder.Reply(ctxT(t)); err != nil {
			break
		}
	}
	// The node half-closes after its close frame, so even a client with
	// frames still in flight learns why it was cut off.
	if code := closeCode(flooder.Err()); code != 4029 {
		t.Fatalf("flooder closed with %v, want 4029", flooder.Err())
	}
	if got := n.Metric(t, "pushd_upstream_rate_limited_total"); got < 20 {
		t.Fatalf("rate limited frames = %v, want at least the burst", got)
	}
	// The client saw the close frame; the node counts the close once its read
	// side has seen the client go.
	metricIs(t, n, `pushd_connections_closed_total{reason="rate_limited"}`, 1)
	if got := n.Metric(t, "pushd_upstream_messages_total"); got > 45 {
		t.Fatalf("%v upstream messages forwarded; the limit allows about 40", got)
	}
	publish(t, nc, "push.doc.shared", nil, `"fine"`, 1)
	expectPush(t, neighbour, "message", `"fine"`)
	if _, err := neighbour.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestRateLimitedClientIsToldWhy(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, UpstreamRate: 1, UpstreamBurst: 5})
	c := dial(t, n, "eager")
	for i := range 5 {
		if f := request(t, c, `{"type":"ping"}`); f.Type != "pong" {
			t.Fatalf("ping %d within the burst: %+v", i, f)
		}
	}
	if f := request(t, c, `{"type":"ping"}`); f.Type != "error" || f.Code != "rate_limited" {
		t.Fatalf("ping over the limit: %+v", f)
	}
	for range 4 { // a run of dropped frames as long as the burst
		if err := c.Send([]byte(`{"type":"ping"}`)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("not closed")
	}
	if code := closeCode(c.Err()); code != 4029 {
		t.Fatalf("closed with %v, want 4029", c.Err())
	}
}

// TestSteadyExcessEndsIn4029: a client sending steadily at 1.6 times its
// frame rate never drops a run of frames as long as the burst (drops and
// admits alternate), yet it must be closed.
func TestSteadyExcessEndsIn4029(t *testing.T) {
	t.Parallel() // it spends seconds sending at a steady rate, not working
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, UpstreamRate: 20, UpstreamBurst: 20})
	c := dial(t, n, "steady")
	go func() { // replies must be read, or the client's read loop stalls
		for {
			if _, err := c.Reply(context.Background()); err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(time.Second / 32) // the rate under test: 1.6 x 20/s
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case <-c.Done():
			if code := closeCode(c.Err()); code != 4029 {
				t.Fatalf("closed with %v, want 4029", c.Err())
			}
			return
		case <-deadline:
			t.Fatal("a client steadily over its rate limit was never closed")
		case <-tick.C:
			_ = c.Send([]byte(`{"type":"ping"}`))
		}
	}
}

func TestBytesRateLimit(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, UpstreamBytesRate: 8192, MaxFrameSize: 4096})
	c := dial(t, n, "big")
	big := `{"type":"ping","pad":"` + strings.Repeat("x", 4000) + `"}`
	// The byte burst is max(2 * 8 KiB, 2 frames) = 16 KiB: four frames pass, the fifth is dropped.
	for i := 0; i < 4; i++ {
		if f := request(t, c, big); f.Type != "pong" {
			t.Fatalf("frame %d: %+v", i, f)
		}
	}
	if f := request(t, c, big); f.Type != "error" || f.Code != "rate_limited" {
		t.Fatalf("over the byte rate: %+v", f)
	}
	// Waiting for the bucket to refill lets the client go on.
	eventually(t, func() error {
		f := request(t, c, `{"type":"ping"}`)
		if f.Type != "pong" {
			return errors.New("still limited")
		}
		return nil
	})
}

func TestSessionAndDocLimits(t *testing.T) {
	t.Parallel() // it waits for its node to drain at cleanup, not working
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, MaxSessionsPerUser: 2, MaxConnections: 4, MaxDocsPerSession: 5})
	a1 := dial(t, n, "alice")
	a2 := dial(t, n, "alice")
	if status, body := handshake(t, n.WSURL()+"?user=alice", nil); status != http.StatusTooManyRequests || !strings.Contains(body, "too_many_sessions") {
		t.Fatalf("third alice session: %d %s", status, body)
	}
	_ = a2.Close()
	eventually(t, func() error {
		c, err := client.Dial(ctxT(t), n.WSURL(), client.Options{User: "alice"})
		if err != nil {
			return err
		}
		t.Cleanup(func() { _ = c.Close() })
		return nil
	})
	dial(t, n, "bob")
	dial(t, n, "carol")
	if status, body := handshake(t, n.WSURL()+"?user=dave", nil); status != http.StatusServiceUnavailable || !strings.Contains(body, "over_capacity") {
		t.Fatalf("fifth session: %d %s", status, body)
	}
	for i := range 5 {
		if err := a1.Join(ctxT(t), "doc-"+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	if f := request(t, a1, joinFrame("doc-z", "")); f.Type != "error" || f.Code != "too_many_docs" {
		t.Fatalf("sixth doc: %+v", f)
	}
	if err := a1.Leave(ctxT(t), "doc-a"); err != nil {
		t.Fatal(err)
	}
	if err := a1.Join(ctxT(t), "doc-z"); err != nil {
		t.Fatalf("join after leave: %v", err)
	}
	publish(t, nc, "push.doc.doc-z", nil, `1`, 1)
	expectPush(t, a1, "message", `1`)
	if got := n.Metric(t, `pushd_handshake_failures_total{reason="over_capacity"}`); got != 1 {
		t.Fatalf("over_capacity = %v", got)
	}
}

func TestTenThousandJoins(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, UpstreamRate: -1, UpstreamBytesRate: -1, JoinRate: -1})
	bystander := dial(t, n, "bystander")
	c := pushtest.RawDial(t, n.Addr(), "?user=joiner", nil)
	c.TextFrame(t) // hello
	// 10,000 joins in bursts of 500, each burst's replies read before the
	// next: the flood is the point, not the outbound queue (1,024 frames),
	// which a client that falls 1,024 replies behind would overflow.
	for burst := 0; burst < 20; burst++ {
		for i := burst * 500; i < (burst+1)*500; i++ {
			if err := c.Text(`{"type":"join","doc":"d-` + itoa(i) + `"}`); err != nil {
				t.Fatal(err)
			}
		}
		for range 500 {
			c.TextFrame(t)
		}
	}
	eventually(t, func() error {
		docs, refused := n.Metric(t, "pushd_docs"), n.Metric(t, `pushd_joins_refused_total{reason="too_many_docs"}`)
		if docs != 100 || refused != 9900 {
			return fmt.Errorf("joins not processed yet: %v docs, %v refused (want 100, 9900)", docs, refused)
		}
		return nil
	})
	_ = c.Close()
	eventually(t, func() error {
		if got := n.Metric(t, "pushd_docs"); got != 0 {
			return errors.New("docs not released")
		}
		return nil
	})
	publish(t, nc, "push.user.bystander", nil, `"ok"`, 1)
	expectPush(t, bystander, "message", `"ok"`)
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestHandshakeRatePerIP(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, HandshakeRatePerIP: 1, HandshakeBurstPerIP: 3})
	for i := range 3 {
		if status, _ := handshake(t, n.WSURL()+"?user=u"+itoa(i), nil); status != http.StatusSwitchingProtocols {
			t.Fatalf("handshake %d: %d", i, status)
		}
	}
	status, body := handshake(t, n.WSURL()+"?user=u4", nil)
	if status != http.StatusTooManyRequests || !strings.Contains(body, "rate_limited") {
		t.Fatalf("fourth handshake: %d %s", status, body)
	}
	if got := n.Metric(t, `pushd_handshake_failures_total{reason="rate_limited"}`); got != 1 {
		t.Fatalf("rate_limited handshakes = %v", got)
	}
}

func TestOriginCheck(t *testing.T) {
	ns := pushtest.RunNATS(t)
	prod := testnode.Start(t, ns.URL(), node.Config{NodeID: 1, Auth: hs256(t)})
	listed := testnode.Start(t, ns.URL(), node.Config{NodeID: 2, Auth: hs256(t), AllowedOrigins: []string{"https://*.example.com", "https://app.test"}})
	dev := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 3})
	tok := "?token=" + token(t, "alice", time.Hour)
	for _, tc := range []struct {
		name   string
		n      *testnode.Node
		origin string
		want   int
	}{
		{"no origin (not a browser)", prod, "", 101},
		{"same host", prod, "http://" + prod.Addr(), 101},
		{"other site", prod, "https://evil.test", 4004},
		{"listed wildcard", listed, "https://a.example.com", 101},
		{"listed wildcard, deeper", listed, "https://a.b.example.com", 101},
		{"wildcard needs a subdomain", listed, "https://example.com", 4004},
		{"suffix trick", listed, "https://evilexample.com", 4004},
		{"scheme matters", listed, "http://a.example.com", 4004},
		{"listed exact", listed, "https://app.test", 101},
		{"same host is not implied by a list", listed, "http://" + listed.Addr(), 4004},
		{"dev allows any", dev, "https://evil.test", 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			q := tok
			if tc.n == dev {
				q = "?user=alice"
			}
			// A browser (it sends Origin) cannot read an HTTP status: a
			// refused one is upgraded and closed with 4004 and the reason.
			c, status, err := pushtest.RawUpgrade(tc.n.Addr(), q, nil, "Origin: "+tc.origin)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if status != 101 {
				t.Fatalf("status %d, want 101", status)
			}
			if tc.want == 101 {
				if f := c.TextFrame(t); !strings.Contains(f, `"hello"`) {
					t.Fatalf("first frame %s", f)
				}
				return
			}
			code, reason := c.CloseFrame(t, 5*time.Second)
			if int(code) != tc.want || !strings.HasPrefix(reason, "forbidden_origin: origin "+tc.origin) {
				t.Fatalf("close %d %q, want %d forbidden_origin", code, reason, tc.want)
			}
		})
	}
}

func TestRawFrameAbuse(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, MaxFrameSize: 4096})
	bystander := pushtest.RawDial(t, n.Addr(), "?user=bystander", nil)
	bystander.TextFrame(t)
	for _, tc := range []struct {
		name string
		send func(c *pushtest.RawConn) error
		want uint16
	}{
		{"declared 1 GiB frame, no payload", func(c *pushtest.RawConn) error { return c.FrameHeader(true, false, 0x1, 1<<30, nil) }, 1009},
		{"declared 2^63 frame", func(c *pushtest.RawConn) error { return c.FrameHeader(true, false, 0x1, 1<<63-1, nil) }, 1009},
		{"fragments past the limit", func(c *pushtest.RawConn) error {
			if err := c.Frame(false, false, 0x1, []byte(strings.Repeat("a", 3000))); err != nil {
				return err
			}
			return c.Frame(false, false, 0x0, []byte(strings.Repeat("a", 3000)))
		}, 1009},
		{"continuation without a start", func(c *pushtest.RawConn) error { return c.Frame(true, false, 0x0, []byte(`x`)) }, 1002},
		{"invalid UTF-8", func(c *pushtest.RawConn) error {
			return c.Frame(true, false, 0x1, []byte("{\"type\":\"ping\",\"x\":\"\xff\xfe\"}"))
		}, 1007},
		{"compressed frame without the extension", func(c *pushtest.RawConn) error {
			// A deflate bomb: 4 KiB of zeros inflating to far more. Compression is off, so RSV1 is a protocol error.
			return c.Frame(true, true, 0x1, make([]byte, 4000))
		}, 1002},
		{"unknown opcode", func(c *pushtest.RawConn) error { return c.Frame(true, false, 0x3, []byte(`x`)) }, 1002},
		{"oversized ping", func(c *pushtest.RawConn) error { return c.Frame(true, false, 0x9, make([]byte, 200)) }, 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := pushtest.RawDial(t, n.Addr(), "?user=mallory", nil)
			c.TextFrame(t) // hello
			if err := tc.send(c); err != nil {
				t.Fatal(err)
			}
			if got := c.CloseCode(t, 5*time.Second); got != tc.want {
				t.Fatalf("close code %d, want %d", got, tc.want)
			}
		})
	}
	// A fragmented message that never ends is not activity: the heartbeat
	// sweeper closes the session (here on a node with a short interval).
	quick := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 1, PingInterval: 300 * time.Millisecond, PingGrace: 300 * time.Millisecond, SweepInterval: 50 * time.Millisecond})
	f := pushtest.RawDial(t, quick.Addr(), "?user=mallory", nil)
	f.TextFrame(t)
	if err := f.Frame(false, false, 0x1, []byte(`{"type":"pi`)); err != nil {
		t.Fatal(err)
	}
	if got := f.CloseCode(t, 5*time.Second); got != 4002 {
		t.Fatalf("endless fragment: close %d, want 4002", got)
	}
	// Unmasked client frames are refused.
	c := pushtest.RawDial(t, n.Addr(), "?user=mallory", nil)
	c.TextFrame(t)
	_, _ = c.Write([]byte{0x81, 0x02, '{', '}'})
	if got := c.CloseCode(t, 5*time.Second); got != 1002 {
		t.Fatalf("unmasked frame: close %d, want 1002", got)
	}
	// The bystander, heartbeating, still gets pushes.
	if err := bystander.Text(`{"type":"ping"}`); err != nil {
		t.Fatal(err)
	}
	if f := bystander.TextFrame(t); !strings.Contains(f, "pong") {
		t.Fatalf("bystander: %s", f)
	}
	publish(t, nc, "push.user.bystander", nats.Header{"Push-Event": {"after"}}, `1`, 1)
	if f := bystander.TextFrame(t); !strings.Contains(f, `"event":"after"`) {
		t.Fatalf("bystander push: %s", f)
	}
	eventually(t, func() error {
		if got := n.Metric(t, "pushd_connections"); got != 1 {
			return errors.New("abusive sessions still counted")
		}
		return nil
	})
}

func TestSeveralSlowConsumersAreCutOff(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, MaxQueuedBytes: 65536, WriteTimeout: 2 * time.Second})
	// Five clients that upgrade and never read a byte: their socket buffers fill, then their queues.
	const slow = 5
	for i := range slow {
		pushtest.RawDial(t, n.Addr(), "?user=slow"+itoa(i), nil)
	}
	fast := dial(t, n, "fast")
	payload := []byte(`"` + strings.Repeat("p", 32<<10) + `"`)
	eventually(t, func() error {
		if got := n.Metric(t, `pushd_connections_closed_total{reason="slow_consumer"}`); got == slow {
			return nil
		}
		for i := range slow {
			for range 20 {
				if err := nc.Publish("push.user.slow"+itoa(i), payload); err != nil {
					return err
				}
			}
		}
		return errors.New("slow consumers not all cut off yet")
	})
	publish(t, nc, "push.user.fast", nil, `"fine"`, 1)
	expectPush(t, fast, "message", `"fine"`)
	if got := n.Metric(t, "pushd_connections"); got != 1 {
		t.Fatalf("connections = %v, want only the fast client", got)
	}
}

// TestBlockedWriteIsCutOffAfterWriteTimeout checks the other slow-consumer
// path: a client that stops reading while its queue stays under the limit. Its
// socket buffers fill, one write blocks, and once that write is older than
// --write-timeout the sweeper cuts the session off.
func TestBlockedWriteIsCutOffAfterWriteTimeout(t *testing.T) {
	t.Parallel() // it waits out WriteTimeout, not working
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, MaxQueuedBytes: 64 << 20, WriteTimeout: time.Second, SweepInterval: 100 * time.Millisecond})
	// A client with a tiny receive buffer that never reads.
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET /ws?user=stuck HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	metricIs(t, n, "pushd_connections", 1)
	// ~9 MB: more than the kernel buffers on both ends hold (the send buffer
	// tops out at tcp_wmem's 4 MiB here), far less than the 64 MiB queue.
	payload := []byte(`"` + strings.Repeat("w", 900<<10) + `"`)
	for range 10 {
		if err := nc.Publish("push.user.stuck", payload); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// A write blocked past --write-timeout is its own reason, not a full
	// queue: the queue (64 MiB) never filled.
	metricIs(t, n, `pushd_connections_closed_total{reason="write_timeout"}`, 1)
	metricIs(t, n, `pushd_connections_closed_total{reason="slow_consumer"}`, 0)
	metricIs(t, n, "pushd_slow_consumers_total", 1)
	metricIs(t, n, "pushd_connections", 0)
}
