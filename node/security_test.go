package node_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// Security end to end (docs/SECURITY.md): who may join which doc, tokens
// that are refreshed or lapse, and IDs that try to reach other subjects.

func TestJoinAuthorization(t *testing.T) {
	t.Parallel() // it waits for its nodes to drain at cleanup, not working
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Auth: hs256(t)})

	granted := dialToken(t, n, signed(t, jwt.MapClaims{"sub": "alice", "docs": []string{"d1", "team-7/*"}}))
	plain := dialToken(t, n, signed(t, jwt.MapClaims{"sub": "bob"}))
	joinTok := func(sub, doc string, ttl time.Duration) string {
		return signed(t, jwt.MapClaims{"sub": sub, "doc": doc, "exp": time.Now().Add(ttl).Unix()})
	}
	for _, tc := range []struct {
		name  string
		c     *client.Conn
		frame string
		want  string // "joined" or an error code
	}{
		{"docs claim exact", granted, joinFrame("d1", ""), "joined"},
		{"docs claim prefix", granted, joinFrame("team-7/roadmap", ""), "joined"},
		{"docs claim other doc", granted, joinFrame("d2", ""), "forbidden"},
		{"docs claim other prefix", granted, joinFrame("team-70/x", ""), "forbidden"},
		{"no claim, no join token", plain, joinFrame("d1", ""), "forbidden"},
		{"join token", plain, joinFrame("d9", joinTok("bob", "d9", time.Hour)), "joined"},
		{"join token for another doc", plain, joinFrame("d8", joinTok("bob", "d9", time.Hour)), "forbidden"},
		{"join token for another user", plain, joinFrame("d8", joinTok("alice", "d8", time.Hour)), "forbidden"},
		{"expired join token", plain, joinFrame("d7", joinTok("bob", "d7", -time.Minute)), "token_expired"},
		{"tampered join token", plain, joinFrame("d7", joinTok("bob", "d7", time.Hour)+"x"), "token_invalid"},
		{"join token signed elsewhere", plain, joinFrame("d7", mustSign(t, jwt.MapClaims{"sub": "bob", "doc": "d7", "exp": time.Now().Add(time.Hour).Unix()}, "other-secret")), "token_invalid"},
		{"join token beats the claim", granted, joinFrame("d5", joinTok("alice", "d5", time.Hour)), "joined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := request(t, tc.c, tc.frame)
			got := f.Type
			if f.Type == "error" {
				got = f.Code
			}
			if got != tc.want {
				t.Fatalf("%s: got %+v, want %s", tc.frame, f, tc.want)
			}
		})
	}
	// An expired connection token with a docs claim does not even connect.
	if status, body := handshake(t, n.WSURL()+"?token="+signed(t, jwt.MapClaims{"sub": "eve", "docs": []string{"*"}, "exp": time.Now().Add(-time.Minute).Unix()}), nil); status != 401 || !strings.Contains(body, "token_expired") {
		t.Fatalf("expired connection token: %d %s", status, body)
	}
	// Only the authorized joins receive doc pushes.
	publish(t, nc, "push.doc.d1", nil, `"for d1"`, 1)
	expectPush(t, granted, "message", `"for d1"`)
	publish(t, nc, "push.doc.d9", nil, `"for d9"`, 1)
	expectPush(t, plain, "message", `"for d9"`)
	marker(t, nc, plain) // bob got nothing for d1
	if got := n.Metric(t, `pushd_joins_refused_total{reason="forbidden"}`); got != 5 {
		t.Fatalf("forbidden joins = %v, want 5", got)
	}

	// --join-authorization off lets any token join any doc.
	off := testnode.Start(t, ns.URL(), node.Config{NodeID: 1, Auth: hs256(t), JoinAuthorization: node.JoinOff})
	c := dialToken(t, off, signed(t, jwt.MapClaims{"sub": "carol"}))
	if f := request(t, c, joinFrame("anything", "")); f.Type != "joined" {
		t.Fatalf("join with authorization off: %+v", f)
	}
}

