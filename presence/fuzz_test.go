package presence

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pushd/pushd/contract"
)

// bare is a tracker with no NATS behind it, for driving a doc's state
// directly: fetches queue up and nothing runs them.
func bare() *Tracker {
	t := &Tracker{
		cfg:        Config{Node: 9, Instance: "self", Window: DefaultWindow, LargeDoc: DefaultLargeDoc},
		log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		rounds:     map[string]*docState{},
		dirtyM:     map[*docState]struct{}{},
		kick:       make(chan struct{}, 1),
		byInst:     map[string]map[*docState]struct{}{},
		firstSeen:  map[string]seen{},
		live:       map[string]bool{},
		tombstones: map[string]time.Time{},
	}
	t.fetches.init(t)
	t.metrics = newMetrics(t)
	return t
}

// consistent checks a doc's counts against its members.
func consistent(t *testing.T, d *docState) {
	t.Helper()
	n := len(d.local)
	users := map[string]int{}
	for _, l := range d.local {
		users[l.m.User]++
	}
	for _, r := range d.remotes {
		n += len(r.members)
		for sid, m := range r.members {
			if sid != m.SID {
				t.Fatalf("member %+v under %s", m, sid)
			}
			users[m.User]++
		}
	}
	if n != d.count || len(users) != len(d.users) {
		t.Fatalf("count %d users %d, members say %d and %d", d.count, len(d.users), n, len(users))
	}
	for u, c := range users {
		if d.users[u] != c {
			t.Fatalf("user %s counted %d, has %d", u, d.users[u], c)
		}
	}
	if len(d.all()) != d.count {
		t.Fatalf("all() lists %d of %d", len(d.all()), d.count)
	}
}

// FuzzDeltas feeds lines of arbitrary bytes to the doc subject's decoder
// and applies what decodes, in order, with snapshots and node losses in
// between: nothing panics and the counts always match the members.
func FuzzDeltas(f *testing.F) {
	j := func(v any) []byte { b, _ := json.Marshal(v); return b }
	m1 := contract.Member{SID: "1099511631872", User: "alice", Node: 1}
	m2 := contract.Member{SID: "1099515830272", User: "bob", Node: 1, Info: json.RawMessage(`{"n":1}`)}
	f.Add(bytes.Join([][]byte{
		j(message{Op: opJoin, Node: 1, Inst: "a", Epoch: 1, Seq: 1, Member: &m1}),
		j(message{Op: opJoin, Node: 1, Inst: "a", Epoch: 1, Seq: 3, Member: &m2}),
		j(message{Op: opLeave, Node: 1, Inst: "a", Epoch: 1, Seq: 2, SID: m1.SID, Reason: "left"}),
		j(snapshot{Node: 1, Inst: "a", Epoch: 1, Seq: 3, Members: []contract.Member{m2}}),
		[]byte("lost a"),
		j(message{Op: opJoin, Node: 1, Inst: "a", Epoch: 2, Seq: 1, Member: &m1}),
	}, []byte("\n")))
	f.Add([]byte(`{"op":"join","node":1,"inst":"a","epoch":1,"seq":1,"member":{"sid":"1099511631872","user":"u","node":1,"info":"\xff"}}`))
	f.Add([]byte(`{"op":"leave","node":1023,"inst":"z","epoch":18446744073709551615,"seq":18446744073709551615,"sid":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := bare()
		d := newDocState(tr, "doc", 1)
		d.listeners = 1
		for _, line := range bytes.Split(b, []byte("\n")) {
			switch {
			case bytes.HasPrefix(line, []byte("lost ")):
				if r := d.remotes[string(line[5:])]; r != nil {
					d.drop(r, contract.LeaveNodeLost)
				}
			case bytes.Contains(line, []byte(`"members"`)):
				if s, err := decodeSnapshot(line); err == nil && s.Inst != "self" {
					tr.snapshotPage(d, s)
				}
			default:
				m, err := decodeMessage(line)
				if err != nil || m.Op == opSync || m.Inst == "self" {
					continue
				}
				d.delta(m)
			}
			consistent(t, d)
		}
		for _, ev := range d.takeEvents(time.Time{}) {
			if ev.Doc != "doc" || ev.First > ev.Last {
				t.Fatalf("batch %+v", ev)
			}
		}
	})
}

// FuzzDecodeQuery: a backend's query body never panics the decoder, and a
// query that decodes has a usable page size and cursor.
func FuzzDecodeQuery(f *testing.F) {
	f.Add([]byte(`{"limit":3,"cursor":"1099511631872"}`))
	f.Add([]byte(`{"stats":true}`))
	f.Add([]byte(`{"limit":-5,"cursor":"-1"}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := DecodeQuery(b)
		if err != nil {
			return
		}
		if n := q.PageSize(); n < 1 || n > contract.MaxPageSize {
			t.Fatalf("page size %d", n)
		}
		if q.Cursor != "" && q.After() <= 0 {
			t.Fatalf("cursor %q accepted", q.Cursor)
		}
	})
}
