package main

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Each scenario fills b.rep; errors are setup failures, failed checks are in
// the report.

func (b *bench) connectChecked(targets []string, subject string) (connectResult, error) {
	prefix := b.phase
	switch b.rep.Scenario {
	case "compare":
		prefix = b.mode + "_"
	case "transports":
		prefix = b.o.transport + "_"
	}
	cr, err := b.connect(targets, subject)
	b.rep.add(prefix+"connections", float64(cr.connected), "")
	if cr.failed > 0 {
		b.rep.add(prefix+"connect_failures", float64(cr.failed), "")
		b.rep.note("first connect error: " + cr.firstErr)
	}
	b.rep.check(prefix+"all clients connected", cr.connected == b.o.conns, fmt.Sprintf("%d/%d", cr.connected, b.o.conns))
	return cr, err
}

func runIdle(b *bench) error {
	if err := b.setup(); err != nil {
		return err
	}
	base := b.cl.sample(true)
	if _, err := b.connectChecked(b.cl.targets(), ""); err != nil {
		return err
	}
	return b.idleMeasure(base, "")
}

// idleMeasure holds the connections for o.hold, then reports per-connection
// server cost against base.
func (b *bench) idleMeasure(base serverSample, prefix string) error {
	t0, err := b.stats(false)
	if err != nil {
		return err
	}
	select {
	case <-time.After(b.o.hold):
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
	t1, err := b.stats(false)
	if err != nil {
		return err
	}
	s := b.cl.sample(true)
	n := float64(max(t1.open, 1))
	b.rep.add(prefix+"open", float64(t1.open), "")
	b.rep.add(prefix+"server_rss_total", float64(s.RSS)/(1<<20), "MiB")
	b.rep.add(prefix+"server_rss_per_conn", float64(s.RSS-base.RSS)/n/1024, "KiB")
	if s.HeapInuse > 0 {
		b.rep.add(prefix+"server_heap_inuse_per_conn", (s.HeapInuse-base.HeapInuse)/n/1024, "KiB")
		b.rep.add(prefix+"server_stack_inuse_per_conn", (s.StackInuse-base.StackInuse)/n/1024, "KiB")
	}
	if s.Goroutines > 0 {
		b.rep.add(prefix+"server_goroutines_per_conn", (s.Goroutines-base.Goroutines)/n, "")
	}
	secs := b.o.hold.Seconds()
	b.rep.add(prefix+"heartbeats_per_sec", float64(t1.pingsSent-t0.pingsSent)/secs, "1/s")
	b.rep.add(prefix+"heartbeat_bytes_per_sec", float64((t1.bytesIn-t0.bytesIn)+(t1.bytesOut-t0.bytesOut))/secs, "B/s")
	b.rep.add(prefix+"client_drops", float64(t1.dropped), "")
	if !b.o.inProcess {
		var rss int64
		for _, w := range b.workers {
			rss += procRSS(w.pid)
		}
		// the lean gws client, for comparison with the client package
		// (whose buffered channels alone are 1088 frames x 192 B = 204 KiB)
		b.rep.add(prefix+"client_rss_per_conn", float64(rss)/n/1024, "KiB")
	}
	b.rep.check(prefix+"no connection dropped while idle", t1.dropped == 0 && t1.open == b.o.conns, fmt.Sprintf("open %d, dropped %d", t1.open, t1.dropped))
	return nil
}

func runConnect(b *bench) error {
	if err := b.setup(); err != nil {
		return err
	}
	cpu0 := b.cl.sample(false).CPUNanos
	cr, err := b.connectChecked(b.cl.targets(), "")
	if err != nil {
		return err
	}
	cpu1 := b.cl.sample(false).CPUNanos
	b.rep.add("ramp_seconds", cr.elapsed.Seconds(), "s")
	b.rep.add("accepted_per_sec_avg", float64(cr.connected)/cr.elapsed.Seconds(), "1/s")
	b.rep.add("accepted_per_sec_peak", float64(cr.peakPerSec), "1/s")
	s := cr.hs.Summary()
	b.rep.add("handshake_p50", s.P50, "ms")
	b.rep.add("handshake_p99", s.P99, "ms")
	b.rep.add("handshake_max", s.Max, "ms")
	b.rep.add("server_cpu_per_connect", float64(cpu1-cpu0)/1e3/float64(max(cr.connected, 1)), "µs")
	return nil
}

// broadcastPhase publishes o.count pushes to the broadcast subject and reports
// deliveries, server CPU per frame and time-to-last-client.
func (b *bench) broadcastPhase(subject, prefix string) error {
	if err := b.reset(b.o.count); err != nil {
		return err
	}
	open := b.o.conns
	s0 := b.cl.sample(false)
	c0, _ := b.stats(false)
	start, _, err := b.publish(b.o.count, b.o.rate, func(int) string { return subject })
	if err != nil {
		return err
	}
	expected := uint64(b.o.count) * uint64(open)
	t, err := b.waitDelivered(expected)
	if err != nil {
		return err
	}
	s1 := b.cl.sample(false)
	last := &Hist{}
	var lastAt int64
	missing := 0
	for _, v := range t.last {
		if v == 0 {
			missing++
			continue
		}
		lastAt = max(lastAt, v)
	}
	// time to last client per push: last receive minus the send time, which
	// is in the body; we recover it from the schedule: the body holds it, the
	// worker recorded the max receive, and per-delivery latency is in t.lat.
	for seq, v := range t.last {
		if v > 0 {
			last.Record(v - b.sentAt(seq, start))
		}
	}
	span := time.Duration(lastAt - start.UnixNano())
	b.rep.add(prefix+"pushes", float64(b.o.count), "")
	b.rep.add(prefix+"deliveries", float64(t.received), "")
	b.rep.add(prefix+"expected", float64(expected), "")
	b.rep.add(prefix+"deliveries_per_sec", float64(t.received)/max(span.Seconds(), 1e-9), "1/s")
	b.rep.add(prefix+"server_cpu_per_delivery", float64(s1.CPUNanos-s0.CPUNanos)/1e3/float64(max(t.received, 1)), "µs")
	if w := s1.WriteCalls - s0.WriteCalls; w > 0 {
		b.rep.add(prefix+"server_frames_per_write", float64(t.received)/float64(w), "")
	}
	b.rep.add(prefix+"client_cpu_per_delivery", float64(t.clientCPU-c0.clientCPU)/1e3/float64(max(t.received, 1)), "µs")
	ls := last.Summary()
	b.rep.add(prefix+"last_client_p50", ls.P50, "ms")
	b.rep.add(prefix+"last_client_p99", ls.P99, "ms")
	lat := t.lat.Summary()
	b.rep.add(prefix+"delivery_latency_p50", lat.P50, "ms")
	b.rep.add(prefix+"delivery_latency_p99", lat.P99, "ms")
	b.rep.check(prefix+"every client got every push", t.received == expected && missing == 0,
		fmt.Sprintf("%d/%d deliveries", t.received, expected))
	b.rep.setRaw(prefix+"last_client_hist", ls)
	return nil
}

// sentAt is when push seq was scheduled; bodies carry the exact send time,
// and at the rates used the schedule is within the publisher's jitter of it,
// so the per-delivery latency histogram (from the body) is the precise one.
func (b *bench) sentAt(seq int, start time.Time) int64 {
	if b.o.rate <= 0 {
		return start.UnixNano()
	}
	return start.Add(time.Duration(float64(seq) / b.o.rate * 1e9)).UnixNano()
}

func runBroadcast(b *bench) error {
	if err := b.setup(); err != nil {
		return err
	}
	if _, err := b.connectChecked(b.cl.targets(), ""); err != nil {
		return err
	}
	return b.broadcastPhase("push.all", "")
}

func runTargeted(b *bench) error {
	if err := b.setup(); err != nil {
		return err
	}
	if _, err := b.connectChecked(b.cl.targets(), ""); err != nil {
		return err
	}
	if err := b.reset(0); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	s0 := b.cl.sample(false)
	start, end, err := b.publish(b.o.count, b.o.rate, func(int) string { return "push.user." + randomUser(rng, b.users) })
	if err != nil {
		return err
	}
	expected := uint64(b.o.count)
	t, err := b.waitDelivered(expected)
	if err != nil {
		return err
	}
	s1 := b.cl.sample(false)
	lat := t.lat.Summary()
	b.rep.add("pushes", float64(b.o.count), "")
	b.rep.add("publish_rate", float64(b.o.count)/end.Sub(start).Seconds(), "1/s")
	b.rep.add("delivered", float64(t.received), "")
	b.rep.add("lost", float64(int64(expected)-int64(t.received)), "")
	b.rep.add("latency_p50", lat.P50, "ms")
	b.rep.add("latency_p99", lat.P99, "ms")
	b.rep.add("latency_p999", lat.P999, "ms")
	b.rep.add("latency_max", lat.Max, "ms")
	b.rep.add("server_cpu_per_delivery", float64(s1.CPUNanos-s0.CPUNanos)/1e3/float64(max(t.received, 1)), "µs")
	b.rep.check("zero loss", t.received == expected, fmt.Sprintf("%d/%d", t.received, expected))
	return nil
}

func runDocs(b *bench) error {
	if b.o.docs <= 0 {
		b.o.docs = 100
	}
	if err := b.setup(); err != nil {
		return err
	}
	if _, err := b.connectChecked(b.cl.targets(), ""); err != nil {
		return err
	}
	members := make([]int, b.o.docs)
	z := zipfFor(b.o.docs)
	for i := 0; i < b.o.conns; i++ {
		members[docFor(i, b.o.docs, b.o.docDist, z)]++
	}
	nonEmpty, biggest := 0, 0
	for _, m := range members {
		if m > 0 {
			nonEmpty++
		}
		biggest = max(biggest, m)
	}
	if err := b.reset(0); err != nil {
		return err
	}
	var expected uint64
	for seq := 0; seq < b.o.count; seq++ {
		expected += uint64(members[seq%b.o.docs])
	}
	s0 := b.cl.sample(false)
	start, _, err := b.publish(b.o.count, b.o.rate, func(seq int) string { return "push.doc." + docID(seq%b.o.docs) })
	if err != nil {
		return err
	}
	t, err := b.waitDelivered(expected)
	if err != nil {
		return err
	}
	s1 := b.cl.sample(false)
	_ = start
	lat := t.lat.Summary()
	b.rep.add("docs", float64(b.o.docs), "")
	b.rep.add("docs_with_members", float64(nonEmpty), "")
	b.rep.add("largest_doc", float64(biggest), "members")
	b.rep.add("pushes_per_doc", float64(b.o.count)/float64(b.o.docs), "")
	b.rep.add("deliveries", float64(t.received), "")
	b.rep.add("expected", float64(expected), "")
	b.rep.add("latency_p50", lat.P50, "ms")
	b.rep.add("latency_p99", lat.P99, "ms")
	b.rep.add("server_cpu_per_delivery", float64(s1.CPUNanos-s0.CPUNanos)/1e3/float64(max(t.received, 1)), "µs")
	b.rep.check("zero loss", t.received == expected, fmt.Sprintf("%d/%d", t.received, expected))
	return nil
}

func runChurn(b *bench) error {
	if err := b.setup(); err != nil {
		return err
	}
	base := b.cl.sample(true)
	if _, err := b.connectChecked(b.cl.targets(), ""); err != nil {
		return err
	}
	time.Sleep(time.Second)
	before := b.cl.sample(true)
	if err := b.reset(0); err != nil {
		return err
	}
	nw := len(b.workers)
	// pushes flow to the broadcast subject during the churn
	pubDone := make(chan error, 1)
	pushes := int(b.o.rate * b.o.duration.Seconds())
	go func() {
		_, _, err := b.publish(pushes, b.o.rate, func(int) string { return "push.all" })
		pubDone <- err
	}()
	churnStart := time.Now()
	rs, err := all(b.ctx, b.workers, b.o.duration+2*time.Minute, func(int) command {
		return command{Op: "churn", Churn: &churnSpec{PerSecond: b.o.churnRate / float64(nw), DurationNs: int64(b.o.duration)}}
	})
	if perr := <-pubDone; perr != nil && err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	churnTime := time.Since(churnStart)
	var cycles, errs uint64
	for _, r := range rs {
		cycles += r.Cycles
		errs += r.Errors
	}
	// Let the servers finish closing what churned away, then compare.
	time.Sleep(b.o.settle)
	t, _ := b.stats(false)
	after := b.cl.sample(true)
	n := float64(max(b.o.conns, 1))
	b.rep.add("churn_cycles", float64(cycles), "")
	b.rep.add("churn_seconds", churnTime.Seconds(), "s")
	b.rep.add("churn_per_sec", float64(cycles)/churnTime.Seconds(), "1/s")
	b.rep.add("reconnect_errors", float64(errs), "")
	b.rep.add("pushes_received_during_churn", float64(t.received), "")
	b.rep.add("open_after", float64(t.open), "")
	b.rep.add("server_sessions_after", after.Sessions, "")
	b.rep.add("goroutines_base", base.Goroutines, "")
	b.rep.add("goroutines_before", before.Goroutines, "")
	b.rep.add("goroutines_after", after.Goroutines, "")
	b.rep.add("rss_before_per_conn", float64(before.RSS-base.RSS)/n/1024, "KiB")
	b.rep.add("rss_after_per_conn", float64(after.RSS-base.RSS)/n/1024, "KiB")
	b.rep.add("heap_live_before", before.HeapLive/(1<<20), "MiB")
	b.rep.add("heap_live_after", after.HeapLive/(1<<20), "MiB")
	b.rep.add("heap_inuse_before", before.HeapInuse/(1<<20), "MiB")
	b.rep.add("heap_inuse_after", after.HeapInuse/(1<<20), "MiB")
	gDelta := after.Goroutines - before.Goroutines
	b.rep.check("goroutines flat after churn", gDelta <= max(10, 0.01*n), fmt.Sprintf("%+.0f", gDelta))
	// Live objects after a GC, not heap_inuse: spans stay fragmented after
	// many reallocation cycles without anything leaking.
	b.rep.check("live heap flat after churn", after.HeapLive <= before.HeapLive*1.1+4<<20,
		fmt.Sprintf("%.1f -> %.1f MiB live", before.HeapLive/(1<<20), after.HeapLive/(1<<20)))
	b.rep.check("sessions match clients", int(after.Sessions) == t.open || after.Sessions == 0, fmt.Sprintf("server %v, clients %d", after.Sessions, t.open))
	b.rep.check("churn reached its rate", float64(cycles) >= 0.9*b.o.churnRate*b.o.duration.Seconds(),
		fmt.Sprintf("%d cycles in %.0fs", cycles, churnTime.Seconds()))
	return nil
}

// runCompare runs idle + broadcast against pushd, then against NATS server's
// own WebSocket listener, and reports the ratios.
func runCompare(b *bench) error {
	// pushd side
	if err := b.setup(); err != nil {
		return err
	}
	base := b.cl.sample(true)
	if _, err := b.connectChecked(b.cl.targets(), ""); err != nil {
		return err
	}
	if err := b.idleMeasure(base, "pushd_"); err != nil {
		return err
	}
	if err := b.broadcastPhase("push.all", "pushd_"); err != nil {
		return err
	}
	b.close()

	// NATS WebSocket side
	b.workers, b.cl, b.mode = nil, &cluster{}, "nats"
	tmp, err := b.tmpCluster()
	if err != nil {
		return err
	}
	b.cl = tmp
	peer, url, err := b.cl.startPeerNATS(b.ctx)
	if err != nil {
		return err
	}
	b.cl.servers = []*serverProc{peer}
	if err := b.connectNATS(url); err != nil {
		return err
	}
	base = b.cl.sample(false)
	if _, err := b.connectChecked([]string{peer.ws}, "push.all"); err != nil {
		return err
	}
	if err := b.idleMeasure(base, "nats_"); err != nil {
		return err
	}
	if err := b.broadcastPhase("push.all", "nats_"); err != nil {
		return err
	}
	b.rep.ratio("ratio_rss_per_conn", "pushd_server_rss_per_conn", "nats_server_rss_per_conn")
	b.rep.ratio("ratio_cpu_per_delivery", "pushd_server_cpu_per_delivery", "nats_server_cpu_per_delivery")
	b.rep.ratio("ratio_last_client_p99", "pushd_last_client_p99", "nats_last_client_p99")
	return nil
}

func (b *bench) tmpCluster() (*cluster, error) {
	c := &cluster{}
	dir, err := mkTemp()
	c.tmp = dir
	return c, err
}

// runTransports runs idle + broadcast with WebSocket, SSE and long-poll
// clients in turn (--transports), each against freshly started nodes so
// every transport's memory is measured from the same baseline, and reports
// each HTTP transport's cost against the WebSocket's.
func runTransports(b *bench) error {
	transports := b.o.transports
	defer func(t string) { b.o.transport = t }(b.o.transport)
	for i, t := range transports {
		if i > 0 {
			b.close()
			b.workers, b.cl = nil, nil
		}
		b.o.transport = t
		if err := b.setup(); err != nil {
			return err
		}
		time.Sleep(time.Second) // let the fresh node settle before the baseline
		base := b.cl.sample(true)
		prefix := t + "_"
		if _, err := b.connectChecked(b.cl.targets(), ""); err != nil {
			return err
		}
		if err := b.idleMeasure(base, prefix); err != nil {
			return err
		}
		if err := b.broadcastPhase("push.all", prefix); err != nil {
			return err
		}
	}
	for _, t := range transports {
		if t == transportWS {
			continue
		}
		b.rep.ratio(t+"_vs_ws_rss_per_conn", t+"_server_rss_per_conn", "ws_server_rss_per_conn")
		b.rep.ratio(t+"_vs_ws_heap_per_conn", t+"_server_heap_inuse_per_conn", "ws_server_heap_inuse_per_conn")
		b.rep.ratio(t+"_vs_ws_cpu_per_delivery", t+"_server_cpu_per_delivery", "ws_server_cpu_per_delivery")
	}
	return nil
}
