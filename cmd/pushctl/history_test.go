package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushtest"
)

// TestPushctlHistory: pushes published with pushctl are listed by pushctl
// history with the positions clients see, oldest first, paged by --since and
// --limit; bad arguments and a NATS without JetStream get clear errors.
func TestPushctlHistory(t *testing.T) {
	t.Parallel()
	bin := bins.Path(t, "pushctl")
	ns := pushtest.RunJetStream(t)
	p := startPushd(t, ns.URL(), 1)
	pc := ctl{t: t, bin: bin, env: []string{"PUSHCTL_NATS_URL=" + ns.URL(), "PUSHCTL_TIMEOUT=2s"}}
	pushtest.Eventually(t, 10*time.Second, func() error { // history is on once the streams answer
		if r := pc.run("history", "doc", "d1"); r.code != 0 {
			return fmt.Errorf("history not ready: %s", r.stderr)
		}
		return nil
	})

	c := dial(t, p, "alice")
	if err := c.Join(pushtest.Ctx(t), "d1"); err != nil {
		t.Fatal(err)
	}
	var seqs []string
	for i, data := range []string{`{"n":1}`, `"plain"`, `[1,2,3]`} {
		out := pc.ok("publish", "--doc", "d1", "--event", "edit", "--id", "m-"+strconv.Itoa(i), data)
		f, err := c.Next(pushtest.Ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "stored in history at seq "+f.Seq) {
			t.Fatalf("publish said %q; the client got seq %s", out, f.Seq)
		}
		seqs = append(seqs, f.Seq)
	}

	out := pc.ok("history", "doc", "d1")
	rs := rows(out)
	if !slices.Equal(rs[0], []string{"SEQ", "STORED", "EVENT", "ID", "DATA"}) || len(rs) != 4 {
		t.Fatalf("history table:\n%s", out)
	}
	for i, r := range rs[1:] {
		if r[0] != seqs[i] || r[len(r)-3] != "edit" || r[len(r)-2] != "m-"+strconv.Itoa(i) {
			t.Fatalf("row %d %q, want seq %s, event edit, id m-%d", i, r, seqs[i], i)
		}
	}

	type stored struct {
		Seq      string    `json:"seq"`
		StoredAt time.Time `json:"stored_at"`
		Event    string    `json:"event"`
		ID       string    `json:"id"`
		Data     any       `json:"data"`
	}
	js := decode[[]stored](t, pc.ok("history", "doc", "d1", "--since", seqs[0], "-o", "json"))
	if len(js) != 2 || js[0].Seq != seqs[1] || js[0].Data != "plain" || js[0].StoredAt.IsZero() || js[1].ID != "m-2" {
		t.Fatalf("history --since %s: %+v", seqs[0], js)
	}
	r := pc.run("history", "doc", "d1", "--limit", "1")
	if r.code != 0 || len(rows(r.stdout)) != 2 || !strings.Contains(r.stderr, "--since "+seqs[0]) {
		t.Fatalf("history --limit 1: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := pc.run("history", "user", "nobody"); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "No pushes kept for user nobody") {
		t.Fatalf("empty history: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if got := pc.ok("history", "user", "nobody", "-o", "json"); strings.TrimSpace(got) != "[]" {
		t.Fatalf("empty history as JSON: %q", got)
	}

	pc.fails(exitUsage, "want user or doc", "history", "all", "x")
	pc.fails(exitUsage, "invalid id", "history", "doc", "a*b")
	pc.fails(exitUsage, "--limit 0", "history", "doc", "d1", "--limit", "0")
	pc.fails(exitUsage, "wants a kind", "history", "doc")

	plain := pushtest.RunNATS(t)
	pc.with("PUSHCTL_NATS_URL="+plain.URL()).fails(exitFailure, "history does not answer", "history", "doc", "d1")
}
