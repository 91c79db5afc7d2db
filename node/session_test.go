package node_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/auth"
	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// Sessions: how a client gets one (tokens, the connect frame, refusals), how
// it is kept (heartbeats, replies, bad input, slow consumers) and how it
// ends (drain).

func TestTokenAuthentication(t *testing.T) {
	t.Parallel() // it waits for its node to drain at cleanup, not working
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Auth: hs256(t)})
	url := n.WSURL()

	wrongKey, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString([]byte("another-secret"))
	if err != nil {
		t.Fatal(err)
	}
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice"}).SignedString([]byte(testSecret))
	for _, tc := range []struct {
		name, query string
		header      http.Header
		status      int
		code        string
	}{
		{"missing: upgraded, waiting for a connect frame", "", nil, 101, ""},
		{"expired", "?token=" + token(t, "alice", -time.Minute), nil, 401, "token_expired"},
		{"wrongly signed", "?token=" + wrongKey, nil, 401, "token_invalid"},
		{"garbage", "?token=not.a.jwt", nil, 401, "token_invalid"},
		{"no exp", "?token=" + noExp, nil, 401, "token_invalid"},
		{"bad user id", "?token=" + token(t, "a.>", time.Hour), nil, 400, "invalid_user"},
		{"dev user param without dev", "?user=alice", nil, 401, "token_missing"},
		{"valid query", "?token=" + token(t, "alice", time.Hour), nil, 101, ""},
		{"valid bearer", "", http.Header{"Authorization": {"Bearer " + token(t, "alice", time.Hour)}}, 101, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := handshake(t, url+tc.query, tc.header)
			if status != tc.status || !strings.Contains(body, `"error":"`+tc.code) && tc.code != "" {
				t.Fatalf("status %d body %q, want %d with error %q", status, body, tc.status, tc.code)
			}
		})
	}
	c, err := client.Dial(ctxT(t), url, client.Options{Token: token(t, "alice", time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h := c.Hello(); h.User != "alice" || h.SID == "" || h.PingInterval != 20000 || h.PingTimeout != 30000 {
		t.Fatalf("hello %+v", h)
	}
	if got := n.Metric(t, `pushd_handshake_failures_total{reason="unauthorized"}`); got != 5 {
		t.Fatalf("unauthorized handshake failures = %v, want 5", got)
	}
}

func TestES256PublicKey(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pub.pem")
	pushtest.WritePublicKeyPEM(t, path, &key.PublicKey)
	v, err := auth.New(auth.Config{PublicKeyFiles: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Auth: v})
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "erin", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctxT(t), n.WSURL(), client.Options{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	// An HS256 token signed with the public key's bytes (HS/RS confusion) is refused.
	pemBytes, _ := os.ReadFile(path)
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "erin", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(pemBytes)
	if status, _ := handshake(t, n.WSURL()+"?token="+forged, nil); status != 401 {
		t.Fatalf("HS256 token forged with the public key: status %d, want 401", status)
	}
}

// TestDevModeAcceptsUsersAndStillVerifiesTokens: a dev node with a key
// accepts ?user= and still verifies the tokens it is given. (That pushd
// refuses to start with neither a key nor --dev is cmd/pushd's
// TestDevModeRules.)
func TestDevModeAcceptsUsersAndStillVerifiesTokens(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, Auth: hs256(t)})
	c := dial(t, n, "dev-user")
	if c.Hello().User != "dev-user" {
		t.Fatalf("hello %+v", c.Hello())
	}
	if status, _ := handshake(t, n.WSURL()+"?token="+token(t, "x", -time.Minute), nil); status != 401 {
		t.Fatalf("expired token in dev mode: %d, want 401", status)
	}
	if status, _ := handshake(t, n.WSURL()+"?user=a*b", nil); status != 400 {
		t.Fatalf("dev user a*b: %d, want 400", status)
	}
}

func TestHeartbeatTimeoutClosesSilentClient(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, PingInterval: 150 * time.Millisecond, PingGrace: 150 * time.Millisecond,
		SweepInterval: 50 * time.Millisecond})
	silent := dial(t, n, "silent")
	alive := dial(t, n, "alive")
	if silent.Hello().PingInterval != 150 || silent.Hello().PingTimeout != 300 {
		t.Fatalf("hello %+v", silent.Hello())
	}
	// alive heartbeats (JSON and WebSocket pings alternately) until silent is cut off.
	for i := 0; ; i++ {
		select {
		case <-silent.Done():
			if code := closeCode(silent.Err()); code != 4002 {
				t.Fatalf("silent client closed with %v, want 4002", silent.Err())
			}
			select {
			case <-alive.Done():
				t.Fatalf("heartbeating client closed too: %v", alive.Err())
			default:
			}
			metricIs(t, n, `pushd_connections_closed_total{reason="heartbeat_timeout"}`, 1)
			return
		case <-time.After(50 * time.Millisecond): // the heartbeat cadence under test
		}
		if i%2 == 0 {
			if _, err := alive.Ping(ctxT(t)); err != nil {
				t.Fatal(err)
			}
		} else if err := alive.WritePing(); err != nil {
			t.Fatal(err)
		}
		if i > 100 {
			t.Fatal("silent client was never closed")
		}
	}
}