func TestRefreshAndTokenExpiry(t *testing.T) {
	t.Parallel() // it waits for a token to expire, not working
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Auth: hs256(t), SweepInterval: 50 * time.Millisecond})
	// exp has one-second resolution: two seconds ahead is at least one second away.
	exp := time.Now().Add(2 * time.Second).Unix()
	refresher := dialToken(t, n, signed(t, jwt.MapClaims{"sub": "alice", "exp": exp}))
	lapsed := dialToken(t, n, signed(t, jwt.MapClaims{"sub": "bob", "exp": exp}))

	for _, tc := range []struct{ tok, code string }{
		{signed(t, jwt.MapClaims{"sub": "mallory"}), "forbidden"},
		{signed(t, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()}), "token_expired"},
		{"garbage", "token_invalid"},
	} {
		if f := request(t, refresher, `{"type":"refresh","token":"`+tc.tok+`"}`); f.Type != "error" || f.Code != tc.code {
			t.Fatalf("bad refresh: %+v, want %s", f, tc.code)
		}
	}
	newExp := time.Now().Add(time.Hour).Unix()
	f := request(t, refresher, `{"type":"refresh","token":"`+signed(t, jwt.MapClaims{"sub": "alice", "exp": newExp, "docs": []string{"after-refresh"}})+`"}`)
	if f.Type != "refreshed" || !strings.Contains(fmt.Sprint(f), "") {
		t.Fatalf("refresh: %+v", f)
	}
	// The refreshed token's docs claim now applies.
	if f := request(t, refresher, joinFrame("after-refresh", "")); f.Type != "joined" {
		t.Fatalf("join granted by the refreshed token: %+v", f)
	}

	select {
	case <-lapsed.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("session with an expired token was not closed")
	}
	if code := closeCode(lapsed.Err()); code != 4001 {
		t.Fatalf("lapsed session closed with %v, want 4001", lapsed.Err())
	}
	// Well past the old exp, the refreshed session is alive and served.
	eventually(t, func() error {
		if time.Now().Unix() <= exp+1 {
			return errors.New("waiting for the old exp to pass")
		}
		return nil
	})
	publish(t, nc, "push.user.alice", nil, `"still here"`, 1)
	expectPush(t, refresher, "message", `"still here"`)
	if got := n.Metric(t, `pushd_connections_closed_total{reason="token_expired"}`); got != 1 {
		t.Fatalf("token_expired closes = %v, want 1", got)
	}
	if got := n.Metric(t, `pushd_token_refreshes_total{result="ok"}`); got != 1 {
		t.Fatalf("refreshes ok = %v", got)
	}
}

func TestRefreshedFrameCarriesExp(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Auth: hs256(t)})
	c := pushtest.RawDial(t, n.Addr(), "?token="+token(t, "alice", time.Hour), nil)
	if hello := c.TextFrame(t); !strings.Contains(hello, `"type":"hello"`) {
		t.Fatalf("hello %s", hello)
	}
	exp := time.Now().Add(2 * time.Hour).Unix()
	if err := c.Text(`{"type":"refresh","token":"` + signed(t, jwt.MapClaims{"sub": "alice", "exp": exp}) + `"}`); err != nil {
		t.Fatal(err)
	}
	if got, want := c.TextFrame(t), fmt.Sprintf(`{"type":"refreshed","exp":%d}`, exp); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// hostile IDs: each could address another NATS subject if it reached one.
// hostileIDs could address another subject than their own, or are not text.
var hostileIDs = []string{"*", ">", "a.>", "a.*", "a*b", ".", "..", ".a", "a.", "a..b", "", " ", "a b", "a\tb", "a\nb",
	"a\x00b", "a\x7fb", "a\u00a0b", strings.Repeat("x", 10<<10)}

