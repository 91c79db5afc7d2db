package presence_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/internal/pushtest"
)

// The whole thing, as deployed: three real pushd processes leasing their
// node numbers from a real Consul agent, on a real NATS server; clients
// over WebSocket, a backend over NATS, pushctl as a process; and a node
// killed with SIGKILL.

const (
	secret    = "presence-cluster-secret"
	heartbeat = 250 * time.Millisecond
	window    = 50 * time.Millisecond
)

// startPushd runs pushd with the cluster's flags and args and waits until it
// serves.
func startPushd(t *testing.T, bin, natsURL string, args ...string) *pushtest.Pushd {
	t.Helper()
	base := []string{"--dev", "--jwt-secret", secret, "--nats-url", natsURL, "--log-level", "info", "--drain-timeout", "300ms",
		"--history=false", "--cluster-heartbeat", heartbeat.String(), "--presence-window", window.String()}
	return pushtest.StartPushd(t, bin, append(base, args...)...)
}

func token(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	claims["exp"] = time.Now().Add(time.Hour).Unix()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dialToken(t *testing.T, p *pushtest.Pushd, claims jwt.MapClaims) *client.Conn {
	t.Helper()
	c, err := client.Dial(pushtest.Ctx(t), p.WSURL(), client.Options{Token: token(t, claims)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// pushctl runs the pushctl binary and returns its stdout, failing on a
// non-zero exit.
func pushctl(t *testing.T, bin, natsURL string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--nats-url", natsURL}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("pushctl %v: %v\n%s%s", args, err, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

func sortedSIDs(cs ...*client.Conn) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.SID()
	}
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return out
}

// pagedByPushctl pages through doc's presence with pushctl -o json.
func pagedByPushctl(t *testing.T, bin, natsURL, doc string, limit int) ([]string, contract.PresencePage) {
	t.Helper()
	var got []string
	var first contract.PresencePage
	cursor := ""
	for i := 0; i < 50; i++ {
		args := []string{"presence", doc, "-o", "json", "--limit", strconv.Itoa(limit)}
		if cursor != "" {
			args = append(args, "--cursor", cursor)
		}
		out, _ := pushctl(t, bin, natsURL, args...)
		var p contract.PresencePage
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatalf("pushctl presence -o json: %v\n%s", err, out)
		}
		if i == 0 {
			first = p
		}
		if len(p.Members) > limit {
			t.Fatalf("page of %d, limit %d", len(p.Members), limit)
		}
		for _, m := range p.Members {
			got = append(got, m.SID)
		}
		if cursor = p.Next; cursor == "" {
			return got, first
		}
	}
	t.Fatal("pages do not end")
	return nil, first
}

// TestPresenceOnARealCluster: members on three nodes are listed once each
// by clients, a backend and pushctl; a listening member sees joins in
// order; presence without a grant is refused; a node killed with SIGKILL
// loses its members everywhere within the documented bound (4 heartbeats
// plus the window), with node_lost leaves, and restarting it under the
// same number brings none of them back.
func TestPresenceOnARealCluster(t *testing.T) {
	bins := pushtest.NewBinaries()
	t.Cleanup(bins.Remove)
	pushdBin, ctlBin := bins.Path(t, "pushd"), bins.Path(t, "pushctl")
	consul := pushtest.RunConsul(t)
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	url := ns.URL()
	withConsul := func(name string) []string {
		return []string{"--consul-addr", consul.Addr(), "--consul-lock-delay", "1s", "--node-name", name}
	}
	p1 := startPushd(t, pushdBin, url, withConsul("p1")...)
	p2 := startPushd(t, pushdBin, url, withConsul("p2")...)
	p3 := startPushd(t, pushdBin, url, withConsul("p3")...)
	if p1.NodeID == p2.NodeID || p2.NodeID == p3.NodeID || p1.NodeID == p3.NodeID {
		t.Fatalf("node numbers %d %d %d", p1.NodeID, p2.NodeID, p3.NodeID)
	}
	const doc = "team/plan"

	watcher := pushtest.Dial(t, p1.WSURL(), "watcher")
	if err := watcher.JoinPresence(pushtest.Ctx(t), doc); err != nil {
		t.Fatal(err)
	}
	alice := dialToken(t, p1, jwt.MapClaims{"sub": "alice", "docs": []string{"team/*"}, "info": map[string]string{"name": "Alice"}})
	bob := pushtest.Dial(t, p2.WSURL(), "bob")
	carol1 := pushtest.Dial(t, p3.WSURL(), "carol")
	carol2 := pushtest.Dial(t, p3.WSURL(), "carol")
	for _, c := range []*client.Conn{alice, bob, carol1, carol2} {
		if err := c.Join(pushtest.Ctx(t), doc); err != nil {
			t.Fatal(err)
		}
	}
	// Joins reach the listener in order (the two on p3 in theirs).
	var joins []string
	for len(joins) < 4 {
		f, err := watcher.Next(pushtest.Ctx(t))
		if err != nil {
			t.Fatalf("joins so far %v: %v", joins, err)
		}
		for _, e := range f.Events {
			if e.Event != "join" {
				t.Fatalf("event %+v before any leave", e)
			}
			joins = append(joins, e.SID)
		}
	}
	if i1, i2 := slices.Index(joins, carol1.SID()), slices.Index(joins, carol2.SID()); i1 < 0 || i2 < i1 {
		t.Fatalf("joins %v: carol's two sessions out of order", joins)
	}
	everyone := sortedSIDs(watcher, alice, bob, carol1, carol2)

	// Clients on every node, a backend over NATS and pushctl: each member once.
	pushtest.Eventually(t, 10*time.Second, func() error {
		for _, c := range []*client.Conn{watcher, bob, carol1} {
			f, err := c.Presence(pushtest.Ctx(t), doc, 0, "")
			if err != nil {
				return err
			}
			if got := sidsOf(f.Members); !slices.Equal(got, everyone) || *f.Users != 4 {
				return fmt.Errorf("%s sees %v (%d users), want %v", c.SID(), got, *f.Users, everyone)
			}
		}
		return nil
	})
	got, first := pagedByPushctl(t, ctlBin, url, doc, 2)
	if !slices.Equal(got, everyone) || first.Sessions != 5 || first.Users != 4 {
		t.Fatalf("pushctl pages %v (%d sessions, %d users), want %v", got, first.Sessions, first.Users, everyone)
	}
	for _, m := range first.Members {
		var info bytes.Buffer
		_ = json.Compact(&info, m.Info)
		if m.SID == alice.SID() && info.String() != `{"name":"Alice"}` {
			t.Fatalf("alice's info %s", m.Info)
		}
	}
	table, summary := pushctl(t, ctlBin, url, "presence", doc, "--limit", "2")
	if !strings.HasPrefix(table, "SID") || strings.Count(table, "\n") != 3 || !strings.Contains(summary, "2 of 5 member(s) of team/plan (4 user(s))") ||
		!strings.Contains(summary, "next page: pushctl presence team/plan --limit 2 --cursor ") {
		t.Fatalf("pushctl presence table:\n%s%s", table, summary)
	}
	stats, _ := pushctl(t, ctlBin, url, "presence", "stats", doc)
	if !strings.HasPrefix(stats, "team/plan: 5 session(s), 4 user(s); answered by node ") {
		t.Fatalf("pushctl presence stats: %q", stats)
	}
	// A doc named "stats" is a doc after --; bad input is a usage error.
	if out, _ := pushctl(t, ctlBin, url, "presence", "--", "stats"); !strings.HasPrefix(out, "SID") {
		t.Fatalf("pushctl presence -- stats: %q", out)
	}
	for _, args := range [][]string{{"presence", "a b"}, {"presence", doc, "--limit", "0"}, {"presence", doc, "--cursor", "x"}, {"presence", "stats"}} {
		cmd := exec.Command(ctlBin, append([]string{"--nats-url", url}, args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.HasPrefix(string(out), "pushctl: ") || strings.Count(string(out), "\n") != 1 {
			t.Fatalf("pushctl %q: %v %q, want exit 2 and one line", args, err, out)
		}
	}
	empty, _ := pushctl(t, ctlBin, url, "presence", "stats", "nobody/here", "-o", "json")
	var ep contract.PresencePage
	if err := json.Unmarshal([]byte(empty), &ep); err != nil || ep.Sessions != 0 || ep.Node != -1 {
		t.Fatalf("stats of a doc nobody holds: %s", empty)
	}

	// Without a grant: forbidden, and nothing about the members.
	mallory := dialToken(t, p2, jwt.MapClaims{"sub": "mallory", "docs": []string{"other"}})
	if _, err := mallory.Presence(pushtest.Ctx(t), doc, 0, ""); !isCode(err, "forbidden") {
		t.Fatalf("presence without a grant: %v, want forbidden", err)
	}

	// kill -9 the node holding carol's sessions.
	p3.Kill()
	killed := time.Now()
	var leaves []client.PresenceChange
	for len(leaves) < 2 {
		f, err := watcher.Next(pushtest.Ctx(t))
		if err != nil {
			t.Fatalf("waiting for the node_lost leaves: %v", err)
		}
		leaves = append(leaves, f.Events...)
	}
	took := time.Since(killed)
	bound := 4*heartbeat + window
	for _, e := range leaves {
		if e.Event != "leave" || e.Reason != "node_lost" || e.Node != p3.NodeID || e.User != "carol" {
			t.Fatalf("after kill -9: %+v, want carol's node_lost leaves", leaves)
		}
	}
	t.Logf("kill -9: the node's members were dropped %s after it died (documented bound: %s)", took.Round(time.Millisecond), bound)
	if took > bound+time.Second { // margin for a loaded two-core box
		t.Fatalf("node_lost leaves %s after kill -9, bound %s", took, bound)
	}
	alive := sortedSIDs(watcher, alice, bob)
	pushtest.Eventually(t, bound+time.Second, func() error {
		got, _ := pagedByPushctl(t, ctlBin, url, doc, 100)
		if !slices.Equal(got, alive) {
			return fmt.Errorf("pushctl sees %v, want %v", got, alive)
		}
		f, err := bob.Presence(pushtest.Ctx(t), doc, 0, "")
		if err != nil || !slices.Equal(sidsOf(f.Members), alive) {
			return fmt.Errorf("bob sees %v %v", sidsOf(f.Members), err)
		}
		return nil
	})

	// The node comes back under the same number (a new instance; its Consul
	// lease is still held by the dead process, so it takes the number
	// explicitly): carol's old sessions stay gone, a new one is there.
	p3b := startPushd(t, pushdBin, url, "--node-id", strconv.FormatInt(p3.NodeID, 10))
	carol3 := pushtest.Dial(t, p3b.WSURL(), "carol")
	if err := carol3.Join(pushtest.Ctx(t), doc); err != nil {
		t.Fatal(err)
	}
	f, err := watcher.Next(pushtest.Ctx(t))
	if err != nil || len(f.Events) != 1 || f.Events[0].Event != "join" || f.Events[0].SID != carol3.SID() || f.Events[0].Node != p3.NodeID {
		t.Fatalf("after the restart: %+v %v, want carol's new join only", f, err)
	}
	pushtest.Marker(t, nc, watcher) // and nothing else
	now := sortedSIDs(watcher, alice, bob, carol3)
	pushtest.Eventually(t, 10*time.Second, func() error {
		for _, c := range []*client.Conn{watcher, bob, carol3} {
			f, err := c.Presence(pushtest.Ctx(t), doc, 0, "")
			if err != nil || !slices.Equal(sidsOf(f.Members), now) {
				return fmt.Errorf("%s sees %v %v, want %v", c.SID(), sidsOf(f.Members), err, now)
			}
		}
		return nil
	})
}

func sidsOf(ms []client.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.SID
	}
	return out
}

func isCode(err error, code string) bool {
	var se *client.ServerError
	return errors.As(err, &se) && se.Code == code
}
