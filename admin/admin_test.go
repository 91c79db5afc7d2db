package admin_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pushd/pushd/admin"
	"github.com/pushd/pushd/cluster"
	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/internal/pushtest"
)

// memSource is a node's session table in memory.
type memSource struct {
	id       int64
	sessions []admin.SessionInfo // ordered by SID
	kicked   []string
	ghosts   []int64 // peers named in replies that never answer
}

func (m *memSource) ID() int64             { return m.id }
func (m *memSource) Version() string       { return "test" }
func (m *memSource) Ready() (bool, string) { return true, "" }
func (m *memSource) Sessions() int         { return len(m.sessions) }
func (m *memSource) Users() int            { return 3 }
func (m *memSource) Docs() int             { return 0 }

// Nodes: both test nodes know of each other, and of any in m.ghosts.
func (m *memSource) Nodes() []int64 { return append([]int64{1, 2}, m.ghosts...) }

func (m *memSource) Self() cluster.Member {
	return cluster.Member{Node: m.id, Instance: "i" + strconv.FormatInt(m.id, 10), StartedAt: time.Now().Add(-time.Minute)}
}

func (m *memSource) Duplicate() (cluster.Member, bool) { return cluster.Member{}, false }

func (m *memSource) SessionInfos(req contract.SessionFilter) ([]admin.SessionInfo, string, int) {
	var match []admin.SessionInfo
	for _, s := range m.sessions {
		if req.User == "" || s.User == req.User {
			match = append(match, s)
		}
	}
	total := len(match)
	after, _ := strconv.ParseInt(req.Cursor, 10, 64)
	match = slices.DeleteFunc(match, func(s admin.SessionInfo) bool { n, _ := strconv.ParseInt(s.SID, 10, 64); return n <= after })
	next := ""
	if limit := req.PageSize(); len(match) > limit {
		match = match[:limit]
		next = match[len(match)-1].SID
	}
	return match, next, total
}

func (m *memSource) SessionInfo(sid string) (admin.SessionInfo, bool) {
	for _, s := range m.sessions {
		if s.SID == sid {
			return s, true
		}
	}
	return admin.SessionInfo{}, false
}

func (m *memSource) Kick(sid, user, _ string) []string {
	var out []string
	for _, s := range m.sessions {
		if s.SID == sid || s.User == user {
			out = append(out, s.SID)
		}
	}
	m.kicked = append(m.kicked, out...)
	return out
}

func (m *memSource) Stats() contract.Stats {
	return contract.Stats{At: time.Now(), Connections: len(m.sessions), PushesReceived: uint64(10 * m.id)}
}

