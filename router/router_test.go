package router

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/snowflake"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/pushd/pushd/internal/pushtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSubjectsRoundTrip(t *testing.T) {
	s := NewSubjects("")
	for _, tc := range []struct{ kind, key, subject string }{
		{KindUser, "alice", "push.user.alice"},
		{KindDoc, "team-7/d", "push.doc.team-7/d"},
		{KindSession, "1862263214372491264", "push.session.817.1862263214372491264"},
		{KindAll, "", "push.all"},
	} {
		if got := s.For(tc.kind, tc.key); got != tc.subject {
			t.Errorf("For(%s,%s) = %s, want %s", tc.kind, tc.key, got, tc.subject)
		}
		kind, key, ok := s.Parse(tc.subject)
		if !ok || kind != tc.kind || key != tc.key {
			t.Errorf("Parse(%s) = %s,%s,%v", tc.subject, kind, key, ok)
		}
	}
	for _, bad := range []string{"push", "push.", "pushx.user.a", "push.user", "push.user.", "push.admin.nodes", "push.up.doc.d", "other.user.a",
		"push.session.123", "push.session.3."} {
		if _, _, ok := s.Parse(bad); ok {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if got := NewSubjects("acme.push").Upstream("d"); got != "acme.push.up.doc.d" {
		t.Errorf("Upstream with prefix = %s", got)
	}
}

func TestParseTimestampUnits(t *testing.T) {
	const ns = int64(1_795_000_000_123_456_789)
	for in, want := range map[string]int64{
		"1795000000123456789": ns,
		"1795000000123456":    ns / 1e3 * 1e3,
		"1795000000123":       ns / 1e6 * 1e6,
		"":                    0,
		"-5":                  0,
		"soon":                0,
	} {
		if got := ParseTimestamp(in); got != want {
			t.Errorf("ParseTimestamp(%q) = %d, want %d", in, got, want)
		}
	}
}

type recorder struct {
	mu  sync.Mutex
	got []Delivery
	n   int
}

func (r *recorder) Deliver(d *Delivery) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := *d
	c.Data = append([]byte(nil), d.Data...)
	r.got = append(r.got, c)
	return r.n
}

func (r *recorder) deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.got...)
}

func TestRouterRoutesHeadersAndReports(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rec := &recorder{n: 3}
	r, err := New(Config{Conn: nc, Deliverer: rec, NodeID: 9, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Subscribe(KindUser, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := r.Subscribe(KindUser, "alice"); err != nil { // idempotent
		t.Fatal(err)
	}
	if got := r.Subscriptions(); got != 3 {
		t.Fatalf("subscriptions %d, want 3 (all, the node's sessions, alice)", got)
	}
	if err := r.Subscribe(KindSession, "1"); err == nil {
		t.Fatal("a per-session subscription was accepted")
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	pub := ns.Connect(t)
	msg := &nats.Msg{Subject: "push.user.alice", Data: []byte(`{"a":1}`), Header: nats.Header{}}
	msg.Header.Set(HeaderEvent, "e")
	msg.Header.Set(HeaderID, "i")
	msg.Header.Set(HeaderExcludeSession, "42")
	msg.Header.Set(HeaderTimestamp, "1795000000123")
	reply, err := pub.RequestMsg(msg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(reply.Data) != `{"node":9,"delivered":3}` {
		t.Fatalf("delivery report %s", reply.Data)
	}
	d := rec.deliveries()[0]
	if d.Kind != KindUser || d.Key != "alice" || d.Event != "e" || d.ID != "i" || d.ExcludeSession != "42" ||
		d.SentUnixNano != 1795000000123*1e6 || string(d.Data) != `{"a":1}` {
		t.Fatalf("delivery %+v", d)
	}
	// Without headers: default event; nothing delivered means no report.
	rec.mu.Lock()
	rec.n = 0
	rec.mu.Unlock()
	if _, err := pub.Request("push.all", []byte("x"), 300*time.Millisecond); err == nil {
		t.Fatal("a report was sent for zero deliveries")
	}
	pushtest.Eventually(t, 5*time.Second, func() error {
		if ds := rec.deliveries(); len(ds) < 2 || ds[1].Event != DefaultEvent || ds[1].Kind != KindAll {
			return errAgain
		}
		return nil
	})
	// Upstream and events carry the contract's subjects and headers.
	up, err := pub.SubscribeSync("push.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := r.PublishUpstream("d", "7", "alice", "edit", []byte(`[1]`)); err != nil {
		t.Fatal(err)
	}
	m, err := up.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "push.up.doc.d" || m.Header.Get(HeaderSession) != "7" || m.Header.Get(HeaderUser) != "alice" ||
		m.Header.Get(HeaderEvent) != "edit" || m.Header.Get(HeaderNode) != "9" {
		t.Fatalf("upstream %s %v", m.Subject, m.Header)
	}
	if err := r.Unsubscribe(KindUser, "alice"); err != nil {
		t.Fatal(err)
	}
	if got := r.Subscriptions(); got != 2 {
		t.Fatalf("subscriptions after unsubscribe %d, want 2", got)
	}
}

type again struct{}

func (again) Error() string { return "not yet" }

var errAgain = again{}

// TestSessionSubjectCarriesTheNode checks that a session's subject names the
// node that minted its ID, which is the one node subscribed to it.
func TestSessionSubjectCarriesTheNode(t *testing.T) {
	s := NewSubjects("")
	for _, node := range []int64{0, 1, 7, 1023} {
		gen, err := snowflake.NewNode(node)
		if err != nil {
			t.Fatal(err)
		}
		sid := gen.Generate().String()
		if got := SessionNode(sid); got != node {
			t.Fatalf("SessionNode(%s) = %d, want %d", sid, got, node)
		}
		want := "push.session." + strconv.FormatInt(node, 10) + "." + sid
		if got := s.Session(sid); got != want {
			t.Fatalf("Session(%s) = %s, want %s", sid, got, want)
		}
		if kind, key, ok := s.Parse(want); !ok || kind != KindSession || key != sid {
			t.Fatalf("Parse(%s) = %s, %s, %v", want, kind, key, ok)
		}
		if got, wild := s.NodeSessions(node), "push.session."+strconv.FormatInt(node, 10)+".*"; got != wild {
			t.Fatalf("NodeSessions(%d) = %s", node, got)
		}
	}
	for _, bad := range []string{"", "abc", "-5", "0", "1.5"} {
		if got := SessionNode(bad); got != -1 {
			t.Fatalf("SessionNode(%q) = %d, want -1", bad, got)
		}
	}
}
