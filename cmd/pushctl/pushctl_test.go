package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/pushd/pushd/admin"
	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/internal/pushtest"
)

// ctlResult is one pushctl run.
type ctlResult struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// ctl runs pushctl bin with env (on top of an environment without PUSHCTL_*
// variables) and stdin.
type ctl struct {
	t   *testing.T
	bin string
	env []string
}

func (c ctl) with(env ...string) ctl {
	return ctl{t: c.t, bin: c.bin, env: append(slices.Clone(c.env), env...)}
}

func (c ctl) command(stdin string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.Command(c.bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PUSHCTL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, c.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

func (c ctl) runIn(stdin string, args ...string) ctlResult {
	c.t.Helper()
	cmd, stdout, stderr := c.command(stdin, args...)
	start := time.Now()
	err := cmd.Run()
	r := ctlResult{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			c.t.Fatalf("pushctl %q: %v", args, err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

func (c ctl) run(args ...string) ctlResult {
	c.t.Helper()
	return c.runIn("", args...)
}

// ok runs pushctl and fails the test unless it exits 0.
func (c ctl) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("pushctl %q: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs pushctl and checks its exit code and that stderr is one line
// starting "pushctl: " and containing want.
func (c ctl) fails(code int, want string, args ...string) ctlResult {
	c.t.Helper()
	r := c.run(args...)
	c.checkFail(r, code, want, args)
	return r
}

func (c ctl) checkFail(r ctlResult, code int, want string, args []string) {
	c.t.Helper()
	if r.code != code {
		c.t.Fatalf("pushctl %q: exit %d, want %d\nstdout: %s\nstderr: %s", args, r.code, code, r.stdout, r.stderr)
	}
	line := strings.TrimSuffix(r.stderr, "\n")
	if strings.Contains(line, "\n") || !strings.HasPrefix(line, "pushctl: ") || !strings.Contains(line, want) {
		c.t.Fatalf("pushctl %q: stderr %q, want one line \"pushctl: ...%s...\"", args, r.stderr, want)
	}
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("bad JSON %q: %v", s, err)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document in %q", s)
	}
	return v
}

// rows splits a table into trimmed lines of fields, header first.
func rows(out string) [][]string {
	var rs [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		rs = append(rs, strings.Fields(l))
	}
	return rs
}

// columnsAligned checks that every column of a tabwriter table starts at the
// same offset on each line, as far as each line's fields go.
func columnsAligned(t *testing.T, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	header := lines[0]
	var starts []int
	for i := range header {
		if header[i] != ' ' && (i == 0 || header[i-1] == ' ' && (i < 2 || header[i-2] == ' ')) {
			starts = append(starts, i)
		}
	}
	for _, l := range lines[1:] {
		for _, s := range starts {
			if s >= len(l) || l[s] == ' ' || (s > 0 && l[s-1] != ' ') {
				t.Fatalf("table not aligned at column %d:\n%s", s, out)
			}
		}
	}
}

func sidCol(out string) []string {
	var sids []string
	for _, r := range rows(out)[1:] {
		sids = append(sids, r[0])
	}
	return sids
}

// TestPushctl runs the real pushctl binary against two real pushd processes
// on a real NATS server, with real WebSocket clients.
func TestPushctl(t *testing.T) {
	bin := bins.Path(t, "pushctl")
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n1 := startPushd(t, ns.URL(), 1, "--ping-interval", "10m", "--ping-grace", "10m", "--max-push-size", "65536")
	n2 := startPushd(t, ns.URL(), 2, "--ping-interval", "10m", "--ping-grace", "10m", "--max-push-size", "65536")
	// Without Consul pushctl collects answers for the whole --timeout; the
	// nodes answer in milliseconds, so keep it short.
	pc := ctl{t: t, bin: bin, env: []string{"PUSHCTL_NATS_URL=" + ns.URL(), "PUSHCTL_TIMEOUT=1s"}}

	a1, a2, b1 := dial(t, n1, "alice"), dial(t, n1, "alice"), dial(t, n1, "bob")
	a3, c2 := dial(t, n2, "alice"), dial(t, n2, "carol")
	for _, c := range []*client.Conn{a1, b1, c2} {
		if err := c.Join(pushtest.Ctx(t), "doc-1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a1.Ping(pushtest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	all := []*client.Conn{a1, a2, b1, a3, c2}

	t.Run("nodes", func(t *testing.T) {
		pc := pc.with()
		pc.t = t
		out := pc.ok("nodes")
		columnsAligned(t, out)
		rs := rows(out)
		if want := []string{"NODE", "ADDRESS", "VERSION", "UPTIME", "SESSIONS", "USERS", "DOCS", "HEALTH", "NATS"}; !slices.Equal(rs[0], want) {
			t.Fatalf("header %q, want %q", rs[0], want)
		}
		if len(rs) != 3 || rs[1][0] != "1" || rs[2][0] != "2" {
			t.Fatalf("nodes table:\n%s", out)
		}
		if rs[1][1] != n1.Listen || rs[1][4] != "3" || rs[1][5] != "2" || rs[1][6] != "1" || rs[1][7] != "ready" || rs[1][8] != "CONNECTED" {
			t.Fatalf("node 1 row %q", rs[1])
		}
		if wide := rows(pc.ok("nodes", "-o", "wide")); len(wide[0]) <= len(rs[0]) || !slices.Contains(wide[0], "RECONNECTS") {
			t.Fatalf("wide header %q", wide[0])
		}

		doc := decode[struct {
			Nodes            []map[string]any `json:"nodes"`
			NotAnswering     []any            `json:"not_answering"`
			DuplicateNumbers []int64          `json:"duplicate_numbers"`
		}](t, pc.ok("nodes", "-o", "json"))
		if len(doc.Nodes) != 2 || doc.NotAnswering == nil || len(doc.NotAnswering) != 0 || doc.DuplicateNumbers == nil || len(doc.DuplicateNumbers) != 0 {
			t.Fatalf("nodes JSON %+v", doc)
		}
		var infos []admin.NodeInfo
		b, _ := json.Marshal(doc.Nodes)
		if err := json.Unmarshal(b, &infos); err != nil {
			t.Fatal(err)
		}
		n := infos[1]
		if n.Node != 2 || n.Address != n2.Listen || n.Version != "dev" || n.Sessions != 2 || n.Users != 2 || n.Docs != 1 ||
			!n.Ready || n.Health != "ready" || n.NATS.Status != "CONNECTED" || n.NATS.Subscriptions == 0 || n.UptimeSeconds <= 0 ||
			time.Since(n.StartedAt) > time.Minute || n.Error != "" {
			t.Fatalf("node 2 JSON %+v", n)
		}
		raw := doc.Nodes[0]
		for _, k := range []string{"node", "address", "version", "started_at", "uptime_seconds", "sessions", "users", "docs", "ready", "health", "nats"} {
			if _, ok := raw[k]; !ok {
				t.Fatalf("nodes JSON lacks %q: %v", k, raw)
			}
		}
		if _, err := time.Parse(time.RFC3339, raw["started_at"].(string)); err != nil {
			t.Fatalf("started_at not RFC 3339: %v", err)
		}
		// Without Consul, pushctl waits for the live peers the nodes name
		// (from their NATS heartbeats, once they have heard a full round),
		// not for its whole --timeout.
		pushtest.Eventually(t, 10*time.Second, func() error {
			doc := decode[struct {
				Nodes            []admin.NodeInfo `json:"nodes"`
				NotAnswering     []any            `json:"not_answering"`
				DuplicateNumbers []int64          `json:"duplicate_numbers"`
			}](t, pc.ok("nodes", "-o", "json"))
			for _, n := range doc.Nodes {
				if !slices.Equal(n.Peers, []int64{1, 2}) {
					return fmt.Errorf("node %d names peers %v", n.Node, n.Peers)
				}
			}
			return nil
		})
		if r := pc.with("PUSHCTL_TIMEOUT=30s").run("nodes"); r.code != 0 || r.took > 10*time.Second || len(rows(r.stdout)) != 3 {
			t.Fatalf("nodes with PUSHCTL_TIMEOUT=30s: exit %d after %s:\n%s", r.code, r.took, r.stdout)
		}
	})

	t.Run("sessions", func(t *testing.T) {
		pc := pc.with()
		pc.t = t
		out := pc.ok("sessions", "--user", "alice")
		columnsAligned(t, out)
		rs := rows(out)
		if rs[0][0] != "SID" || len(rs) != 4 {
			t.Fatalf("sessions --user alice:\n%s", out)
		}
		want := []string{a1.SID(), a2.SID(), a3.SID()}
		slices.SortFunc(want, cmpSID)
		if got := sidCol(out); !slices.Equal(got, want) {
			t.Fatalf("sids %q, want %q (ordered)", got, want)
		}

		page := decode[admin.SessionsPage](t, pc.ok("sessions", "--user", "alice", "-o", "json"))
		if page.Total != 3 || page.Nodes != 2 || len(page.Sessions) != 3 || page.Next != "" {
			t.Fatalf("alice page %+v", page)
		}
		var s1 admin.SessionInfo
		for _, s := range page.Sessions {
			if s.SID == a1.SID() {
				s1 = s
			}
		}
		if s1.User != "alice" || s1.Node != 1 || s1.Remote == "" || !slices.Equal(s1.Docs, []string{"doc-1"}) ||
			time.Since(s1.ConnectedAt) > time.Minute || s1.LastHeartbeat == nil || s1.MsgsIn < 2 || s1.BytesIn == 0 ||
			s1.MsgsOut < 3 || s1.BytesOut == 0 || s1.QueueDepth != 0 {
			t.Fatalf("alice session 1 %+v", s1)
		}

		if got := sidCol(pc.ok("sessions", "--doc", "doc-1")); len(got) != 3 {
			t.Fatalf("doc-1 sessions %q", got)
		}
		if got := sidCol(pc.ok("sessions", "--doc", "doc-1", "--user", "alice")); !slices.Equal(got, []string{a1.SID()}) {
			t.Fatalf("alice in doc-1 %q", got)
		}
		if got := sidCol(pc.ok("sessions", "--node", "2")); len(got) != 2 {
			t.Fatalf("node 2 sessions %q", got)
		}
		if out := pc.ok("sessions", "--user", "nobody"); len(rows(out)) != 1 {
			t.Fatalf("nobody's sessions:\n%s", out)
		}
		wide := rows(pc.ok("sessions", "--user", "bob", "-o", "wide"))
		if len(wide) != 2 || !slices.Contains(wide[0], "QUEUE") {
			t.Fatalf("wide %q", wide)
		}

		// Page through all five sessions two at a time, following the hint.
		var seen []string
		args := []string{"sessions", "--limit", "2"}
		for pages := 0; ; pages++ {
			if pages > 3 {
				t.Fatal("paging does not end")
			}
			r := pc.run(args...)
			if r.code != 0 {
				t.Fatalf("%q: exit %d: %s", args, r.code, r.stderr)
			}
			seen = append(seen, sidCol(r.stdout)...)
			_, hint, ok := strings.Cut(r.stderr, "next page: pushctl ")
			if !ok {
				break
			}
			args = strings.Fields(hint)
		}
		if len(seen) != 5 || !slices.IsSortedFunc(seen, cmpSID) || len(slices.Compact(slices.Clone(seen))) != 5 {
			t.Fatalf("paged sids %q: want 5 distinct, ordered", seen)
		}

		pc.fails(2, "--limit", "sessions", "--limit", "0")
		pc.fails(2, "1..1000", "sessions", "--limit", "5000")
		pc.fails(2, "--user", "sessions", "--user", "a.>")
		pc.fails(2, "--node", "sessions", "--node", "5000")
		pc.fails(2, "takes no arguments", "sessions", "alice")
	})

	t.Run("session", func(t *testing.T) {
		pc := pc.with()
		pc.t = t
		out := pc.ok("session", b1.SID())
		for _, want := range []string{"SID:", b1.SID(), "User:", "bob", "Docs:", "doc-1", "Last heartbeat:", "never", "Queue:"} {
			if !strings.Contains(out, want) {
				t.Fatalf("session table lacks %q:\n%s", want, out)
			}
		}
		raw := decode[map[string]any](t, pc.ok("session", a3.SID(), "-o", "json"))
		for _, k := range []string{"sid", "user", "node", "remote", "docs", "connected_at", "last_seen", "msgs_in", "bytes_in", "msgs_out", "bytes_out", "queue_depth", "queue_bytes"} {
			if _, ok := raw[k]; !ok {
				t.Fatalf("session JSON lacks %q: %v", k, raw)
			}
		}
		s := decode[admin.SessionInfo](t, pc.ok("session", a3.SID(), "-o", "json"))
		if s.SID != a3.SID() || s.User != "alice" || s.Node != 2 || s.Docs == nil || len(s.Docs) != 0 || s.LastHeartbeat != nil {
			t.Fatalf("session JSON %+v", s)
		}
		if _, err := time.Parse(time.RFC3339, raw["connected_at"].(string)); err != nil {
			t.Fatalf("connected_at: %v", err)
		}
		r := pc.fails(3, "not found", "session", "123456789", "--timeout", "300ms")
		if r.took > 3*time.Second {
			t.Fatalf("unknown sid took %s", r.took)
		}
		pc.fails(2, "session ID", "session", "not-a-sid")
		pc.fails(2, "wants one session ID", "session")
	})

	t.Run("publish", func(t *testing.T) {
		pc := pc.with()
		pc.t = t
		out := pc.ok("publish", "--user", "alice", "--event", "greet", "--id", "m-1", `{"hi":1}`)
		if !strings.HasPrefix(out, "delivered to 3 of 3 matching session(s) on 2 node(s)") {
			t.Fatalf("publish output %q", out)
		}
		for _, c := range []*client.Conn{a1, a2, a3} {
			if f := pushtest.ExpectPush(t, c, "greet", `{"hi":1}`); f.ID != "m-1" || f.Target != "user" {
				t.Fatalf("push %+v", f)
			}
		}
		res := decode[admin.PublishResult](t, pc.ok("publish", "--doc", "doc-1", "-o", "json", "v1"))
		if res.Delivered != 3 || res.Nodes != 2 || res.Subject != "push.doc.doc-1" || res.ID == "" ||
			!slices.Equal(res.Reports, []contract.Report{{Node: 1, Matched: 2, Delivered: 2}, {Node: 2, Matched: 1, Delivered: 1}}) {
			t.Fatalf("doc publish %+v", res)
		}
		for _, c := range []*client.Conn{a1, b1, c2} {
			if f := pushtest.ExpectPush(t, c, "message", `"v1"`); f.ID != res.ID {
				t.Fatalf("push id %q, want %q", f.ID, res.ID)
			}
		}
		if out := pc.ok("publish", "--session", c2.SID(), "-o", "wide", `[1]`); !strings.Contains(out, "delivered to 1 of 1 matching session(s) on 1 node(s)") || !strings.Contains(out, "NODE") {
			t.Fatalf("session publish %q", out)
		}
		pushtest.ExpectPush(t, c2, "message", `[1]`)

		file := filepath.Join(t.TempDir(), "data.json")
		if err := os.WriteFile(file, []byte(`{"from":"file"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if out := pc.ok("publish", "--all", "@"+file); !strings.Contains(out, "delivered to 5 of 5 matching session(s) on 2 node(s)") {
			t.Fatalf("broadcast %q", out)
		}
		for _, c := range all {
			pushtest.ExpectPush(t, c, "message", `{"from":"file"}`)
		}
		if r := pc.runIn(`{"from":"stdin"}`, "publish", "--user", "bob", "-"); r.code != 0 || !strings.Contains(r.stdout, "delivered to 1 of 1 matching session(s)") {
			t.Fatalf("stdin publish: %d %q %q", r.code, r.stdout, r.stderr)
		}
		pushtest.ExpectPush(t, b1, "message", `{"from":"stdin"}`)

		// The timestamp header arrives: NATS subscriber sees every header.
		sub, err := nc.SubscribeSync("push.user.dave")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		pc.ok("publish", "--user", "dave", "--event", "e", "--id", "i", "x")
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ts, _ := strconv.ParseInt(m.Header.Get("Push-Timestamp"), 10, 64)
		if m.Header.Get("Push-Event") != "e" || m.Header.Get("Push-Id") != "i" || time.Since(time.Unix(0, ts)) > time.Minute || string(m.Data) != "x" {
			t.Fatalf("published message %+v", m)
		}

		r := pc.run("publish", "--user", "nobody", "--wait", "200ms", "x")
		if r.code != 0 || !strings.Contains(r.stdout, "delivered to 0 of 0 matching session(s) on 0 node(s)") {
			t.Fatalf("publish to nobody: %d %q %q", r.code, r.stdout, r.stderr)
		}
		pc.fails(4, "nothing delivered: no session matched", "publish", "--user", "nobody", "--wait", "200ms", "--require-delivery", "x")
		big := strings.Repeat("z", 100_000)
		pc.fails(4, "nothing delivered: 2 node(s) refused it as too large (100000 bytes; see pushd --max-push-size)",
			"publish", "--user", "alice", "--require-delivery", big)
		pushtest.Marker(t, nc, a1) // the refused push reached nobody
		pc.fails(2, "exactly one target, got --user and --doc", "publish", "--user", "a", "--doc", "b", "x")
		pc.fails(2, "needs a target", "publish", "x")
		pc.fails(1, "cannot read the data from @/nonexistent/file", "publish", "--all", "@/nonexistent/file")
		pc.fails(2, "wants the data", "publish", "--all")
	})

	t.Run("kick", func(t *testing.T) {
		pc := pc.with()
		pc.t = t
		k1, k2, k3 := dial(t, n1, "mallory"), dial(t, n2, "mallory"), dial(t, n1, "trent")
		out := pc.ok("kick", "--session", k3.SID(), "--reason", "bye trent")
		if out != "closed 1 session(s): "+k3.SID()+"\n" {
			t.Fatalf("kick output %q", out)
		}
		if _, err := k3.Next(pushtest.Ctx(t)); pushtest.CloseCode(err) != 4010 || !strings.Contains(err.Error(), "bye trent") {
			t.Fatalf("kicked client got %v, want close 4010 bye trent", err)
		}
		res := decode[admin.KickResult](t, pc.ok("kick", "--user", "mallory", "--reason", "account suspended", "-o", "json"))
		if res.Closed != 2 || res.Nodes != 2 || len(res.SIDs) != 2 || !slices.Contains(res.SIDs, k1.SID()) || !slices.Contains(res.SIDs, k2.SID()) {
			t.Fatalf("kick result %+v", res)
		}
		for _, c := range []*client.Conn{k1, k2} {
			_, err := c.Next(pushtest.Ctx(t))
			var ce *client.CloseError
			if !errors.As(err, &ce) || ce.Code != 4010 || ce.Reason != "account suspended" {
				t.Fatalf("kicked client got %v", err)
			}
		}
		pushtest.Eventually(t, 10*time.Second, func() error {
			if v := n1.Metric(t, `pushd_connections_closed_total{reason="kicked"}`); v != 2 {
				return fmt.Errorf("node 1 kicked = %v, want 2", v)
			}
			return nil
		})
		pc.fails(3, "nothing to kick: user mallory", "kick", "--user", "mallory")
		pc.fails(2, "exactly one target", "kick", "--user", "a", "--session", "1")
		pc.fails(2, "needs a target", "kick")
	})

	t.Run("stats", func(t *testing.T) {
		pc := pc.with()
		pc.t = t
		// Pushes published between the two samples of a long interval.
		cmd, stdout, stderr := pc.command("", "stats", "-o", "json", "--interval", "1500ms")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			pc.ok("publish", "--user", "carol", "--wait", "50ms", "x")
			pushtest.ExpectPush(t, c2, "message", `"x"`)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("stats: %v: %s", err, stderr)
		}
		s := decode[statsDoc](t, stdout.String())
		if s.Interval < 1.4 || s.Interval > 2 || len(s.Nodes) != 2 || s.Total.Node != -1 || s.Total.Connections < 5 || s.Nodes[1].Node != 2 ||
			s.Nodes[1].PushesInPerSec <= 0 || s.Nodes[1].FramesOutPerSec <= 0 || s.Total.PushesInPerSec < s.Nodes[1].PushesInPerSec {
			t.Fatalf("stats %+v", s)
		}
		out := pc.ok("stats", "--interval", "100ms")
		if rs := rows(out); rs[1][0] != "NODE" || rs[len(rs)-1][0] != "TOTAL" || len(rs) != 5 {
			t.Fatalf("stats table:\n%s", out)
		}
		columnsAligned(t, strings.SplitN(out, "\n", 2)[1])

		// Rates are over the interval asked for, not the interval plus the
		// time answers took to gather.
		if r := pc.run("stats", "-o", "json", "--interval", "300ms"); r.code != 0 || r.took > 2*time.Second ||
			decode[statsDoc](t, r.stdout).Interval > 0.6 {
			t.Fatalf("stats --interval 300ms: exit %d after %s: %s", r.code, r.took, r.stdout)
		}

		// --watch redraws every interval until interrupted, then exits 0.
		cmd, _, stderr = pc.command("", "stats", "--watch", "--interval", "200ms", "--timeout", "400ms")
		var watched syncedBuffer
		cmd.Stdout = &watched
		started := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pushtest.Eventually(t, 10*time.Second, func() error {
			if n := strings.Count(watched.String(), "rates over"); n < 3 {
				return fmt.Errorf("%d redraws so far", n)
			}
			return nil
		})
		if took := time.Since(started); took > 3*time.Second {
			t.Fatalf("three redraws every 200ms took %s", took)
		}
		_ = cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("stats --watch: %v: %s", err, stderr)
		}
		if n := strings.Count(watched.String(), "\033[H\033[2J"); n < 3 || !strings.Contains(watched.String(), "TOTAL") {
			t.Fatalf("stats --watch refreshed %d times:\n%q", n, watched.String())
		}
	})

	t.Run("version-help-completion", func(t *testing.T) {
		pc := pc.with()
		pc.t = t
		if out := pc.ok("version"); !strings.HasPrefix(out, "pushctl dev") {
			t.Fatalf("version %q", out)
		}
		if v := decode[map[string]string](t, pc.ok("version", "-o", "json")); v["version"] != "dev" || v["go"] == "" {
			t.Fatalf("version JSON %v", v)
		}
		for _, sub := range []string{"nodes", "sessions", "session", "publish", "kick", "stats", "version"} {
			out := pc.ok(sub, "--help")
			if !strings.Contains(out, "Examples:") || !strings.Contains(out, "PUSHCTL_NATS_URL") {
				t.Fatalf("%s --help lacks examples or env twins:\n%s", sub, out)
			}
		}
		for _, sh := range []string{"bash", "zsh", "fish"} {
			if out := pc.ok("completion", sh); !strings.Contains(out, "pushctl") {
				t.Fatalf("completion %s: %q", sh, out)
			}
		}
		pc.fails(2, "unknown command", "frobnicate")
		pc.fails(2, "unknown flag", "nodes", "--frobnicate")
		pc.fails(2, `-o "yaml"`, "nodes", "-o", "yaml")
	})

	t.Run("env-and-nats-errors", func(t *testing.T) {
		pc := ctl{t: t, bin: bin}
		// Flags beat the environment; the environment beats defaults.
		if out := pc.with("PUSHCTL_NATS_URL=nats://127.0.0.1:1").ok("--nats-url", ns.URL(), "nodes"); len(rows(out)) != 3 {
			t.Fatalf("--nats-url over env:\n%s", out)
		}
		if out := pc.with("PUSHCTL_NATS_URL="+ns.URL(), "PUSHCTL_OUTPUT=json").ok("nodes"); !strings.HasPrefix(out, "{") {
			t.Fatalf("PUSHCTL_OUTPUT=json gave %q", out)
		}
		pc.with("PUSHCTL_TIMEOUT=soon").fails(2, "PUSHCTL_TIMEOUT", "nodes")
		pc.with("PUSHCTL_NATS_URL=nats://127.0.0.1:1").fails(1, "cannot connect to NATS at nats://127.0.0.1:1", "nodes")
		r := pc.with("PUSHCTL_NATS_URL=nats://127.0.0.1:1").fails(1, "PUSHCTL_NATS_URL", "sessions")
		if !strings.Contains(r.stderr, "--nats-url") {
			t.Fatalf("NATS error does not say how to set the URL: %q", r.stderr)
		}
		// A NATS server without pushd nodes: nobody answers.
		empty := pushtest.RunNATS(t)
		pe := pc.with("PUSHCTL_NATS_URL=" + empty.URL())
		for _, args := range [][]string{{"nodes"}, {"sessions"}, {"stats"}, {"kick", "--user", "x"}} {
			if r := pe.fails(3, "no pushd node answered", args...); r.took > 5*time.Second {
				t.Fatalf("%q took %s", args, r.took)
			}
		}
		pe.fails(4, "nothing delivered", "publish", "--all", "--require-delivery", "x")
	})

	t.Run("consul", func(t *testing.T) {
		consul := pushtest.RunConsul(t)
		n3 := startPushd(t, ns.URL(), 3, "--ping-interval", "10m", "--ping-grace", "10m")
		register := func(id int64, addr string) {
			host, port, _ := strings.Cut(addr, ":")
			p, _ := strconv.Atoi(port)
			err := consul.Client().Agent().ServiceRegister(&api.AgentServiceRegistration{
				ID: fmt.Sprintf("pushd-%d", id), Name: "pushd", Address: host, Port: p,
				Meta:  map[string]string{"node_id": strconv.FormatInt(id, 10), "node_name": fmt.Sprintf("node-%d", id)},
				Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		register(1, n1.Listen)
		register(2, n2.Listen)
		register(3, n3.Listen)
		pc := pc.with("PUSHCTL_CONSUL_ADDR=" + consul.Addr())
		pc.t = t
		pushtest.Eventually(t, 10*time.Second, func() error {
			if r := pc.run("nodes", "--timeout", "10s", "-o", "json"); r.code != 0 || r.took > 5*time.Second {
				return fmt.Errorf("nodes with Consul: exit %d after %s: %s", r.code, r.took, r.stderr)
			}
			return nil
		})
		// Every known node answered: no waiting for the 10s timeout.
		if r := pc.run("sessions", "--timeout", "10s"); r.code != 0 || r.took > 5*time.Second {
			t.Fatalf("sessions with Consul: exit %d after %s", r.code, r.took)
		}

		// Node 3 stops but stays registered: listed as not answering.
		if err := n3.Stop(); err != nil {
			t.Fatal(err)
		}
		out := pc.ok("nodes")
		rs := rows(out)
		if len(rs) != 4 || rs[3][0] != "3" || rs[3][1] != n3.Listen || !strings.Contains(out, "not answering") {
			t.Fatalf("nodes with node 3 down:\n%s", out)
		}
		doc := decode[struct {
			Nodes        []admin.NodeInfo `json:"nodes"`
			NotAnswering []struct {
				ID      int64  `json:"id"`
				Address string `json:"address"`
			} `json:"not_answering"`
			DuplicateNumbers []int64 `json:"duplicate_numbers"`
		}](t, pc.ok("nodes", "-o", "json"))
		if len(doc.Nodes) != 2 || len(doc.NotAnswering) != 1 || doc.NotAnswering[0].ID != 3 || doc.NotAnswering[0].Address != n3.Listen {
			t.Fatalf("nodes JSON with node 3 down %+v", doc)
		}
		pc.with("PUSHCTL_CONSUL_ADDR=127.0.0.1:1").fails(1, "cannot list pushd nodes in Consul at 127.0.0.1:1", "nodes")
	})
}

// statsDoc is pushctl stats' JSON.
type statsDoc struct {
	At       time.Time    `json:"at"`
	Interval float64      `json:"interval_seconds"`
	Total    admin.Rate   `json:"total"`
	Nodes    []admin.Rate `json:"nodes"`
}

// syncedBuffer is a buffer a child process writes while the test reads.
type syncedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cmpSID orders session IDs numerically.
func cmpSID(a, b string) int {
	x, _ := strconv.ParseInt(a, 10, 64)
	y, _ := strconv.ParseInt(b, 10, 64)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// dial opens a dev session for user on p, closed when the test ends.
func dial(t *testing.T, p *pushtest.Pushd, user string) *client.Conn {
	t.Helper()
	return pushtest.Dial(t, p.WSURL(), user)
}
