package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
)

// process is a pushd started as its own process.
type process struct {
	cmd    *exec.Cmd
	listen string
	exited chan error
}

// runProcess starts the pushd binary with args and waits for its start
// line; it is killed when the test ends.
func runProcess(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(binary(t), append([]string{"--listen", "127.0.0.1:0", "--admin-listen", "", "--log-format", "json"}, args...)...), exited: make(chan error, 1)}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.exited })
	logs := bufio.NewScanner(stderr)
	var lines []string
	for p.listen == "" && logs.Scan() {
		lines = append(lines, logs.Text())
		var rec struct{ Msg, Listen string }
		if json.Unmarshal(logs.Bytes(), &rec) == nil && rec.Msg == "pushd started" {
			p.listen = rec.Listen
		}
	}
	go func() {
		for logs.Scan() { // keep the pipe drained
		}
		p.exited <- p.cmd.Wait()
	}()
	if p.listen == "" {
		t.Fatalf("pushd did not log its start:\n%s", strings.Join(lines, "\n"))
	}
	return p
}

// TestResumeOnAnotherNodeAfterKill9: a node is killed with SIGKILL, no drain,
// no goodbye. Its client reconnects to another node with the positions it
// last processed and gets every user and doc push published meanwhile, in
// order, then the live ones.
func TestResumeOnAnotherNodeAfterKill9(t *testing.T) {
	t.Parallel()
	ns := pushtest.RunJetStream(t)
	nc := ns.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	a := runProcess(t, "--dev", "--nats-url", ns.URL(), "--node-id", "1")
	b := runProcess(t, "--dev", "--nats-url", ns.URL(), "--node-id", "2")
	ctx := pushtest.Ctx(t)

	c, err := client.Dial(ctx, "ws://"+a.listen+"/ws", client.Options{User: "kim"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Join(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	pushtest.Publish(t, nc, "push.user.kim", nil, `"u0"`, 1)
	pushtest.Publish(t, nc, "push.doc.k", nil, `"d0"`, 1)
	u0, d0 := next(t, c, `"u0"`), next(t, c, `"d0"`)

	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	for i := 1; i <= 3; i++ {
		for _, subject := range []string{"push.user.kim", "push.doc.k"} {
			if _, err := js.Publish(ctx, subject, []byte(strconv.Quote(subject[5:6]+strconv.Itoa(i)))); err != nil {
				t.Fatal(err)
			}
		}
	}

	c2, err := client.Dial(ctx, "ws://"+b.listen+"/ws", client.Options{User: "kim", Since: u0.Seq})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if h := c2.Hello(); h.Recovered == nil || !*h.Recovered || h.Node != 2 {
		t.Fatalf("hello %+v: want node 2, recovered:true", h)
	}
	for _, want := range []string{`"u1"`, `"u2"`, `"u3"`} {
		next(t, c2, want)
	}
	j, err := c2.JoinSince(ctx, "k", d0.Seq)
	if err != nil || j.Recovered == nil || !*j.Recovered {
		t.Fatalf("join since %s: %+v %v", d0.Seq, j, err)
	}
	for _, want := range []string{`"d1"`, `"d2"`, `"d3"`} {
		next(t, c2, want)
	}
	pushtest.Publish(t, nc, "push.doc.k", nil, `"live"`, 1)
	next(t, c2, `"live"`)
}

// next reads c's next push and checks its data.
func next(t *testing.T, c *client.Client, data string) client.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("waiting for push %s: %v", data, err)
	}
	if string(f.Data) != data || f.Seq == "" {
		t.Fatalf("push %s (seq %q), want %s with a seq", f.Data, f.Seq, data)
	}
	return f
}
