package pushtest

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/contract"
)

// Helpers that talk to a node the way clients and backends do: over its
// WebSocket with the Go client, and over NATS.

// Ctx is a context that ends after 10s or with the test.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Dial opens a dev session for user at wsURL, closed when the test ends.
func Dial(t testing.TB, wsURL, user string) *client.Conn {
	t.Helper()
	c, err := client.Dial(Ctx(t), wsURL, client.Options{User: user})
	if err != nil {
		t.Fatalf("dial %s: %v", user, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Publish sends a push asking for delivery reports (the Push-Report
// header, which works whether or not the push is kept in history) and
// collects them until want nodes answered; with want 0 it waits 300ms for
// none.
func Publish(t testing.TB, nc *nats.Conn, subject string, hdr nats.Header, data string, want int) []contract.Report {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	h := nats.Header{}
	for k, v := range hdr {
		h[k] = v
	}
	h.Set(contract.HeaderReport, inbox)
	if err := nc.PublishMsg(&nats.Msg{Subject: subject, Header: h, Data: []byte(data)}); err != nil {
		t.Fatal(err)
	}
	var out []contract.Report
	wait := 5 * time.Second
	if want == 0 {
		wait = 300 * time.Millisecond // no node should answer: bounded wait for a non-event
	}
	deadline := time.Now().Add(wait)
	for want == 0 || len(out) < want {
		m, err := sub.NextMsg(time.Until(deadline))
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var r contract.Report
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatalf("bad delivery report %q: %v", m.Data, err)
		}
		out = append(out, r)
	}
	if len(out) != want {
		t.Fatalf("%s: got %d delivery reports %+v, want %d", subject, len(out), out, want)
	}
	return out
}

// Delivered sums the reports' delivered counts.
func Delivered(rs []contract.Report) int {
	n := 0
	for _, r := range rs {
		n += r.Delivered
	}
	return n
}

// ExpectPush reads c's next push and checks its event and data (data ""
// checks no data).
func ExpectPush(t testing.TB, c *client.Conn, event, data string) client.Frame {
	t.Helper()
	f, err := c.Next(Ctx(t))
	if err != nil {
		t.Fatalf("%s: waiting for push %q: %v", c.SID(), event, err)
	}
	if f.Event != event || (data != "" && string(f.Data) != data) {
		t.Fatalf("%s: got push event=%q data=%s, want event=%q data=%s", c.SID(), f.Event, f.Data, event, data)
	}
	return f
}

// Marker sends a session push and checks it is the next push c sees,
// proving c received nothing else in between.
func Marker(t testing.TB, nc *nats.Conn, c *client.Conn) {
	t.Helper()
	ev := "marker-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	Publish(t, nc, SessionSubject(c.SID()), nats.Header{"Push-Event": []string{ev}}, `{}`, 1)
	ExpectPush(t, c, ev, "")
}

// SessionSubject is where a backend publishes to session sid.
func SessionSubject(sid string) string { return contract.NewSubjects("").Session(sid) }

// Header builds NATS headers from key, value pairs.
func Header(kv ...string) nats.Header {
	h := nats.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// CloseCode is the close code of a client's end, 0 without a close frame.
func CloseCode(err error) uint16 {
	var ce *client.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}