func TestAdaptiveHeartbeatIntervalRises(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, PingInterval: time.Second, PingIntervalMax: 3 * time.Second, HealthyPings: 2})
	c := dial(t, n, "alice")
	var got []int64
	for range 6 {
		p, err := c.Ping(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.PingInterval)
		if p.PingTimeout != p.PingInterval+10000 {
			t.Fatalf("pong %+v: ping_timeout should be interval + grace", p)
		}
	}
	want := []int64{1000, 2000, 2000, 3000, 3000, 3000}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pong intervals %v, want %v", got, want)
		}
	}
}

func TestBadInputGetsClearErrorsAndHurtsNoOne(t *testing.T) {
	t.Parallel() // it waits for its node to drain at cleanup, not working
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, MaxFrameSize: 1024})
	bystander := dial(t, n, "bystander")

	c := dial(t, n, "mallory")
	for _, tc := range []struct{ frame, code string }{
		{`{not json`, "bad_json"},
		{`[]`, "bad_json"},
		{`{"type":""}`, "bad_json"},
		{`{"type":"teleport"}`, "unknown_type"},
		{`{"type":"join","doc":""}`, "invalid_doc"},
		{`{"type":"join","doc":"` + strings.Repeat("d", 129) + `"}`, "invalid_doc"},
		{`{"type":"join","doc":"a..b"}`, "invalid_doc"},
		{`{"type":"join","doc":"*"}`, "invalid_doc"},
		{`{"type":"join","doc":">"}`, "invalid_doc"},
		{`{"type":"join","doc":"a b"}`, "invalid_doc"},
		{`{"type":"leave","doc":"never-joined"}`, "not_joined"},
	} {
		if err := c.Send([]byte(tc.frame)); err != nil {
			t.Fatal(err)
		}
		f, err := c.Reply(ctxT(t))
		if err != nil || f.Type != "error" || f.Code != tc.code || f.Message == "" {
			t.Fatalf("frame %s: got %+v, %v; want error %s", tc.frame, f, err, tc.code)
		}
	}
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatalf("connection should survive bad frames: %v", err)
	}

	for _, tc := range []struct {
		name string
		send func(*client.Conn) error
		code uint16
	}{
		{"oversized frame", func(c *client.Conn) error {
			return c.Send([]byte(`{"type":"ping","pad":"` + strings.Repeat("x", 2048) + `"}`))
		}, 1009},
		{"binary frame", func(c *client.Conn) error { return c.SendBinary([]byte{1, 2, 3}) }, 1003},
		{"endless bad frames", func(c *client.Conn) error {
			for range 25 {
				if err := c.Send([]byte(`nope`)); err != nil {
					return err
				}
			}
			return nil
		}, 4000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, n, "mallory")
			if err := tc.send(c); err != nil {
				t.Fatal(err)
			}
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("not closed")
			}
			if got := closeCode(c.Err()); got != tc.code {
				t.Fatalf("closed with %v, want %d", c.Err(), tc.code)
			}
		})
	}
	// The node and the bystander are unaffected: the node is ready (what
	// pushd's /readyz reports) and takes new sessions.
	publish(t, nc, "push.user.bystander", nil, `"still here"`, 1)
	expectPush(t, bystander, "message", `"still here"`)
	if ok, why := n.Ready(); !ok {
		t.Fatalf("node not ready after bad input: %s", why)
	}
	dial(t, n, "newcomer")
}

