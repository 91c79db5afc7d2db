package node

import (
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushd/pushd/contract"
)

// discardConn is a net.Conn whose writes vanish, so the fan-out benchmarks
// measure the node's own work (queueing, writer goroutines, writev set-up)
// and not the kernel's.
type discardConn struct {
	writes atomic.Int64
}

func (c *discardConn) Read([]byte) (int, error)         { select {} }
func (c *discardConn) Write(b []byte) (int, error)      { c.writes.Add(1); return len(b), nil }
func (c *discardConn) Close() error                     { return nil }
func (c *discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *discardConn) SetDeadline(time.Time) error      { return nil }
func (c *discardConn) SetReadDeadline(time.Time) error  { return nil }
func (c *discardConn) SetWriteDeadline(time.Time) error { return nil }

// benchNode builds a node with subs sessions (one user each, all in doc
// "bench") writing to one discarding conn.
func benchNode(b testing.TB, subs int) (*Node, *discardConn) {
	b.Helper()
	n := fillHub(b, subs, subs)
	dc := &discardConn{}
	for _, s := range n.hub.all() {
		s.t.(*wsTransport).nc = dc
		if _, err := n.hub.docs.add("bench", s, func() error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	return n, dc
}

func benchBody(size int) []byte {
	body := []byte(`{"t":1763776000000000000,"s":1,"p":"`)
	for len(body) < size-2 {
		body = append(body, 'x')
	}
	return append(body, `"}`...)
}

func BenchmarkEncodePush(b *testing.B) {
	for _, size := range []int{64, 256, 4096} {
		p := &contract.Push{Target: contract.TargetDoc, Key: "team-7", Event: "comment", ID: "0190c6f7-2b7a", Data: benchBody(size)}
		b.Run("size="+strconv.Itoa(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				encodePush(p).release()
			}
		})
	}
}

// BenchmarkDeliver is one push fanned out to subs sessions of a doc, waiting
// until every writer has written it: ns/op divided by subs is the node's CPU
// per delivered frame without the syscall.
func BenchmarkDeliver(b *testing.B) {
	for _, subs := range []int{1, 100, 1000, 18000} {
		for _, size := range []int{256} {
			b.Run(fmt.Sprintf("subs=%d/size=%d", subs, size), func(b *testing.B) {
				n, dc := benchNode(b, subs)
				p := &contract.Push{Target: contract.TargetDoc, Key: "bench", Event: "bench", Data: benchBody(size)}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if got := n.Deliver(p); got.Delivered != subs {
						b.Fatalf("delivered %+v", got)
					}
					n.writers.Wait()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subs), "ns/delivery")
				_ = dc
			})
		}
	}
}

// BenchmarkDeliverBurst sends burst pushes back to back to each of subs
// sessions before waiting: the writer coalesces what queued while it ran.
func BenchmarkDeliverBurst(b *testing.B) {
	for _, subs := range []int{1000} {
		for _, burst := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("subs=%d/burst=%d", subs, burst), func(b *testing.B) {
				n, dc := benchNode(b, subs)
				p := &contract.Push{Target: contract.TargetDoc, Key: "bench", Event: "bench", Data: benchBody(256)}
				w0 := dc.writes.Load()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					for range burst {
						n.Deliver(p)
					}
					n.writers.Wait()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subs*burst), "ns/delivery")
				b.ReportMetric(float64(subs*burst*b.N)/float64(max(dc.writes.Load()-w0, 1)), "frames/write")
			})
			// The router's path: the burst is one Batch, so each session gets
			// one writer (and, on a real socket, one writev) for all of it.
			b.Run(fmt.Sprintf("subs=%d/burst=%d/batched", subs, burst), func(b *testing.B) {
				n, _ := benchNode(b, subs)
				p := &contract.Push{Target: contract.TargetDoc, Key: "bench", Event: "bench", Data: benchBody(256)}
				batch := n.NewBatch()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					for range burst {
						batch.Deliver(p)
					}
					batch.Flush()
					n.writers.Wait()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subs*burst), "ns/delivery")
			})
		}
	}
}

// BenchmarkHubLookup is the index work of targeted pushes.
func BenchmarkHubLookup(b *testing.B) {
	for _, sessions := range []int{1000, 100000} {
		n := fillHub(b, sessions, sessions)
		ids := make([]int64, 0, sessions)
		for _, s := range n.hub.all() {
			ids = append(ids, s.id)
		}
		b.Run(fmt.Sprintf("by=user/sessions=%d", sessions), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				n.hub.users.each("user-"+strconv.Itoa(i%sessions), func(*session) {})
				i++
			}
		})
		b.Run(fmt.Sprintf("by=session/sessions=%d", sessions), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if n.hub.session(ids[i%len(ids)]) == nil {
					b.Fatal("missing")
				}
				i++
			}
		})
	}
}
