package router

import (
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/contract"
)

// countDeliverer counts body bytes; it is its own batch.
type countDeliverer struct{ n int }

func (c *countDeliverer) Flush() {}

func (c *countDeliverer) Deliver(p *contract.Push) contract.Report {
	c.n += len(p.Data)
	return contract.Report{Matched: 1, Delivered: 1}
}

// BenchmarkHandle is the router's per-message work: subject parse, header
// decode and the hand-off to the node (a no-op deliverer here).
func BenchmarkHandle(b *testing.B) {
	ts := strconv.FormatInt(time.Now().UnixNano(), 10)
	body := make([]byte, 256)
	for _, tc := range []struct {
		name string
		msg  *nats.Msg
	}{
		{"headers=none", &nats.Msg{Subject: "push.user.alice", Data: body}},
		{"headers=ts", &nats.Msg{Subject: "push.user.alice", Data: body, Header: nats.Header{contract.HeaderTimestamp: {ts}}}},
		{"headers=all", &nats.Msg{Subject: "push.doc.team-7", Data: body, Header: nats.Header{
			contract.HeaderTimestamp: {ts}, contract.HeaderEvent: {"comment"}, contract.HeaderID: {"0190c6f7-2b7a"}, contract.HeaderTraceID: {"4bf92f3577b34da6"},
		}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d := &countDeliverer{}
			r := &Router{subjects: contract.NewSubjects("")}
			var p contract.Push
			b.ReportAllocs()
			for b.Loop() {
				r.handle(tc.msg, d, &p)
			}
		})
	}
}