func TestSlowConsumerIsCutOffWithoutHurtingOthers(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, MaxQueuedBytes: 65536, WriteTimeout: 2 * time.Second})
	// A client that never reads: its receive buffer is one push deep and it never calls Next.
	slow, err := client.Dial(ctxT(t), n.WSURL(), client.Options{User: "slow", Buffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close() // its read loop is blocked by design until Close
	fast := dial(t, n, "fast")
	payload := `"` + strings.Repeat("p", 32<<10) + `"`
	// Every push asks for a delivery report: the one that found the queue
	// full says the session was cut off, not that nobody matched.
	reports, err := nc.SubscribeSync(nats.NewInbox())
	if err != nil {
		t.Fatal(err)
	}
	cut := false
	eventually(t, func() error {
		for {
			m, err := reports.NextMsg(0)
			if err != nil {
				break
			}
			var r contract.Report
			if err := json.Unmarshal(m.Data, &r); err != nil {
				t.Fatalf("report %q: %v", m.Data, err)
			}
			if r.Matched != 1 || r.Delivered+r.CutOff > 1 {
				t.Fatalf("report %+v: one session matched", r)
			}
			cut = cut || r.CutOff == 1
		}
		if cut && n.Metric(t, "pushd_slow_consumers_total") >= 1 {
			return nil
		}
		for range 50 {
			if err := nc.PublishMsg(&nats.Msg{Subject: "push.user.slow", Reply: reports.Subject, Data: []byte(payload)}); err != nil {
				return err
			}
		}
		return errors.New("slow consumer not cut off (and reported so) yet")
	})
	eventually(t, func() error {
		if got := n.Metric(t, `pushd_connections_closed_total{reason="slow_consumer"}`); got != 1 {
			return errors.New("slow consumer session not closed yet")
		}
		return nil
	})
	publish(t, nc, "push.user.fast", nil, `"fine"`, 1)
	expectPush(t, fast, "message", `"fine"`)
}

// TestGracefulShutdownSends1012: Drain, which pushd runs on SIGTERM, closes
// every session with 1012, spread over the drain timeout, and the node then
// leaves NATS. (The binary's exit status is cmd/pushd's
// TestSIGTERMDrainsAndExitsZero.)
func TestGracefulShutdownSends1012(t *testing.T) {
	t.Parallel() // it waits for the drain, not working
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, DrainTimeout: 300 * time.Millisecond})
	var clients []*client.Conn
	for _, u := range []string{"a", "b", "c", "d"} {
		c, err := client.Dial(ctxT(t), n.WSURL(), client.Options{User: u})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Drain(ctx); err != nil {
		t.Fatalf("drain: %v, want every session closed in time", err)
	}
	n.Stop()
	for _, c := range clients {
		<-c.Done()
		if code := closeCode(c.Err()); code != 1012 {
			t.Fatalf("client closed with %v, want 1012", c.Err())
		}
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("four sessions closed in %s: closes were not spread over the drain timeout", took)
	}
	eventually(t, func() error {
		if ns.NumClients() != 0 {
			return errors.New("node still connected to NATS")
		}
		return nil
	})
}

// TestPongEchoesPingPayload: RFC 6455 section 5.5.3 wants a pong to carry the
// ping's application data; clients such as Python websockets match pongs to
// pings by it and drop a session whose pongs never match.
func TestPongEchoesPingPayload(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true})
	c := pushtest.RawDial(t, n.Addr(), "?user=pinger", nil)
	if f := c.TextFrame(t); !strings.Contains(f, `"hello"`) {
		t.Fatalf("first frame %s, want hello", f)
	}
	for _, payload := range [][]byte{nil, []byte("abcd"), []byte(strings.Repeat("x", 125))} {
		if err := c.Frame(true, false, 0x9, payload); err != nil {
			t.Fatal(err)
		}
		op, p, err := c.Next(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if op != 0xA || string(p) != string(payload) {
			t.Fatalf("answer to a ping with %q: opcode %#x payload %q, want a pong echoing it", payload, op, p)
		}
	}
}