func TestScatterGatherAcrossTwoServers(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	// Node 1 holds SIDs 1,3,5,...; node 2 holds 2,4,6,... (users u0..u2).
	srcs := map[int64]*memSource{1: {id: 1}, 2: {id: 2}}
	for i := int64(1); i <= 10; i++ {
		src := srcs[2-i%2]
		src.sessions = append(src.sessions, admin.SessionInfo{SID: strconv.FormatInt(i, 10), User: "u" + strconv.FormatInt(i%3, 10), Node: src.id, Docs: []string{}})
	}
	for id, src := range srcs {
		srv, err := admin.NewServer(admin.ServerConfig{Conn: ns.Connect(t), Node: src, Cluster: src, Address: "127.0.0.1:" + strconv.FormatInt(8000+id, 10)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Close() })
	}
	ctx := context.Background()

	// Known nodes: stops as soon as both answered, reports node 3 missing.
	known := admin.NewClient(admin.ClientConfig{Conn: nc, Timeout: 300 * time.Millisecond, Known: []int64{1, 2, 3}})
	res, err := known.Nodes(ctx)
	if err != nil || len(res.Nodes) != 2 || !slices.Equal(res.Missing, []int64{3}) || res.Nodes[0].Node != 1 || res.Nodes[1].Address != "127.0.0.1:8002" {
		t.Fatalf("Nodes = %+v, %v", res, err)
	}
	fast := admin.NewClient(admin.ClientConfig{Conn: nc, Timeout: 10 * time.Second, Known: []int64{1, 2}})
	start := time.Now()
	if _, err := fast.Nodes(ctx); err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("Nodes with every known node answering took %s: %v", time.Since(start), err)
	}

	c := admin.NewClient(admin.ClientConfig{Conn: nc, Timeout: 300 * time.Millisecond})
	var seen []string
	cursor := ""
	for {
		page, err := c.Sessions(ctx, admin.SessionsQuery{Limit: 3, Cursor: cursor})
		if err != nil || page.Total != 10 || page.Nodes != 2 {
			t.Fatalf("page %+v, %v", page, err)
		}
		for _, s := range page.Sessions {
			seen = append(seen, s.SID)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if want := []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}; !slices.Equal(seen, want) {
		t.Fatalf("paged %q, want %q", seen, want)
	}
	node2 := int64(2)
	page, err := c.Sessions(ctx, admin.SessionsQuery{User: "u1", Node: &node2})
	if err != nil || page.Nodes != 1 || page.Total != 2 || page.Sessions[0].SID != "4" || page.Sessions[1].SID != "10" {
		t.Fatalf("u1 on node 2: %+v, %v", page, err)
	}

	if s, err := c.Session(ctx, "7"); err != nil || s.Node != 1 || s.User != "u1" {
		t.Fatalf("Session(7) = %+v, %v", s, err)
	}
	if _, err := c.Session(ctx, "99"); !errors.Is(err, admin.ErrNotFound) {
		t.Fatalf("Session(99) error %v, want ErrNotFound", err)
	}

	kick, err := c.Kick(ctx, "", "u2", "bye")
	if err != nil || kick.Closed != 3 || kick.Nodes != 2 || !slices.Equal(kick.SIDs, []string{"2", "5", "8"}) {
		t.Fatalf("Kick = %+v, %v", kick, err)
	}

	prev, err := c.Stats(ctx)
	if err != nil || len(prev) != 2 {
		t.Fatalf("Stats = %+v, %v", prev, err)
	}
	cur := slices.Clone(prev)
	for i := range cur {
		cur[i].At = prev[i].At.Add(2 * time.Second)
		cur[i].PushesReceived += 20
		cur[i].SlowConsumers++
	}
	rates := admin.Rates(prev, cur)
	total := admin.Total(rates)
	if len(rates) != 2 || rates[0].PushesInPerSec != 10 || total.PushesInPerSec != 20 || total.SlowConsumers != 2 || total.Connections != 10 || total.Node != -1 {
		t.Fatalf("rates %+v total %+v", rates, total)
	}

	// Without Consul, the peers every reply names are who to wait for: a
	// long timeout is not waited out when they all answered.
	slow := admin.NewClient(admin.ClientConfig{Conn: nc, Timeout: 20 * time.Second})
	start = time.Now()
	if res, err := slow.Nodes(ctx); err != nil || len(res.Nodes) != 2 || len(res.Missing) != 0 {
		t.Fatalf("Nodes = %+v, %v", res, err)
	}
	if page, err := slow.Sessions(ctx, admin.SessionsQuery{User: "u0"}); err != nil || page.Total != 3 {
		t.Fatalf("Sessions = %+v, %v", page, err)
	}
	if _, err := slow.Session(ctx, "99"); !errors.Is(err, admin.ErrNotFound) {
		t.Fatalf("Session(99) error %v, want ErrNotFound", err)
	}
	if st, err := slow.Stats(ctx); err != nil || len(st) != 2 {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("four requests took %s: the client waited out its timeout though every peer had answered", took)
	}
	// A peer that is named but silent is waited for, then reported.
	srcs[1].ghosts = []int64{7}
	res, err = known.Nodes(ctx)
	if err != nil || !slices.Equal(res.Missing, []int64{3, 7}) {
		t.Fatalf("Nodes with a silent peer = %+v, %v; want 3 (Consul) and 7 (a peer) missing", res, err)
	}

	// Nobody on another prefix: NATS says there are no responders, at once.
	other := admin.NewClient(admin.ClientConfig{Conn: nc, Prefix: "other", Timeout: 10 * time.Second})
	start = time.Now()
	if _, err := other.Nodes(ctx); !errors.Is(err, admin.ErrNoNodes) || time.Since(start) > 5*time.Second {
		t.Fatalf("Nodes on an empty prefix: %v after %s", err, time.Since(start))
	}
	res2, err := other.Publish(ctx, admin.Message{Target: contract.TargetAll, Data: []byte("x")}, 5*time.Second)
	if err != nil || res2.Delivered != 0 || res2.Subject != "other.all" || res2.ID == "" {
		t.Fatalf("Publish to nobody: %+v, %v", res2, err)
	}
}
