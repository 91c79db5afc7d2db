package node

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/pushd/pushd/contract"
)

// nopBus is a Bus that subscribes to nothing, for tests that build sessions
// directly in the hub.
type nopBus struct{}

func (nopBus) Subscribe(contract.Target, string) error   { return nil }
func (nopBus) Unsubscribe(contract.Target, string) error { return nil }
func (nopBus) Sync(context.Context) error                { return nil }
func (nopBus) AfterSync(fn func(error))                  { fn(nil) }
func (nopBus) Connected() bool                           { return true }
func (nopBus) PublishReceipt(string, []byte) error       { return nil }
func (nopBus) Position(contract.Target) (uint64, bool)   { return 0, false }
func (nopBus) Replay(context.Context, contract.Target, string, uint64) (contract.Replay, error) {
	return contract.Replay{}, contract.ErrNoHistory
}
func (nopBus) Range(context.Context, contract.Target, string, uint64, uint64) ([]contract.Push, error) {
	return nil, contract.ErrNoHistory
}
func (nopBus) PublishEvent(string, []byte) error                            { return nil }
func (nopBus) PublishUpstream(string, string, string, string, []byte) error { return nil }

// fillHub builds a node holding sessions sessions spread over users users,
// each writing to a discarding conn, and returns it.
func fillHub(tb testing.TB, sessions, users int) *Node {
	tb.Helper()
	n, err := New(Config{NodeID: 7, Bus: nopBus{}, Dev: true})
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	for i := range sessions {
		id := n.ids.Generate().Int64()
		s := &session{node: n, id: id, sid: newSID(id), user: "user-" + strconv.Itoa(i%users), remote: "127.0.0.1:1", since: now}
		s.t = &wsTransport{s: s, nc: &discardConn{}}
		s.lastSeen.Store(now.UnixNano())
		if err := n.register(s); err != nil {
			tb.Fatal(err)
		}
		if i%10 == 0 {
			doc := "doc-" + strconv.Itoa(i%100)
			if _, err := n.hub.docs.add(doc, s, func() error { return nil }); err != nil {
				tb.Fatal(err)
			}
			s.docs = append(s.docs, doc)
		}
	}
	return n
}

func TestSessionInfosFiltersAndPages(t *testing.T) {
	n := fillHub(t, 1000, 100)
	infos, next, total := n.SessionInfos(contract.SessionFilter{User: "user-3"})
	if len(infos) != 10 || total != 10 || next != "" {
		t.Fatalf("user filter: %d infos, total %d, next %q; want 10, 10, \"\"", len(infos), total, next)
	}
	for _, in := range infos {
		if in.User != "user-3" || in.Node != 7 {
			t.Fatalf("info %+v: want user-3 on node 7", in)
		}
	}
	// doc-0 is joined by sessions 0, 100, 200, ... (users user-0).
	infos, _, total = n.SessionInfos(contract.SessionFilter{Doc: "doc-0"})
	if total != 10 || len(infos) != 10 || infos[0].Docs[0] != "doc-0" {
		t.Fatalf("doc filter: %d infos, total %d", len(infos), total)
	}
	if infos, _, total = n.SessionInfos(contract.SessionFilter{User: "user-1", Doc: "doc-0"}); total != 0 || len(infos) != 0 {
		t.Fatalf("user-1 in doc-0: %d", total)
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		infos, next, total := n.SessionInfos(contract.SessionFilter{Limit: 300, Cursor: cursor})
		if total != 1000 {
			t.Fatalf("total %d, want 1000", total)
		}
		for i, in := range infos {
			if seen[in.SID] {
				t.Fatalf("sid %s twice", in.SID)
			}
			seen[in.SID] = true
			if i > 0 {
				a, _ := strconv.ParseInt(infos[i-1].SID, 10, 64)
				b, _ := strconv.ParseInt(in.SID, 10, 64)
				if a >= b {
					t.Fatalf("page not ordered by sid: %d then %d", a, b)
				}
			}
		}
		pages++
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 1000 || pages != 4 {
		t.Fatalf("paged %d sessions in %d pages, want 1000 in 4", len(seen), pages)
	}
	if _, ok := n.SessionInfo("123"); ok {
		t.Fatal("unknown sid found")
	}
	infos, _, _ = n.SessionInfos(contract.SessionFilter{Limit: 1})
	if in, ok := n.SessionInfo(infos[0].SID); !ok || in.SID != infos[0].SID {
		t.Fatalf("SessionInfo(%s) = %+v, %v", infos[0].SID, in, ok)
	}
	if st := n.Stats(); st.Connections != 1000 || st.Users != 100 || st.Docs != 10 {
		t.Fatalf("stats %+v", st)
	}
}

// BenchmarkSessionsByUser looks one user up among 100k sessions (10 per
// user), as `pushctl sessions --user` does.
func BenchmarkSessionsByUser(b *testing.B) {
	n := fillHub(b, 100_000, 10_000)
	b.ResetTimer()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		infos, _, _ := n.SessionInfos(contract.SessionFilter{User: "user-" + strconv.Itoa(i%10_000)})
		if len(infos) != 10 {
			b.Fatalf("%d sessions, want 10", len(infos))
		}
	}
}

// BenchmarkSessionsPage lists the first page of 100k sessions unfiltered.
func BenchmarkSessionsPage(b *testing.B) {
	n := fillHub(b, 100_000, 10_000)
	b.ResetTimer()
	for b.Loop() {
		if infos, _, _ := n.SessionInfos(contract.SessionFilter{}); len(infos) != contract.DefaultPageSize {
			b.Fatalf("%d sessions", len(infos))
		}
	}
}