// TestLargePushReachesAReadingClient: a push bigger than the whole outbound
// queue limit (but within MaxPushSize) reaches an idle client that reads;
// a push over MaxPushSize is refused once, reported as too_large, and
// disconnects nobody.
func TestLargePushReachesAReadingClient(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 4, MaxPushSize: 400000})
	c := dial(t, n, "reader")
	big := `"` + strings.Repeat("x", 300_000) + `"`
	if rs := publish(t, nc, "push.user.reader", nil, big, 1); rs[0] != (contract.Report{Node: n.ID(), Matched: 1, Delivered: 1}) {
		t.Fatalf("300 KB push report %+v", rs[0])
	}
	if f := expectPush(t, c, "message", ""); len(f.Data) != len(big) {
		t.Fatalf("300 KB push arrived with %d bytes of data", len(f.Data))
	}

	huge := `"` + strings.Repeat("y", 500_000) + `"`
	if rs := publish(t, nc, "push.user.reader", nil, huge, 1); rs[0] != (contract.Report{Node: n.ID(), Matched: 1, Refused: "too_large"}) {
		t.Fatalf("500 KB push report %+v, want refused too_large", rs[0])
	}
	metricIs(t, n, `pushd_pushes_refused_total{reason="too_large"}`, 1)
	marker(t, nc, c) // still connected, and the refused push never arrived
}

// TestRepliesEchoTheClientsID: a client can match every reply to the frame
// it answers by an optional id; errors about a doc name it.
func TestRepliesEchoTheClientsID(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, Auth: hs256(t)})
	c, err := client.Dial(ctxT(t), n.WSURL(), client.Options{Token: signed(t, jwt.MapClaims{
		"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(), "docs": []string{"open"}})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	for _, tc := range []struct{ frame, typ, code, doc string }{
		{`{"type":"join","doc":"open","id":"j1"}`, "joined", "", "open"},
		{`{"type":"join","doc":"secret","id":"j2"}`, "error", "forbidden", "secret"},
		{`{"type":"join","doc":"a..b","id":"j3"}`, "error", "invalid_doc", "a..b"},
		{`{"type":"publish","doc":"open","data":1,"id":"p1"}`, "published", "", "open"},
		{`{"type":"publish","doc":"secret","data":1,"id":"p2"}`, "error", "not_joined", "secret"},
		{`{"type":"ping","id":"h1"}`, "pong", "", ""},
		{`{"type":"refresh","token":"nope","id":"r1"}`, "error", "token_invalid", ""},
		{`{"type":"leave","doc":"open","id":"l1"}`, "left", "", "open"},
		{`{"type":"leave","doc":"open","id":"l2"}`, "error", "not_joined", "open"},
		{`{"type":"teleport","id":"t1"}`, "error", "unknown_type", ""},
	} {
		var want struct{ ID string }
		if err := json.Unmarshal([]byte(tc.frame), &want); err != nil {
			t.Fatal(err)
		}
		f := request(t, c, tc.frame)
		if f.Type != tc.typ || f.Code != tc.code || f.Doc != tc.doc || f.ID != want.ID {
			t.Fatalf("%s: got %+v, want type %s code %q doc %q id %s", tc.frame, f, tc.typ, tc.code, tc.doc, want.ID)
		}
	}
	// No id, no published acknowledgement (and nothing else) for a publish.
	if err := c.Send([]byte(`{"type":"join","doc":"open"}`)); err != nil {
		t.Fatal(err)
	}
	if f := request(t, c, `{"type":"publish","doc":"open","data":1}`); f.Type != "joined" {
		t.Fatalf("got %+v, want the join's reply", f)
	}
	if f := request(t, c, `{"type":"ping"}`); f.Type != "pong" || f.ID != "" {
		t.Fatalf("got %+v after an id-less publish, want only the pong", f)
	}
}

// TestConnectFrameAuthentication: a browser cannot set Authorization on a
// WebSocket, and a token in the URL ends up in access logs; so a client may
// upgrade without one and send it in its first frame. Every refusal is then
// a close code and a reason the client can read.
func TestConnectFrameAuthentication(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Auth: hs256(t), AuthTimeout: 300 * time.Millisecond, MaxSessionsPerUser: 1})
	connect := func(frame string) *pushtest.RawConn {
		c := pushtest.RawDial(t, n.Addr(), "", nil)
		if frame != "" {
			if err := c.Text(frame); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}

	c := connect(`{"type":"connect","token":"` + token(t, "alice", time.Hour) + `","id":"c1"}`)
	var hello client.Frame
	if err := json.Unmarshal([]byte(c.TextFrame(t)), &hello); err != nil || hello.Type != "hello" || hello.User != "alice" || hello.ID != "c1" {
		t.Fatalf("hello %+v, %v", hello, err)
	}
	publish(t, nc, "push.user.alice", nil, `"in"`, 1)
	if f := c.TextFrame(t); !strings.Contains(f, `"data":"in"`) {
		t.Fatalf("push %s", f)
	}
	if err := c.Text(`{"type":"connect","token":"x"}`); err != nil {
		t.Fatal(err)
	}
	if f := c.TextFrame(t); !strings.Contains(f, `"code":"unknown_type"`) {
		t.Fatalf("a second connect frame: %s", f)
	}

	for _, tc := range []struct {
		name, frame string
		code        uint16
		reason      string
	}{
		{"expired", `{"type":"connect","token":"` + token(t, "bob", -time.Minute) + `"}`, 4001, "token_expired: "},
		{"bad signature", `{"type":"connect","token":"not.a.jwt"}`, 4003, "token_invalid: "},
		{"bad user", `{"type":"connect","token":"` + token(t, "a.>", time.Hour) + `"}`, 4003, "invalid_user: user id: "},
		{"dev user on a production node", `{"type":"connect","user":"bob"}`, 4003, "token_missing: "},
		{"another frame first", `{"type":"ping"}`, 4003, `token_missing: the first frame must be {"type":"connect"`},
		{"nothing within AuthTimeout", "", 4003, "auth_timeout: no connect frame within 300ms"},
		{"over the user's session limit", `{"type":"connect","token":"` + token(t, "alice", time.Hour) + `"}`, 4009, "too_many_sessions: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, reason := connect(tc.frame).CloseFrame(t, 5*time.Second)
			if code != tc.code || !strings.HasPrefix(reason, tc.reason) {
				t.Fatalf("closed %d %q, want %d %q...", code, reason, tc.code, tc.reason)
			}
		})
	}

	dev := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 1})
	d := pushtest.RawDial(t, dev.Addr(), "", nil)
	if err := d.Text(`{"type":"connect","user":"carol"}`); err != nil {
		t.Fatal(err)
	}
	if f := d.TextFrame(t); !strings.Contains(f, `"user":"carol"`) {
		t.Fatalf("dev connect: %s", f)
	}
}

