package node_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
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
	"github.com/pushd/pushd/presence"
)

// presenceNode runs a dev node with presence: node heartbeats every 100ms
// (a stopped node is gone within 400ms) and the given coalescing window.
func presenceNode(t *testing.T, url string, id int64, window time.Duration, cfg node.Config) *testnode.Node {
	t.Helper()
	cfg.Dev, cfg.NodeID = true, id
	return testnode.StartWith(t, url, cfg, testnode.Options{Presence: &presence.Config{Window: window, LargeDoc: 50}})
}

func join(t *testing.T, c *client.Conn, doc string, events bool) {
	t.Helper()
	var err error
	if events {
		err = c.JoinPresence(pushtest.Ctx(t), doc)
	} else {
		err = c.Join(pushtest.Ctx(t), doc)
	}
	if err != nil {
		t.Fatalf("%s joins %s: %v", c.SID(), doc, err)
	}
}

// sids lists the members' session IDs, in order.
func sids(ms []client.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.SID
	}
	return out
}

// want is the session IDs of cs, ordered numerically as pages are.
func want(cs ...*client.Conn) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.SID()
	}
	return sortSIDs(out)
}

func sortSIDs(sids []string) []string {
	slices.SortFunc(sids, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return sids
}

// allMembers pages through doc's presence as c sees it, limit a page.
func allMembers(t *testing.T, c *client.Conn, doc string, limit int) ([]string, client.Frame, error) {
	t.Helper()
	var out []string
	var first client.Frame
	cursor := ""
	for page := 0; ; page++ {
		f, err := c.Presence(pushtest.Ctx(t), doc, limit, cursor)
		if err != nil {
			return nil, f, err
		}
		if page == 0 {
			first = f
		}
		if limit > 0 && len(f.Members) > limit {
			t.Fatalf("page of %d members, limit %d", len(f.Members), limit)
		}
		out = append(out, sids(f.Members)...)
		if f.Next == "" {
			return out, first, nil
		}
		if page > 100 {
			t.Fatal("presence pages do not end")
		}
		cursor = f.Next
	}
}

// TestPresenceAcrossNodes: members on three nodes are listed once each, to
// a client on any node (one that joined, one that did not, on a node that
// does not hold the doc), to a backend over NATS, a page at a time.
func TestPresenceAcrossNodes(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n1 := presenceNode(t, ns.URL(), 1, 20*time.Millisecond, node.Config{})
	n2 := presenceNode(t, ns.URL(), 2, 20*time.Millisecond, node.Config{})
	n3 := presenceNode(t, ns.URL(), 3, 20*time.Millisecond, node.Config{})

	a1 := pushtest.Dial(t, n1.WSURL(), "alice")
	a2 := pushtest.Dial(t, n2.WSURL(), "alice")
	b2 := pushtest.Dial(t, n2.WSURL(), "bob")
	c3 := pushtest.Dial(t, n3.WSURL(), "carol")
	d3 := pushtest.Dial(t, n3.WSURL(), "dave")
	outsider := pushtest.Dial(t, n1.WSURL(), "eve")
	members := []*client.Conn{a1, a2, b2, c3, d3}
	for _, c := range members {
		join(t, c, "doc", false)
	}
	join(t, d3, "other", false) // another doc on the same node stays apart
	expect := want(members...)

	// Every node holding the doc converges on the same members; the
	// outsider's node (n1 holds the doc, via a1) and a node holding nothing
	// answer too.
	far := presenceNode(t, ns.URL(), 4, 20*time.Millisecond, node.Config{})
	stranger := pushtest.Dial(t, far.WSURL(), "frank")
	for _, c := range []*client.Conn{a1, b2, c3, outsider, stranger} {
		pushtest.Eventually(t, 5*time.Second, func() error {
			got, first, err := allMembers(t, c, "doc", 2)
			if err != nil {
				return err
			}
			if !slices.Equal(got, expect) {
				return fmt.Errorf("client %s sees %v, want %v", c.SID(), got, expect)
			}
			if *first.Sessions != 5 || *first.Users != 4 || first.Doc != "doc" {
				return fmt.Errorf("counts %d sessions / %d users of %q, want 5 / 4 of doc", *first.Sessions, *first.Users, first.Doc)
			}
			return nil
		})
	}
	// Members carry who, where and since when.
	f, err := stranger.Presence(pushtest.Ctx(t), "doc", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Members {
		if m.Node != contract.SessionNode(m.SID) || m.JoinedAt.IsZero() || m.User == "" {
			t.Fatalf("member %+v", m)
		}
	}
	st, err := stranger.PresenceStats(pushtest.Ctx(t), "doc")
	if err != nil || *st.Sessions != 5 || *st.Users != 4 || st.Members != nil {
		t.Fatalf("presence_stats %+v %v", st, err)
	}

	// A backend asks over NATS: one holder answers, a page at a time.
	var got []string
	cursor := ""
	for {
		body, _ := json.Marshal(contract.PresenceQuery{Limit: 3, Cursor: cursor})
		m, err := nc.Request("push.presence.query.doc", body, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var p contract.PresencePage
		if err := json.Unmarshal(m.Data, &p); err != nil {
			t.Fatal(err)
		}
		if p.Sessions != 5 || p.Users != 4 || len(p.Members) > 3 || p.Node < 1 || p.Node > 3 {
			t.Fatalf("backend page %+v", p)
		}
		for _, mb := range p.Members {
			got = append(got, mb.SID)
		}
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	if !slices.Equal(got, expect) {
		t.Fatalf("backend pages %v, want %v", got, expect)
	}

	// Nobody holds a doc: empty at once, not after a timeout.
	start := time.Now()
	m, err := nc.Request("push.presence.query.nobody-here", nil, 2*time.Second)
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("presence of a doc nobody holds: %v %v, want no responders", m, err)
	}
	f, err = stranger.Presence(pushtest.Ctx(t), "nobody-here", 0, "")
	if err != nil || len(f.Members) != 0 || *f.Sessions != 0 {
		t.Fatalf("client presence of a doc nobody holds: %+v %v", f, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("empty presence took %s", took)
	}

	// Leaving and disconnecting remove members everywhere.
	if err := a2.Leave(pushtest.Ctx(t), "doc"); err != nil {
		t.Fatal(err)
	}
	_ = c3.Close()
	expect = want(a1, b2, d3)
	pushtest.Eventually(t, 5*time.Second, func() error {
		for _, c := range []*client.Conn{a1, b2, stranger} {
			got, _, err := allMembers(t, c, "doc", 0)
			if err != nil {
				return err
			}
			if !slices.Equal(got, expect) {
				return fmt.Errorf("%s sees %v, want %v", c.SID(), got, expect)
			}
		}
		return nil
	})
}

// presenceEvents reads c's presence_diff frames for doc until n events
// came, and returns them.
func presenceEvents(t *testing.T, c *client.Conn, doc string, n int) []client.PresenceChange {
	t.Helper()
	var out []client.PresenceChange
	for len(out) < n {
		f, err := c.Next(pushtest.Ctx(t))
		if err != nil {
			t.Fatalf("waiting for presence events (%d of %d so far: %+v): %v", len(out), n, out, err)
		}
		if f.Type != "presence_diff" || f.Doc != doc {
			t.Fatalf("got %+v, want a presence_diff of %s", f, doc)
		}
		out = append(out, f.Events...)
	}
	if len(out) != n {
		t.Fatalf("got %d presence events, want %d: %+v", len(out), n, out)
	}
	return out
}

func eventString(e client.PresenceChange) string {
	if e.Event == "leave" {
		return "leave " + e.SID + " " + e.Reason
	}
	return e.Event + " " + e.SID
}

// TestPresenceEventsInOrder: without coalescing, every join and leave on
// other nodes reaches a listening member in order, with the reason; a
// member that did not ask gets none, and nobody hears of its own join.
func TestPresenceEventsInOrder(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n1 := presenceNode(t, ns.URL(), 1, -1, node.Config{})
	n2 := presenceNode(t, ns.URL(), 2, -1, node.Config{})
	watcher := pushtest.Dial(t, n1.WSURL(), "watcher")
	quiet := pushtest.Dial(t, n1.WSURL(), "quiet")
	join(t, watcher, "doc", true)
	join(t, quiet, "doc", false)

	a := pushtest.Dial(t, n2.WSURL(), "alice")
	b := pushtest.Dial(t, n2.WSURL(), "bob")
	join(t, a, "doc", false)
	join(t, b, "doc", false)
	if err := a.Leave(pushtest.Ctx(t), "doc"); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	evs := presenceEvents(t, watcher, "doc", 5)
	got := make([]string, len(evs))
	for i, e := range evs {
		got[i] = eventString(e)
	}
	wantEvents := []string{"join " + quiet.SID(), "join " + a.SID(), "join " + b.SID(), "leave " + a.SID() + " left", "leave " + b.SID() + " disconnected"}
	if !slices.Equal(got, wantEvents) {
		t.Fatalf("events\n %v\nwant\n %v", got, wantEvents)
	}
	if evs[1].User != "alice" || evs[1].Node != 2 || evs[1].JoinedAt.IsZero() || evs[3].User != "alice" {
		t.Fatalf("events carry who and where: %+v", evs)
	}
	// quiet asked for nothing: the next push it sees is a marker.
	nc := ns.Connect(t)
	pushtest.Marker(t, nc, quiet)
	pushtest.Marker(t, nc, watcher)
}

// TestPresenceCoalescing: within a window, changes reach a listener as one
// frame, and a join and leave of one session cancel out; above the large
// doc size, frames carry counts only.
func TestPresenceCoalescing(t *testing.T) {
	ns := pushtest.RunNATS(t)
	const window = 300 * time.Millisecond
	n1 := presenceNode(t, ns.URL(), 1, window, node.Config{})
	watcher := pushtest.Dial(t, n1.WSURL(), "watcher")
	join(t, watcher, "doc", true)

	// A quiet doc's first change goes out at once; what follows within the
	// window waits for it and goes out together.
	first := pushtest.Dial(t, n1.WSURL(), "first")
	join(t, first, "doc", false)
	start := time.Now()
	f, err := watcher.Next(pushtest.Ctx(t))
	if err != nil || len(f.Events) != 1 || f.Events[0].SID != first.SID() {
		t.Fatalf("first change: %+v %v", f, err)
	}
	var joined []*client.Conn
	for i := range 5 {
		c := pushtest.Dial(t, n1.WSURL(), fmt.Sprint("u", i))
		join(t, c, "doc", false)
		joined = append(joined, c)
	}
	flash := pushtest.Dial(t, n1.WSURL(), "flash")
	join(t, flash, "doc", false)
	if err := flash.Leave(pushtest.Ctx(t), "doc"); err != nil {
		t.Fatal(err)
	}
	f, err = watcher.Next(pushtest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < window*8/10 {
		t.Fatalf("second frame after %s, want it held for the window (%s)", took, window)
	}
	if got := sidsOf(f.Events); !slices.Equal(got, want(joined...)) || *f.Sessions != 7 {
		t.Fatalf("coalesced frame %v (sessions %d), want the 5 joins only (the flash join and leave cancel out)", got, *f.Sessions)
	}

	// A large doc: counts only.
	for i := range 50 {
		c := pushtest.Dial(t, n1.WSURL(), fmt.Sprint("crowd", i))
		join(t, c, "doc", false)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err = watcher.Next(pushtest.Ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if *f.Sessions == 57 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never saw 57 sessions; last %+v", f)
		}
	}
	if f.Events != nil || f.Joined == nil || *f.Joined == 0 || *f.Left != 0 {
		t.Fatalf("large doc frame %+v, want counts only", f)
	}
}

func sidsOf(evs []client.PresenceChange) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.SID
	}
	return out
}

// TestPresenceNodeCrash: a node that stops heartbeating without a word
// (its NATS connections dropped, as on kill -9) loses its members on every
// other node within 4 heartbeat intervals, with leave events of reason
// node_lost; its late deltas and its restart bring none of them back.
func TestPresenceNodeCrash(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n1 := presenceNode(t, ns.URL(), 1, 20*time.Millisecond, node.Config{})
	n2 := presenceNode(t, ns.URL(), 2, 20*time.Millisecond, node.Config{})
	n3 := presenceNode(t, ns.URL(), 3, 20*time.Millisecond, node.Config{})
	watcher := pushtest.Dial(t, n1.WSURL(), "watcher")
	join(t, watcher, "doc", true)
	stay := pushtest.Dial(t, n2.WSURL(), "stay")
	join(t, stay, "doc", false)
	doomed := []*client.Conn{pushtest.Dial(t, n3.WSURL(), "x"), pushtest.Dial(t, n3.WSURL(), "y")}
	for _, c := range doomed {
		join(t, c, "doc", false)
	}
	evs := presenceEvents(t, watcher, "doc", 3)
	if got := sortSIDs(sidsOf(evs)); !slices.Equal(got, want(stay, doomed[0], doomed[1])) {
		t.Fatalf("joins %v", got)
	}
	// Every node must know n3 alive before it dies, or n3's members are
	// dropped as never confirmed instead.
	pushtest.Eventually(t, 5*time.Second, func() error {
		for _, n := range []*testnode.Node{n1, n2} {
			if !slices.Contains(n.Cluster.Nodes(), 3) {
				return errors.New("node 3 not heard yet")
			}
		}
		return nil
	})
	oldInstance := n3.Cluster.Self().Instance
	bound := n1.Cluster.GoneAfter() + 20*time.Millisecond // + the window

	n3.Crash()
	crashed := time.Now()
	evs = presenceEvents(t, watcher, "doc", 2)
	took := time.Since(crashed)
	for _, e := range evs {
		if e.Event != "leave" || e.Reason != "node_lost" || e.Node != 3 {
			t.Fatalf("after the crash: %+v, want leaves with reason node_lost", evs)
		}
	}
	t.Logf("members of the crashed node gone %s after it stopped (bound %s)", took.Round(time.Millisecond), bound)
	// A generous margin for a loaded CI box; the bound itself is what the
	// docs promise on an unloaded one.
	if took > bound+time.Second {
		t.Fatalf("leaves came %s after the crash, bound %s", took, bound)
	}
	// Every other node drops them within the same bound.
	for _, c := range []*client.Conn{watcher, stay} {
		pushtest.Eventually(t, bound+time.Second-time.Since(crashed), func() error {
			got, _, err := allMembers(t, c, "doc", 0)
			if err != nil || !slices.Equal(got, want(watcher, stay)) {
				return fmt.Errorf("%s sees %v %v after the crash", c.SID(), got, err)
			}
			return nil
		})
	}

	// A late delta from the dead instance (a message that was in flight)
	// brings nothing back.
	late, _ := json.Marshal(map[string]any{"op": "join", "node": 3, "inst": oldInstance, "epoch": 1, "seq": 3,
		"member": contract.Member{SID: doomed[0].SID(), User: "x", Node: 3, JoinedAt: time.Now()}})
	if err := nc.Publish("push.presence.doc.doc", late); err != nil {
		t.Fatal(err)
	}
	// The node restarts under the same number: a new instance, its old
	// members stay gone; a member joining it now is there.
	again := presenceNode(t, ns.URL(), 3, 20*time.Millisecond, node.Config{})
	fresh := pushtest.Dial(t, again.WSURL(), "z")
	join(t, fresh, "doc", false)
	evs = presenceEvents(t, watcher, "doc", 1)
	if evs[0].Event != "join" || evs[0].SID != fresh.SID() {
		t.Fatalf("after the restart %+v, want only the fresh join", evs)
	}
	// Nothing else arrives: the next push is a marker, and every node sees
	// the three live members only.
	pushtest.Marker(t, nc, watcher)
	for _, c := range []*client.Conn{watcher, stay, fresh} {
		pushtest.Eventually(t, 5*time.Second, func() error {
			got, _, err := allMembers(t, c, "doc", 0)
			if err != nil || !slices.Equal(got, want(watcher, stay, fresh)) {
				return fmt.Errorf("%s sees %v %v after the restart", c.SID(), got, err)
			}
			return nil
		})
	}
}

const presenceSecret = "presence-test-secret"

func tokenFor(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	claims["exp"] = time.Now().Add(time.Hour).Unix()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(presenceSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPresenceRefusals: presence needs the grant a join needs and never
// leaks members without it; it is rate-limited; a token's info is shown,
// and bounded.
func TestPresenceRefusals(t *testing.T) {
	ns := pushtest.RunNATS(t)
	v, err := auth.New(auth.Config{Secret: []byte(presenceSecret)})
	if err != nil {
		t.Fatal(err)
	}
	n := presenceNode(t, ns.URL(), 1, 20*time.Millisecond, node.Config{Auth: v, PresenceRate: 2, UpstreamBurst: 100})
	dial := func(claims jwt.MapClaims) *client.Conn {
		c, err := client.Dial(pushtest.Ctx(t), n.WSURL(), client.Options{Token: tokenFor(t, claims)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	insider := dial(jwt.MapClaims{"sub": "alice", "docs": []string{"secret"}, "info": map[string]any{"name": "Alice A.", "avatar": "https://a/x.png"}})
	join(t, insider, "secret", false)
	outsider := dial(jwt.MapClaims{"sub": "mallory", "docs": []string{"other/*"}})

	for _, typ := range []string{"presence", "presence_stats"} {
		_ = outsider.Send([]byte(`{"type":"` + typ + `","doc":"secret","id":"p1"}`))
		f, err := outsider.Reply(pushtest.Ctx(t))
		if err != nil || f.Type != "error" || f.Code != "forbidden" || f.ID != "p1" || f.Doc != "secret" || f.Members != nil || f.Sessions != nil {
			t.Fatalf("%s of a doc without a grant: %+v %v, want forbidden and nothing else", typ, f, err)
		}
	}
	// A join token for the doc is a grant for its presence too.
	jt := tokenFor(t, jwt.MapClaims{"sub": "mallory", "doc": "secret"})
	_ = outsider.Send([]byte(`{"type":"presence","doc":"secret","token":"` + jt + `"}`))
	f, err := outsider.Reply(pushtest.Ctx(t))
	if err != nil || f.Type != "presence" || len(f.Members) != 1 {
		t.Fatalf("presence with a join token: %+v %v", f, err)
	}
	if m := f.Members[0]; m.User != "alice" || string(m.Info) != `{"avatar":"https://a/x.png","name":"Alice A."}` {
		t.Fatalf("member %+v, want alice with her info", m)
	}
	// Bad input.
	for frame, code := range map[string]string{
		`{"type":"presence","doc":"a b"}`:                         "invalid_doc",
		`{"type":"presence","doc":"secret","cursor":"nope"}`:      "bad_cursor",
		`{"type":"presence_stats","doc":"elsewhere","token":"x"}`: "token_invalid",
	} {
		_ = insider.Send([]byte(frame))
		f, err := insider.Reply(pushtest.Ctx(t))
		if err != nil || f.Code != code {
			t.Fatalf("%s: %+v %v, want %s", frame, f, err, code)
		}
	}
	// Rate: 2 a second, burst 4, then rate_limited; the session stays.
	limited := 0
	for range 8 {
		f, err := insider.PresenceStats(pushtest.Ctx(t), "secret")
		var se *client.ServerError
		switch {
		case errors.As(err, &se) && se.Code == "rate_limited":
			limited++
		case err != nil:
			t.Fatal(err)
		case *f.Sessions != 1:
			t.Fatalf("stats %+v", f)
		}
	}
	if limited < 3 {
		t.Fatalf("%d of 8 quick presence requests limited, want at least 3", limited)
	}
	if _, err := insider.Ping(pushtest.Ctx(t)); err != nil {
		t.Fatalf("session after the rate limit: %v", err)
	}
	if got := n.Metric(t, `pushd_presence_requests_total{result="forbidden"}`); got != 2 {
		t.Fatalf("forbidden presence requests counted %v, want 2", got)
	}

	// A token with an info claim over the limit is refused at the door.
	big := strings.Repeat("x", node.DefaultMaxPresenceInfo)
	_, err = client.Dial(pushtest.Ctx(t), n.WSURL(), client.Options{Token: tokenFor(t, jwt.MapClaims{"sub": "bob", "info": big})})
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.Status != 401 {
		t.Fatalf("token with a %d-byte info: %v, want refused 401", len(big), err)
	}
}

// docSection returns the lines of the section of a doc in docs/ that
// starts with heading, up to the next heading of the same level.
func docSection(t *testing.T, file, heading string) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/" + file)
	if err != nil {
		t.Fatal(err)
	}
	level := heading[:strings.Index(heading, " ")+1]
	var out []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case line == heading:
			in = true
			continue
		case in && strings.HasPrefix(line, level):
			return out
		}
		if in {
			out = append(out, line)
		}
	}
	if !in {
		t.Fatalf("%s has no %q", file, heading)
	}
	return out
}

// jsonExamples are the one-line JSON objects of a section's code blocks.
func jsonExamples(t *testing.T, lines []string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("doc example %s: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// shape is the keys of an object and, for its lists of objects, the union
// of their keys under "<list>[]".
func shape(m map[string]any, into map[string]bool) {
	for k, v := range m {
		into[k] = true
		if list, ok := v.([]any); ok {
			for _, e := range list {
				if o, ok := e.(map[string]any); ok {
					for k2 := range o {
						into[k+"[]."+k2] = true
					}
				}
			}
		}
	}
}

func keys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestPresenceFramesMatchTheDocs sends the requests docs/PROTOCOL.md and
// docs/NATS.md show, verbatim, and checks that what a node answers and
// pushes has exactly the fields the docs' examples have.
func TestPresenceFramesMatchTheDocs(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	v, err := auth.New(auth.Config{Secret: []byte(presenceSecret)})
	if err != nil {
		t.Fatal(err)
	}
	n := testnode.StartWith(t, ns.URL(), node.Config{Dev: true, NodeID: 1, Auth: v},
		testnode.Options{Presence: &presence.Config{Window: 20 * time.Millisecond, LargeDoc: 3}})
	listener := pushtest.RawDial(t, n.Addr(), "?user=listener", nil)
	send := func(frame string) map[string]any {
		t.Helper()
		if err := listener.Text(frame); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(listener.TextFrame(t)), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if hello := send(`{"type":"join","doc":"d","presence":true}`); hello["type"] != "hello" {
		t.Fatalf("first frame %v", hello)
	}
	if joined := jsonObject(t, listener.TextFrame(t)); joined["type"] != "joined" {
		t.Fatalf("join answered %v", joined)
	}
	alice, err := client.Dial(pushtest.Ctx(t), n.WSURL(), client.Options{Token: tokenFor(t, jwt.MapClaims{"sub": "alice", "docs": []string{"*"}, "info": map[string]string{"name": "Alice"}})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alice.Close() })
	bob := pushtest.Dial(t, n.WSURL(), "bob")
	real := map[string]map[string]bool{}
	add := func(kind string, m map[string]any) {
		if real[kind] == nil {
			real[kind] = map[string]bool{}
		}
		shape(m, real[kind])
	}
	// Diffs with members: alice's join (with info), bob's join, then his
	// leave (a join and a leave in one window would cancel out).
	diffs := func(events int) {
		for seen := 0; seen < events; {
			m := jsonObject(t, listener.TextFrame(t))
			add("presence_diff events", m)
			seen += len(m["events"].([]any))
		}
	}
	join(t, alice, "d", false)
	join(t, alice, "doc-1", false)
	join(t, bob, "d", false)
	diffs(2)
	if err := bob.Leave(pushtest.Ctx(t), "d"); err != nil {
		t.Fatal(err)
	}
	diffs(1)
	carol := pushtest.Dial(t, n.WSURL(), "carol") // three members: a page of two has a next
	join(t, carol, "d", false)
	join(t, carol, "doc-1", false)
	diffs(1)
	// The doc's requests, verbatim.
	section := docSection(t, "PROTOCOL.md", "## Presence: who is in a doc")
	for _, ex := range jsonExamples(t, section) {
		if _, reply := ex["sessions"]; reply || ex["type"] == "presence_diff" {
			continue
		}
		b, _ := json.Marshal(ex)
		m := send(string(b))
		add(m["type"].(string), m)
	}
	// A large doc: counts only.
	for i := range 3 {
		join(t, pushtest.Dial(t, n.WSURL(), fmt.Sprint("crowd", i)), "d", false)
	}
	for {
		m := jsonObject(t, listener.TextFrame(t))
		if _, counts := m["joined"]; counts {
			add("presence_diff counts", m)
			break
		}
	}
	documented := map[string]map[string]bool{}
	for _, ex := range jsonExamples(t, section) {
		kind, _ := ex["type"].(string)
		switch {
		case kind == "presence_diff" && ex["events"] != nil:
			kind += " events"
		case kind == "presence_diff":
			kind += " counts"
		case ex["sessions"] == nil:
			continue // a request
		}
		if documented[kind] == nil {
			documented[kind] = map[string]bool{}
		}
		shape(ex, documented[kind])
	}
	if len(documented) != 4 {
		kinds := map[string]bool{}
		for k := range documented {
			kinds[k] = true
		}
		t.Fatalf("PROTOCOL.md shows answers of kinds %v, want presence, presence_stats and both presence_diff forms", keys(kinds))
	}
	for kind, fields := range documented {
		if got, want := keys(real[kind]), keys(fields); !slices.Equal(got, want) {
			t.Errorf("%s: the node sends %v, PROTOCOL.md shows %v", kind, got, want)
		}
	}

	// NATS.md: the backend's request, verbatim, and the reply's fields.
	nats := docSection(t, "NATS.md", "## Presence: who is in a doc")
	var subject, body string
	for _, l := range nats {
		if rest, ok := strings.CutPrefix(l, "nats req "); ok {
			subject, body, _ = strings.Cut(rest, " ")
			body = strings.Trim(body, "'")
		}
	}
	if subject != "push.presence.query.doc-1" {
		t.Fatalf("NATS.md's request: %q %q", subject, body)
	}
	join(t, bob, "doc-1", false)
	m, err := nc.Request(subject, []byte(body), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	shape(jsonObject(t, string(m.Data)), got)
	want := map[string]bool{}
	for _, ex := range jsonExamples(t, nats) {
		shape(ex, want)
	}
	if !slices.Equal(keys(got), keys(want)) {
		t.Errorf("backend reply has %v, NATS.md shows %v", keys(got), keys(want))
	}
}

func jsonObject(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return m
}