func TestSubjectInjectionThroughIDs(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	// Everything the node publishes to NATS, to prove no hostile ID reached a subject.
	// A slice, not a channel the test closes: the node may still publish
	// (a disconnect event) while the test reads what it saw.
	var mu sync.Mutex
	var seen []string
	sub, err := nc.Subscribe(">", func(m *nats.Msg) {
		if !strings.HasPrefix(m.Subject, "_INBOX.") && !strings.HasPrefix(m.Subject, "$") {
			mu.Lock()
			seen = append(seen, m.Subject)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, Auth: hs256(t), MaxFrameSize: 65536})
	c := dial(t, n, "mallory")
	for _, id := range hostileIDs {
		if f := request(t, c, joinFrame(id, "")); f.Type != "error" || f.Code != "invalid_doc" {
			t.Fatalf("join %.40q: %+v, want invalid_doc", id, f)
		}
		pub := `{"type":"publish","doc":` + jsonString(id) + `,"data":1}`
		if f := request(t, c, pub); f.Type != "error" || f.Code != "not_joined" {
			t.Fatalf("publish to %.40q: %+v, want not_joined", id, f)
		}
		if f := request(t, c, `{"type":"ping"}`); f.Type != "pong" { // resets the bad-frame run
			t.Fatalf("ping: %+v", f)
		}
		q := "?user=" + urlQuery(id)
		if status, body := handshake(t, n.WSURL()+q, nil); status != http.StatusBadRequest || !strings.Contains(body, "invalid_user") {
			t.Fatalf("dev user %.40q: %d %s", id, status, body)
		}
		if status, _ := handshake(t, n.WSURL()+"?token="+signed(t, jwt.MapClaims{"sub": id}), nil); status != http.StatusBadRequest && status != http.StatusUnauthorized {
			t.Fatalf("token sub %.40q: %d", id, status)
		}
	}
	// Invalid UTF-8 cannot travel in a JSON text frame (the socket closes
	// with 1007); in a query it can.
	if status, body := handshake(t, n.WSURL()+"?user=a%FFb", nil); status != http.StatusBadRequest || !strings.Contains(body, "invalid_user") {
		t.Fatalf("dev user with invalid UTF-8: %d %s", status, body)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	marker(t, nc, c)
	mu.Lock()
	subjects := append([]string(nil), seen...)
	mu.Unlock()
	for _, s := range subjects {
		// The node alone publishes events and its sessions' marker pushes
		// (pushd's admin and cluster subjects are not the node's).
		if !strings.HasPrefix(s, "push.events.") && !strings.HasPrefix(s, "push.session.") {
			t.Errorf("node published on %q", s)
		}
	}
	if ok, why := n.Ready(); !ok {
		t.Fatalf("node not ready after the hostile IDs: %s", why)
	}
	dial(t, n, "newcomer")
}

func urlQuery(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

// TestClientPublishCannotReachAdminSubjects: a client's only way onto NATS is
// a publish frame for a joined, validated doc, which lands on
// <prefix>.up.doc.<doc>; nothing a client sends reaches <prefix>.admin.*.
func TestClientPublishCannotReachAdminSubjects(t *testing.T) {
	t.Parallel() // it waits out messages that must not come, not working
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true})
	adminMsgs, err := nc.SubscribeSync("push.admin.>")
	if err != nil {
		t.Fatal(err)
	}
	up, err := nc.SubscribeSync("push.up.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, n, "eve")
	for _, doc := range []string{"*", ">", "admin.>", "admin.*", ".admin", "admin..kick", ""} {
		if err := c.Join(ctxT(t), doc); err == nil {
			t.Fatalf("join %q accepted", doc)
		}
	}
	// Dotted doc IDs are fine: they stay under push.up.doc.
	for _, doc := range []string{"admin", "admin.kick"} {
		if err := c.Join(ctxT(t), doc); err != nil {
			t.Fatal(err)
		}
	}
	for _, doc := range []string{"admin", "admin.kick", ">"} {
		if err := c.Publish(doc, "kick", map[string]string{"user": "alice"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Send([]byte(`{"type":"kick","user":"alice"}`)); err != nil {
		t.Fatal(err)
	}
	// Frames are handled in order: once the pong is back, all of the above was.
	if err := c.Send([]byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := c.Reply(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if f.Type == "pong" {
			break
		}
	}
	for _, want := range []string{"push.up.doc.admin", "push.up.doc.admin.kick"} {
		m, err := up.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != want {
			t.Fatalf("client publish went to %s, want %s", m.Subject, want)
		}
	}
	if m, err := adminMsgs.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("a client frame reached %s", m.Subject)
	} else if err != nats.ErrTimeout {
		t.Fatal(err)
	}
	if m, err := up.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("unexpected upstream message on %s", m.Subject)
	}
}