// TestBrowserSeesEveryRefusal: a refused upgrade from a browser (it sends
// Origin) is answered with an upgrade and a close frame, so page code sees a
// code and a reason instead of a bare 1006; other clients keep their HTTP
// statuses.
func TestBrowserSeesEveryRefusal(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Auth: hs256(t), MaxConnections: 1, HandshakeRatePerIP: 1000})
	origin := "Origin: http://" + n.Addr()
	for _, tc := range []struct {
		name, query string
		code        uint16
		reason      string
		status      int
	}{
		{"expired", "?token=" + token(t, "alice", -time.Minute), 4001, "token_expired: ", 401},
		{"invalid", "?token=garbage", 4003, "token_invalid: ", 401},
		{"bad user", "?token=" + token(t, "a.>", time.Hour), 4003, "invalid_user: ", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, status, err := pushtest.RawUpgrade(n.Addr(), tc.query, nil, origin)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if code, reason := c.CloseFrame(t, 5*time.Second); status != 101 || code != tc.code || !strings.HasPrefix(reason, tc.reason) {
				t.Fatalf("browser: status %d, close %d %q; want 101, %d %q...", status, code, reason, tc.code, tc.reason)
			}
			if status, body := handshake(t, n.WSURL()+tc.query, nil); status != tc.status || !strings.Contains(body, strings.TrimSuffix(tc.reason, ": ")) {
				t.Fatalf("non-browser: %d %s, want %d", status, body, tc.status)
			}
		})
	}
	// The node's one connection slot taken: the next browser hears 1013.
	_ = pushtest.RawDial(t, n.Addr(), "?token="+token(t, "alice", time.Hour), nil)
	c, status, err := pushtest.RawUpgrade(n.Addr(), "?token="+token(t, "bob", time.Hour), nil, origin)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if code, reason := c.CloseFrame(t, 5*time.Second); status != 101 || code != 1013 || !strings.HasPrefix(reason, "over_capacity: ") {
		t.Fatalf("full node: status %d close %d %q, want 101 1013 over_capacity", status, code, reason)
	}
}
