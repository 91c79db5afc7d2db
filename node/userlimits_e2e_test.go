package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// churn sends join and leave frames with ids, alternately, at rate per
// second until the session closes or 20s pass, and returns the ids the node
// answered rate_limited and the close error.
func churn(t *testing.T, c *client.Conn, rate int) ([]string, error) {
	t.Helper()
	var mu sync.Mutex
	var limited []string
	go func() { // replies must be read, or the client's read loop stalls
		for {
			f, err := c.Reply(context.Background())
			if err != nil {
				return
			}
			if f.Type == "error" && f.Code == "rate_limited" {
				mu.Lock()
				limited = append(limited, f.ID)
				mu.Unlock()
			}
		}
	}()
	tick := time.NewTicker(time.Second / time.Duration(rate)) // the abuser's pace, not a wait for an event
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for i := 0; ; i++ {
		select {
		case <-c.Done():
			mu.Lock()
			defer mu.Unlock()
			return limited, c.Err()
		case <-deadline:
			t.Fatalf("a client churning joins and leaves at %d/s was never closed", rate)
		case <-tick.C:
			kind := "join"
			if i%2 == 1 {
				kind = "leave"
			}
			_ = c.Send(fmt.Appendf(nil, `{"type":%q,"doc":"churn","id":"r%d"}`, kind, i))
		}
	}
}

func wantRateLimitedClose(t *testing.T, err error, limited []string) {
	t.Helper()
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != 4029 {
		t.Fatalf("churning client closed with %v, want 4029", err)
	}
	if len(limited) == 0 {
		t.Fatal("no request was answered rate_limited before the close")
	}
	for _, id := range limited {
		if !strings.HasPrefix(id, "r") {
			t.Fatalf("rate_limited answer without the request's id: %q (of %v)", id, limited)
		}
	}
}

// TestJoinChurnOverTheFrameRateIsCut: join and leave frames are frames like
// any other: a session churning at 1.6 times its frame rate is closed with
// 4029, and each dropped request it is told about carries its id, so a
// client awaiting that reply gets it instead of a timeout.
func TestJoinChurnOverTheFrameRateIsCut(t *testing.T) {
	t.Parallel()
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, UpstreamRate: 20, UpstreamBurst: 20, JoinRate: -1})
	start := time.Now()
	limited, err := churn(t, dial(t, n, "churner"), 32) // 1.6 × 20/s
	wantRateLimitedClose(t, err, limited)
	t.Logf("closed after %s", time.Since(start).Round(time.Millisecond))
}

// TestJoinChurnOverTheJoinRateIsCut: joins and leaves under the frame rate
// but steadily at 1.6 times the join rate: each one over it is refused
// rate_limited with its id, and the session is closed with 4029, as the
// strikes they weigh run out.
func TestJoinChurnOverTheJoinRateIsCut(t *testing.T) {
	t.Parallel()
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, UpstreamRate: 50, UpstreamBurst: 20, JoinRate: 10, JoinBurst: 10})
	start := time.Now()
	limited, err := churn(t, dial(t, n, "churner"), 16) // 1.6 × 10/s, a third of the frame rate
	wantRateLimitedClose(t, err, limited)
	t.Logf("closed after %s, %d requests refused", time.Since(start).Round(time.Millisecond), len(limited))
	// The answer to the last refusal may cross the close.
	if got := n.Metric(t, `pushd_joins_refused_total{reason="rate_limited"}`); got < float64(len(limited)) || got > float64(len(limited)+1) {
		t.Fatalf(`pushd_joins_refused_total{reason="rate_limited"} = %v, want the %d answered`, got, len(limited))
	}
	// Within the join rate nothing is refused.
	c := dial(t, n, "calm")
	for i := range 10 { // the burst: a reconnect rejoining its docs
		if f := request(t, c, fmt.Sprintf(`{"type":"join","doc":"d%d","id":"j%d"}`, i, i)); f.Type != "joined" {
			t.Fatalf("join %d within the burst: %+v", i, f)
		}
	}
}

