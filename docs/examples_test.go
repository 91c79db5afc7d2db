// Package docs_test runs the examples in the docs against real parts, so a
// doc that stops telling the truth fails the suite.
package docs_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/pushd/pushd/history"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
	"github.com/pushd/pushd/presence"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A transcript is a fenced block marked `transcript` (docs/PROTOCOL.md says
// how to read one). Each runs on a fresh node, with history, on a fresh
// JetStream server.
type transcript struct {
	file  string
	line  int // of the opening fence
	steps []step
}

type step struct {
	line int
	text string
}

// transcripts reads the transcript blocks of a Markdown file.
func transcripts(t *testing.T, file string) []transcript {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []transcript
	var cur *transcript
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```transcript":
			cur = &transcript{file: file, line: n}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil && strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "#"):
			cur.steps = append(cur.steps, step{line: n, text: strings.TrimSpace(line)})
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: transcript block not closed", file, cur.line)
	}
	return out
}

func TestProtocolTranscripts(t *testing.T) {
	ts := transcripts(t, "PROTOCOL.md")
	if len(ts) == 0 {
		t.Fatal("PROTOCOL.md has no transcript blocks")
	}
	for _, tr := range ts {
		t.Run(fmt.Sprintf("line%d", tr.line), func(t *testing.T) { run(t, tr) })
	}
}

// player runs one transcript.
type player struct {
	t    *testing.T
	n    *testnode.Node
	nc   *nats.Conn
	ws   *gws.Conn
	in   chan []byte
	vars map[string]any
	subs map[string]*nats.Subscription
}

func run(t *testing.T, tr transcript) {
	ns := pushtest.RunJetStream(t)
	p := &player{t: t, nc: ns.Connect(t), vars: map[string]any{}, subs: map[string]*nats.Subscription{}}
	p.n = testnode.StartWith(t, ns.URL(), node.Config{Dev: true, NodeID: 1}, testnode.Options{History: &history.Config{}, Presence: &presence.Config{}})
	defer p.disconnect()
	for _, s := range tr.steps {
		if err := p.step(s.text); err != nil {
			t.Fatalf("%s:%d: %s\n\t%v", tr.file, s.line, s.text, err)
		}
	}
}

func (p *player) step(text string) error {
	verb, rest, _ := strings.Cut(text, " ")
	switch verb {
	case "connect":
		return p.connect(rest)
	case "disconnect":
		p.disconnect()
		return nil
	case "->":
		if p.ws == nil {
			return fmt.Errorf("not connected")
		}
		return p.ws.WriteMessage(gws.OpcodeText, []byte(p.expand(rest)))
	case "<-":
		return p.receive(rest)
	case "backend":
		return p.backend(rest)
	}
	return fmt.Errorf("unknown step %q", verb)
}

// connect dials the node as a dev user: "connect alice [since=$v]".
func (p *player) connect(args string) error {
	p.disconnect()
	f := strings.Fields(args)
	if len(f) == 0 {
		return fmt.Errorf("connect wants a user")
	}
	q := "user=" + f[0]
	for _, kv := range f[1:] {
		q += "&" + p.expand(kv)
	}
	p.in = make(chan []byte, 64)
	ws, _, err := gws.NewClient(&reader{in: p.in}, &gws.ClientOption{Addr: p.n.WSURL() + "?" + q})
	if err != nil {
		return err
	}
	p.ws = ws
	go ws.ReadLoop()
	return nil
}

// disconnect closes the socket and waits until the node let the session go,
// so what is published next is missed.
func (p *player) disconnect() {
	if p.ws == nil {
		return
	}
	_ = p.ws.WriteClose(1000, nil)
	p.ws.NetConn().Close()
	p.ws = nil
	pushtest.Eventually(p.t, 5*time.Second, func() error {
		if n := p.n.Sessions(); n != 0 {
			return fmt.Errorf("%d sessions still open", n)
		}
		return nil
	})
}

// backend publishes as a backend does ("backend SUBJECT JSON [Header:value ...]",
// waiting for JetStream to store it), subscribes ("backend sub SUBJECT"), or
// expects a message on a subscription ("backend <- SUBJECT JSON").
func (p *player) backend(args string) error {
	switch {
	case strings.HasPrefix(args, "sub "):
		subject := strings.TrimSpace(strings.TrimPrefix(args, "sub "))
		sub, err := p.nc.SubscribeSync(subject)
		if err != nil {
			return err
		}
		p.subs[subject] = sub
		return p.nc.Flush()
	case strings.HasPrefix(args, "<- "):
		subject, want, _ := strings.Cut(strings.TrimPrefix(args, "<- "), " ")
		sub := p.subs[subject]
		if sub == nil {
			return fmt.Errorf("no backend sub %s", subject)
		}
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			return fmt.Errorf("nothing on %s: %v", subject, err)
		}
		return p.match(want, m.Data)
	}
	subject, rest, _ := strings.Cut(args, " ")
	data, headers := splitJSON(rest)
	m := &nats.Msg{Subject: subject, Data: []byte(p.expand(data)), Header: nats.Header{}}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return fmt.Errorf("header %q: want Name:value", h)
		}
		m.Header.Set(k, v)
	}
	// A request: with history on, JetStream acknowledges the push once stored.
	reply, err := p.nc.RequestMsg(m, 5*time.Second)
	if err != nil {
		return fmt.Errorf("publish: %v", err)
	}
	if !bytes.Contains(reply.Data, []byte(`"seq"`)) {
		return fmt.Errorf("publish not stored: %s", reply.Data)
	}
	return nil
}

// splitJSON splits "JSON word word" at the end of the JSON value.
func splitJSON(s string) (string, []string) {
	dec := json.NewDecoder(strings.NewReader(s))
	var v any
	if err := dec.Decode(&v); err != nil {
		return s, nil
	}
	off := dec.InputOffset()
	return s[:off], strings.Fields(s[off:])
}

// receive reads the client's next frame and matches it.
func (p *player) receive(want string) error {
	if p.ws == nil {
		return fmt.Errorf("not connected")
	}
	select {
	case got := <-p.in:
		return p.match(want, got)
	case <-time.After(5 * time.Second):
		return fmt.Errorf("no frame within 5s")
	}
}

// match compares a received JSON object with the expected one: the same
// fields, "…" matching any value, "$name" capturing or comparing a value.
func (p *player) match(want string, got []byte) error {
	var w, g map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		return fmt.Errorf("the doc's frame is not JSON: %v", err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		return fmt.Errorf("received %s: %v", got, err)
	}
	for k, wv := range w {
		gv, ok := g[k]
		if !ok {
			return fmt.Errorf("received %s: no %q", got, k)
		}
		if s, ok := wv.(string); ok && s == "…" {
			continue
		}
		if s, ok := wv.(string); ok && strings.HasPrefix(s, "$") {
			if prev, seen := p.vars[s[1:]]; seen && !reflect.DeepEqual(prev, gv) {
				return fmt.Errorf("received %s: %q is %v, want %s = %v", got, k, gv, s, prev)
			}
			p.vars[s[1:]] = gv
			continue
		}
		if !reflect.DeepEqual(wv, gv) {
			return fmt.Errorf("received %s: %q is %v, want %v", got, k, gv, wv)
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			return fmt.Errorf("received %s: %q is not in the doc", got, k)
		}
	}
	return nil
}

// expand replaces "$name" with captured values.
func (p *player) expand(s string) string {
	names := slices.Collect(maps.Keys(p.vars))
	slices.SortFunc(names, func(a, b string) int { return len(b) - len(a) }) // $sid before $s
	for _, k := range names {
		s = strings.ReplaceAll(s, "$"+k, fmt.Sprint(p.vars[k]))
	}
	return s
}

type reader struct {
	gws.BuiltinEventHandler
	in chan []byte
}

func (r *reader) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	r.in <- append([]byte(nil), m.Bytes()...)
}
