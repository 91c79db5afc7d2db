package client_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// BenchmarkPushes: user pushes from NATS through a node to one Client and
// its handler: what the client side (read, decode, dedup, dispatch) keeps up
// with. The node runs in process, without history.
func BenchmarkPushes(b *testing.B) {
	ns := pushtest.RunNATS(b)
	nc := ns.Connect(b)
	n := testnode.Start(b, ns.URL(), node.Config{Dev: true, MaxQueuedFrames: 1 << 16, MaxQueuedBytes: 64 << 20})
	done := make(chan struct{})
	got := 0
	c := client.New(client.Config{URL: n.WSURL(), User: "bench", PushBuffer: 1 << 16, OnPush: func(*client.Push) error {
		if got++; got == b.N {
			close(done)
		}
		return nil
	}})
	defer c.Close()
	if err := c.Connect(context.Background()); err != nil {
		b.Fatal(err)
	}
	data := []byte(`{"text":"a push of some sixty bytes, as a chat message is"}`)
	b.ResetTimer()
	for range b.N {
		if err := nc.Publish("push.user.bench", data); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d pushes", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pushes/s")
}

// BenchmarkIdleClient: the memory one connected, idle Client holds (heap
// and goroutine stacks), against a pushd process so that only the clients
// are in this one.
func BenchmarkIdleClient(b *testing.B) {
	p := pushtest.StartPushd(b, bins.Path(b, "pushd"), "--dev", "--nats-embedded-listen", "127.0.0.1:0", "--max-sessions-per-user", "-1")
	const clients = 500
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	var cs []*client.Client
	for i := range clients {
		c := client.New(client.Config{URL: p.WSURL(), User: "idle-" + strconv.Itoa(i)})
		if err := c.Connect(context.Background()); err != nil {
			b.Fatal(err)
		}
		cs = append(cs, c)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapInuse+after.StackInuse-before.HeapInuse-before.StackInuse)/clients, "B/client")
	b.ReportMetric(float64(runtime.NumGoroutine()-goroutines)/clients, "goroutines/client")
	for _, c := range cs {
		_ = c.Close()
	}
}