// TestDistinctDocsPerUser: a user's sessions on a node together join at
// most MaxDocsPerUser distinct docs, however many sessions it opens; a doc
// several of them joined counts once, and leaving or closing frees room.
func TestDistinctDocsPerUser(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, MaxDocsPerSession: 3, MaxDocsPerUser: 4})
	a1, a2 := dial(t, n, "alice"), dial(t, n, "alice")
	for _, d := range []string{"d1", "d2", "d3"} {
		if err := a1.Join(ctxT(t), d); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"d1", "d4"} { // d1 is already alice's
		if err := a2.Join(ctxT(t), d); err != nil {
			t.Fatal(err)
		}
	}
	f := request(t, a2, joinFrame("d5", ""))
	if f.Type != "error" || f.Code != "too_many_docs" || !strings.Contains(f.Message, "this user's sessions on this node have joined 4 distinct docs") {
		t.Fatalf("fifth distinct doc: %+v", f)
	}
	if err := dial(t, n, "bob").Join(ctxT(t), "d5"); err != nil { // another user is not limited by alice
		t.Fatal(err)
	}
	if err := a1.Leave(ctxT(t), "d3"); err != nil {
		t.Fatal(err)
	}
	if err := a2.Join(ctxT(t), "d5"); err != nil {
		t.Fatalf("join after a leave freed room: %v", err)
	}
	a3 := dial(t, n, "alice")
	if f := request(t, a3, joinFrame("d6", "")); f.Type != "error" || f.Code != "too_many_docs" {
		t.Fatalf("a third session's join of a fifth doc: %+v", f)
	}
	_ = a1.Close() // d1 stays alice's (a2), d2 is freed
	eventually(t, func() error {
		if got := n.Sessions(); got != 3 {
			return fmt.Errorf("%d sessions, want 3 once the closed one is gone", got)
		}
		return nil
	})
	if f := request(t, a3, joinFrame("d6", "")); f.Type != "joined" {
		t.Fatalf("join after the other session closed: %+v", f)
	}
	metricIs(t, n, `pushd_joins_refused_total{reason="too_many_user_docs"}`, 2)
	publish(t, nc, "push.doc.d6", nil, `"in"`, 1)
	expectPush(t, a3, "message", `"in"`)
}

// TestHandshakeLimitBelievesOnlyTrustedProxies: behind a trusted proxy each
// client has its own handshake budget, named by X-Forwarded-For; the same
// header from anyone else is ignored, so it cannot buy a fresh budget.
func TestHandshakeLimitBelievesOnlyTrustedProxies(t *testing.T) {
	ns := pushtest.RunNATS(t)
	behind := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 1, HandshakeRatePerIP: 0.001, HandshakeBurstPerIP: 1,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	direct := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 2, HandshakeRatePerIP: 0.001, HandshakeBurstPerIP: 1})
	xff := func(v string) http.Header { return http.Header{"X-Forwarded-For": {v}} }
	for _, c := range []struct {
		n    *testnode.Node
		xff  string
		want int
	}{
		{behind, "203.0.113.1", 101},
		{behind, "203.0.113.1", 429},               // the same client again
		{behind, "203.0.113.2", 101},               // another client behind the proxy
		{behind, "198.51.100.9, 203.0.113.2", 429}, // what a client writes left of its address changes nothing
		{behind, "2001:db8:1:1::1", 101},           //
		{behind, "2001:db8:1:1::2", 429},           // the same /64
		{direct, "203.0.113.1", 101},               // not a trusted proxy: its own address counts
		{direct, "203.0.113.2", 429},               // whatever it claims
	} {
		if status, body := handshake(t, c.n.WSURL()+"?user=u", xff(c.xff)); status != c.want {
			t.Fatalf("X-Forwarded-For %q to node %d: %d %s, want %d", c.xff, c.n.ID(), status, body, c.want)
		}
	}
}

// TestHandshakeLimitIsOnByDefault: a node configured with nothing limits
// handshakes per client IP (500/s, a burst of 5,000).
func TestHandshakeLimitIsOnByDefault(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true})
	refused := 0 // the number of the first refused handshake
	for i := 1; i <= 20000 && refused == 0; i++ {
		status, body := handshake(t, n.WSURL()+"?token=bad", nil) // refused 401 after the limiter, as a flood of bad tokens is
		switch status {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			var r struct{ Error string }
			if json.Unmarshal([]byte(body), &r) != nil || r.Error != "rate_limited" {
				t.Fatalf("429 %s", body)
			}
			refused = i
		default:
			t.Fatalf("handshake %d: %d %s", i, status, body)
		}
	}
	if refused <= 5000 {
		t.Fatalf("first refusal at handshake %d, want after the burst of 5000 (and 500/s); 0: none in 20000", refused)
	}
}
