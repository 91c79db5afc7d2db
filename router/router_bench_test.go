package router

import (
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

type countDeliverer struct{ n int }

func (c *countDeliverer) Deliver(d *Delivery) int {
	c.n += len(d.Data)
	return 1
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
		{"headers=ts", &nats.Msg{Subject: "push.user.alice", Data: body, Header: nats.Header{HeaderTimestamp: {ts}}}},
		{"headers=all", &nats.Msg{Subject: "push.doc.team-7", Data: body, Header: nats.Header{
			HeaderTimestamp: {ts}, HeaderEvent: {"comment"}, HeaderID: {"0190c6f7-2b7a"}, HeaderTraceID: {"4bf92f3577b34da6"},
		}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d := &countDeliverer{}
			r := &Router{subjects: NewSubjects(""), cfg: Config{Deliverer: d}}
			var del Delivery
			b.ReportAllocs()
			for b.Loop() {
				r.handle(tc.msg, unbatched{d}, &del)
			}
		})
	}
}

func BenchmarkSubjectsParse(b *testing.B) {
	s := NewSubjects("")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := s.Parse("push.session.3.1862263214372491264"); !ok {
			b.Fatal("parse")
		}
	}
}

func BenchmarkParseTimestamp(b *testing.B) {
	v := strconv.FormatInt(time.Now().UnixNano(), 10)
	b.ReportAllocs()
	for b.Loop() {
		if ParseTimestamp(v) == 0 {
			b.Fatal("zero")
		}
	}
}
