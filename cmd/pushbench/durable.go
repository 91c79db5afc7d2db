package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Scenarios of durable delivery (docs/PROTOCOL.md, "Positions and
// resuming"): history's cost on the live path, a reconnect storm, and a
// rolling restart. They run NATS with JetStream as a child process, so the
// NATS server's CPU is measured apart from the clients' and the publisher's.

// Metric names read from the nodes (docs/METRICS.md).
const (
	mReads      = "pushd_history_reads_total"
	mTail       = "pushd_history_tail_replays_total"
	mReplayed   = "pushd_history_replayed_pushes_total"
	mRecovered  = `pushd_history_replays_total{result="recovered"}`
	mNotRecov   = `pushd_history_replays_total{result="not_recovered"}`
	mGapFills   = "pushd_history_gap_fills_total"
	mHistDups   = "pushd_history_duplicates_total"
	mConnection = "pushd_connections"
)

var historyMetrics = []string{mReads, mTail, mReplayed, mRecovered, mNotRecov, mGapFills, mHistDups, mConnection}

// usage is CPU of the nodes and of the NATS server at one moment.
type usage struct{ pushd, nats int64 }

func (b *bench) usage() usage { return usage{b.cl.sample(false).CPUNanos, b.cl.natsCPU()} }

// perPush adds CPU per push (µs) of the nodes and, when it is ours, of NATS.
func (b *bench) perPush(prefix string, u0, u1 usage, n uint64) {
	b.rep.add(prefix+"pushd_cpu_per_delivery", float64(u1.pushd-u0.pushd)/1e3/float64(max(n, 1)), "µs")
	if u0.nats >= 0 {
		b.rep.add(prefix+"nats_cpu_per_delivery", float64(u1.nats-u0.nats)/1e3/float64(max(n, 1)), "µs")
	}
}

// runHistory runs the targeted workload (and with --docs the docs one) on
// nodes with --history=false, then on new nodes with --history=true, against
// the same JetStream-enabled NATS server, in one invocation.
func runHistory(b *bench) error {
	if len(b.o.targets) > 0 {
		return errors.New("history starts its nodes twice (--history=false, then true): give --pushd-bin, not --target")
	}
	b.resume = true // count pushes with and without positions
	for _, on := range []bool{false, true} {
		prefix := map[bool]string{false: "off_", true: "on_"}[on]
		if b.cl == nil {
			cl, err := setupCluster(b.ctx, b.o, on)
			b.cl = cl
			if err != nil {
				return err
			}
			if err := b.connectNATS(cl.natsURL); err != nil {
				return err
			}
		} else {
			for _, w := range b.workers {
				w.stop()
			}
			b.workers = nil
			b.cl.stopNodes()
			b.cl.history = on
			if err := b.cl.spawnNodes(b.ctx, b.o); err != nil {
				return err
			}
		}
		b.phase = prefix
		if _, err := b.connectChecked(b.cl.targets(), ""); err != nil {
			return err
		}
		if err := b.historyTargeted(prefix, on); err != nil {
			return err
		}
		if b.o.docs > 0 {
			if err := b.historyDocs(prefix+"docs_", on); err != nil {
				return err
			}
		}
	}
	for _, p := range []string{"", "docs_"} {
		b.rep.ratio(p+"ratio_pushd_cpu_per_delivery", "on_"+p+"pushd_cpu_per_delivery", "off_"+p+"pushd_cpu_per_delivery")
		b.rep.ratio(p+"ratio_nats_cpu_per_delivery", "on_"+p+"nats_cpu_per_delivery", "off_"+p+"nats_cpu_per_delivery")
		b.rep.ratio(p+"ratio_latency_p99", "on_"+p+"latency_p99", "off_"+p+"latency_p99")
		on99, ok1 := b.rep.get("on_" + p + "latency_p99")
		off99, ok2 := b.rep.get("off_" + p + "latency_p99")
		if ok1 && ok2 {
			b.rep.add(p+"latency_p99_on_minus_off", on99-off99, "ms")
		}
	}
	if r, ok := b.rep.get("ratio_pushd_cpu_per_delivery"); ok {
		d, _ := b.rep.get("latency_p99_on_minus_off")
		b.rep.note(fmt.Sprintf("issue 17 target (pushd CPU per push on <= 1.3x off, p99 within 1 ms): %.2fx, %+.2f ms: %s", r, d,
			map[bool]string{true: "met", false: "not met"}[r <= 1.3 && d <= 1]))
	}
	return nil
}

// historyTargeted publishes o.count pushes round-robin over the users at
// o.rate with plain NATS, as backends do.
func (b *bench) historyTargeted(prefix string, on bool) error {
	if err := b.reset(0); err != nil {
		return err
	}
	n := b.users
	l0 := b.latencyBuckets()
	u0 := b.usage()
	wait := b.profile(prefix, time.Duration(float64(b.o.count)/max(b.o.rate, 1)*float64(time.Second)))
	start, end, err := b.publish(b.o.count, b.o.rate, func(k int) string { return "push.user." + userID(k%n) })
	if err != nil {
		return err
	}
	expected := uint64(b.o.count)
	t, err := b.waitDelivered(expected)
	if err != nil {
		return err
	}
	u1 := b.usage()
	wait()
	b.historyReport(prefix, on, t, expected, end.Sub(start))
	b.serverLatency(prefix, l0, b.latencyBuckets())
	b.perPush(prefix, u0, u1, t.received)
	return nil
}

// historyDocs publishes o.count pushes round-robin over the docs.
func (b *bench) historyDocs(prefix string, on bool) error {
	if err := b.reset(0); err != nil {
		return err
	}
	members := b.docMembers()
	var expected uint64
	for k := 0; k < b.o.count; k++ {
		expected += uint64(members[k%b.o.docs])
	}
	l0 := b.latencyBuckets()
	u0 := b.usage()
	start, end, err := b.publish(b.o.count, b.o.rate, func(k int) string { return "push.doc." + docID(k%b.o.docs) })
	if err != nil {
		return err
	}
	t, err := b.waitDelivered(expected)
	if err != nil {
		return err
	}
	u1 := b.usage()
	b.historyReport(prefix, on, t, expected, end.Sub(start))
	b.serverLatency(prefix, l0, b.latencyBuckets())
	b.perPush(prefix, u0, u1, t.received)
	return nil
}

func (b *bench) historyReport(prefix string, on bool, t totals, expected uint64, took time.Duration) {
	lat := t.lat.Summary()
	b.rep.add(prefix+"publish_rate", float64(b.o.count)/took.Seconds(), "1/s")
	b.rep.add(prefix+"delivered", float64(t.received), "")
	b.rep.add(prefix+"lost", float64(int64(expected)-int64(t.received)), "")
	b.rep.add(prefix+"latency_p50", lat.P50, "ms")
	b.rep.add(prefix+"latency_p99", lat.P99, "ms")
	b.rep.add(prefix+"latency_p999", lat.P999, "ms")
	b.rep.add(prefix+"latency_max", lat.Max, "ms")
	b.rep.check(prefix+"zero loss", t.received == expected, fmt.Sprintf("%d/%d", t.received, expected))
	if on {
		b.rep.check(prefix+"every push carried a seq, none twice", t.noSeq == 0 && t.dups == 0,
			fmt.Sprintf("%d without seq, %d duplicates", t.noSeq, t.dups))
	}
}

// docMembers counts the clients of each doc.
func (b *bench) docMembers() []int {
	members := make([]int, max(b.o.docs, 1))
	z := zipfFor(b.o.docs)
	for i := 0; i < b.o.conns; i++ {
		members[docFor(i, b.o.docs, b.o.docDist, z)]++
	}
	return members
}

// jsPublisher publishes pushes with JetStream and counts, per user and per
// doc, those the stream acknowledged: what must reach every client.
type jsPublisher struct {
	b        *bench
	js       jetstream.JetStream
	mu       sync.Mutex
	futures  []pending
	userAck  []int
	docAck   []int
	errs     int
	firstErr error
}

type pending struct {
	doc bool
	key int
	f   jetstream.PubAckFuture
}

func (b *bench) jsPublisher() (*jsPublisher, error) {
	js, err := jetstream.New(b.nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, err
	}
	return &jsPublisher{b: b, js: js, userAck: make([]int, b.o.conns), docAck: make([]int, max(b.o.docs, 1))}, nil
}

// push publishes body index k of its kind: user push k goes to user k%conns,
// doc push k to doc k%docs.
func (p *jsPublisher) push(doc bool, k int) error {
	key := k % p.b.o.conns
	subj := "push.user." + userID(key)
	if doc {
		key = k % p.b.o.docs
		subj = "push.doc." + docID(key)
	}
	m := &nats.Msg{Subject: subj, Data: body(k, p.b.o.payload), Header: nats.Header{}}
	m.Header.Set("Push-Timestamp", strconv.FormatInt(time.Now().UnixNano(), 10))
	m.Header.Set("Push-Event", "bench")
	f, err := p.js.PublishMsgAsync(m)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.errs++
		if p.firstErr == nil {
			p.firstErr = err
		}
		return nil // counted; a push the stream did not take is expected nowhere
	}
	p.futures = append(p.futures, pending{doc, key, f})
	return nil
}

// settle waits for every acknowledgement and counts the stored pushes.
func (p *jsPublisher) settle() (stored int) {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-time.After(time.Minute):
	case <-p.b.ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.futures {
		select {
		case <-f.f.Ok():
			stored++
			if f.doc {
				p.docAck[f.key]++
			} else {
				p.userAck[f.key]++
			}
		case err := <-f.f.Err():
			p.errs++
			if p.firstErr == nil {
				p.firstErr = err
			}
		default:
			p.errs++
			if p.firstErr == nil {
				p.firstErr = errors.New("no acknowledgement within a minute")
			}
		}
	}
	p.futures = nil
	return stored
}

// expectedOf is what client i must have once every stored push reached it.
func (p *jsPublisher) expectedOf(i int) (user, doc int) {
	user = p.userAck[i]
	if p.b.o.docs > 0 {
		doc = p.docAck[docFor(i, p.b.o.docs, p.b.o.docDist, zipfFor(p.b.o.docs))]
	}
	return user, doc
}

// waitUnique polls until the clients hold expected unique pushes, or nothing
// new arrived for o.settle.
func (b *bench) waitUnique(expected uint64) (totals, error) {
	var last uint64
	lastChange := time.Now()
	for {
		t, err := b.stats(false)
		if err != nil {
			return t, err
		}
		got := t.gotUser + t.gotDoc
		if got >= expected || time.Since(lastChange) > b.o.settle {
			return b.statsOf(true, true)
		}
		if got != last {
			last, lastChange = got, time.Now()
		}
		select {
		case <-b.ctx.Done():
			return t, b.ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// delivery compares what each client got (unique by seq) with what the
// stream acknowledged for it.
func (b *bench) delivery(p *jsPublisher, t totals) (expected, delivered, lost, extra uint64, short int) {
	for i := 0; i < b.o.conns; i++ {
		eu, ed := p.expectedOf(i)
		gu, gd := int(t.userGot[i]), int(t.docGot[i])
		expected += uint64(eu + ed)
		delivered += uint64(min(gu, eu) + min(gd, ed))
		lost += uint64(max(0, eu-gu) + max(0, ed-gd))
		extra += uint64(max(0, gu-eu) + max(0, gd-ed))
		if gu < eu || gd < ed {
			short++
		}
	}
	return
}

// waitSessions waits until the nodes hold n sessions.
func (b *bench) waitSessions(n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		got := b.cl.metric(mConnection)[mConnection]
		if int(got) == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nodes hold %v sessions, want %d", got, n)
		}
		select {
		case <-b.ctx.Done():
			return b.ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// runResume: every client drops at once, o.missed pushes per user and per
// doc are stored meanwhile, then every client comes back at once with since
// on its user and its doc.
func runResume(b *bench) error {
	if b.o.drop != "close" && b.o.drop != "kill" {
		return fmt.Errorf("--drop %q: want close or kill", b.o.drop)
	}
	if b.o.missed < 1 || b.o.missed > 100 {
		return fmt.Errorf("--missed %d: want 1..100 (a replay carries at most --replay-max-msgs, 100 by default)", b.o.missed)
	}
	b.resume = true
	if err := b.setup(); err != nil {
		return err
	}
	if _, err := b.connectChecked(b.cl.targets(), ""); err != nil {
		return err
	}
	if err := b.reset(0); err != nil {
		return err
	}
	switch b.o.drop {
	case "close":
		if _, err := all(b.ctx, b.workers, time.Minute, func(int) command { return command{Op: "drop"} }); err != nil {
			return err
		}
		if err := b.waitSessions(0, 30*time.Second); err != nil {
			return err
		}
	case "kill":
		if len(b.o.targets) > 0 {
			return errors.New("--drop kill restarts the nodes it started: give --pushd-bin, not --target")
		}
		for _, sp := range b.cl.servers {
			_ = sp.cmd.Process.Kill()
			<-sp.done
		}
		for i := range b.cl.servers {
			if err := b.cl.restart(b.ctx, i); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("--drop %q: want close or kill", b.o.drop)
	}
	pub, err := b.jsPublisher()
	if err != nil {
		return err
	}
	for k := 0; k < b.o.missed*b.o.conns; k++ {
		_ = pub.push(false, k)
	}
	for k := 0; k < b.o.missed*b.o.docs; k++ {
		_ = pub.push(true, k)
	}
	stored := pub.settle()
	if pub.firstErr != nil {
		b.rep.note("publish: " + pub.firstErr.Error())
	}
	before := b.cl.sample(true)
	m0 := b.cl.metric(historyMetrics...)
	u0 := b.usage()
	wait := b.profile("resume_", 10*time.Second)
	start := time.Now()
	rs, err := all(b.ctx, b.workers, b.o.timeout+5*time.Minute, func(int) command { return command{Op: "resume"} })
	if err != nil {
		return err
	}
	readyAll := time.Since(start)
	ready := &Hist{}
	resumed, failed := 0, 0
	for _, r := range rs {
		ready.Merge(r.Handshake)
		resumed += r.Connected
		failed += r.Failed
		if r.FirstErr != "" {
			b.rep.note("first resume error: " + r.FirstErr)
		}
	}
	var expUser, expDoc uint64
	for i := 0; i < b.o.conns; i++ {
		eu, ed := pub.expectedOf(i)
		expUser += uint64(eu)
		expDoc += uint64(ed)
	}
	t, err := b.waitUnique(expUser + expDoc)
	if err != nil {
		return err
	}
	u1 := b.usage()
	wait()
	m1 := b.cl.metric(historyMetrics...)
	after := b.cl.sample(true)
	expected, delivered, lost, extra, short := b.delivery(pub, t)
	complete := time.Duration(t.lastPushAt - start.UnixNano())
	n := float64(max(resumed, 1))
	rs0 := ready.Summary()
	d := func(k string) float64 { return m1[k] - m0[k] }
	b.rep.add("clients", float64(b.o.conns), "")
	b.rep.add("docs", float64(b.o.docs), "")
	b.rep.note("clients went away by: " + b.o.drop)
	b.rep.add("pushes_stored", float64(stored), "")
	b.rep.add("sessions_resumed", float64(resumed), "")
	b.rep.add("resume_failures", float64(failed), "")
	b.rep.add("ready_p50", rs0.P50, "ms")
	b.rep.add("ready_p99", rs0.P99, "ms")
	b.rep.add("ready_all", readyAll.Seconds(), "s")
	b.rep.add("all_replayed_after", complete.Seconds(), "s")
	b.rep.add("replayed_user", float64(t.gotUser), "")
	b.rep.add("expected_user", float64(expUser), "")
	b.rep.add("replayed_doc", float64(t.gotDoc), "")
	b.rep.add("expected_doc", float64(expDoc), "")
	b.rep.add("lost", float64(lost), "")
	b.rep.add("extra", float64(extra), "")
	b.rep.add("duplicates", float64(t.dups), "")
	b.rep.add("gaps", float64(t.gaps), "")
	b.rep.add("recovered_true", float64(t.recovered), "")
	b.rep.add("recovered_false", float64(t.notRecovered), "")
	subjects := float64(b.o.conns) * map[bool]float64{true: 2, false: 1}[b.o.docs > 0]
	b.rep.add("recovered_rate", float64(t.recovered)/subjects, "")
	b.rep.add("js_reads", d(mReads), "")
	b.rep.add("js_reads_per_session", d(mReads)/n, "")
	b.rep.add("stream_replays", d(mRecovered)+d(mNotRecov), "")
	b.rep.add("tail_replays", d(mTail), "")
	if b.o.docs > 0 {
		// each user resume reads its own subject once; what the router
		// answered for docs beyond that came from shared reads and tails
		b.rep.add("doc_stream_replays_per_doc_resume", max(0, d(mRecovered)+d(mNotRecov)-n)/n, "")
	}
	b.rep.add("pushd_cpu_storm", float64(u1.pushd-u0.pushd)/1e9, "s")
	b.rep.add("pushd_cpu_per_session", float64(u1.pushd-u0.pushd)/1e3/n, "µs")
	if u0.nats >= 0 {
		b.rep.add("nats_cpu_per_session", float64(u1.nats-u0.nats)/1e3/n, "µs")
	}
	b.rep.add("rss_before", float64(before.RSS)/(1<<20), "MiB")
	b.rep.add("rss_after", float64(after.RSS)/(1<<20), "MiB")
	b.rep.add("goroutines_after", after.Goroutines, "")
	b.rep.check("every client resumed", resumed == b.o.conns, fmt.Sprintf("%d/%d", resumed, b.o.conns))
	b.rep.check("every stored push replayed exactly once", delivered == expected && lost == 0 && extra == 0 && t.dups == 0 && t.gaps == 0,
		fmt.Sprintf("%d/%d, %d clients short, %d duplicates, %d gaps", delivered, expected, short, t.dups, t.gaps))
	b.rep.check("every resume recovered", float64(t.recovered) == subjects && t.notRecovered == 0,
		fmt.Sprintf("%d true, %d false of %.0f", t.recovered, t.notRecovered, subjects))
	b.rep.check("every push published was stored", stored == b.o.missed*(b.o.conns+b.o.docs), fmt.Sprintf("%d, %d errors", stored, pub.errs))
	return nil
}

// runRolling drains and restarts each node in turn while user and doc
// pushes flow at o.rate; clients closed by a drain come back on another
// node with since.
func runRolling(b *bench) error {
	if len(b.o.targets) > 0 {
		return errors.New("rolling restarts the nodes it started: give --pushd-bin, not --target")
	}
	b.resume, b.reconnect = true, true
	if err := b.setup(); err != nil {
		return err
	}
	if _, err := b.connectChecked(b.cl.targets(), ""); err != nil {
		return err
	}
	before := b.cl.sample(true)
	if err := b.reset(0); err != nil {
		return err
	}
	pub, err := b.jsPublisher()
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	pubDone := make(chan int, 1)
	go func() { // bounded by stop and the context; at most --max-runtime
		start := time.Now()
		ku, kd := 0, 0
		for i := 0; ; i++ {
			at := start.Add(time.Duration(float64(i) / b.o.rate * 1e9))
			if d := time.Until(at); d > 0 {
				select {
				case <-time.After(d):
				case <-stop:
					pubDone <- i
					return
				case <-b.ctx.Done():
					pubDone <- i
					return
				}
			}
			select {
			case <-stop:
				pubDone <- i
				return
			default:
			}
			if i%2 == 0 || b.o.docs == 0 {
				_ = pub.push(false, ku)
				ku++
			} else {
				_ = pub.push(true, kd)
				kd++
			}
		}
	}()
	sleep := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case <-b.ctx.Done():
			return b.ctx.Err()
		}
	}
	var runErr error
	drains := &Hist{}
	for i := range b.cl.servers {
		if runErr = sleep(b.o.gap); runErr != nil {
			break
		}
		t0 := time.Now()
		if !b.cl.servers[i].term(30 * time.Second) {
			b.rep.note(b.cl.servers[i].name + " did not exit within 30s of SIGTERM: killed")
		}
		drains.RecordDuration(time.Since(t0))
		if runErr = b.cl.restart(b.ctx, i); runErr != nil {
			break
		}
	}
	if runErr == nil {
		runErr = sleep(b.o.gap)
	}
	close(stop)
	published := <-pubDone
	stored := pub.settle()
	if runErr != nil {
		return runErr
	}
	if pub.firstErr != nil {
		b.rep.note("publish: " + pub.firstErr.Error())
	}
	var expTotal uint64
	for i := 0; i < b.o.conns; i++ {
		eu, ed := pub.expectedOf(i)
		expTotal += uint64(eu + ed)
	}
	t, err := b.waitUnique(expTotal)
	if err != nil {
		return err
	}
	_ = b.waitSessions(b.o.conns, 10*time.Second)
	after := b.cl.sample(true)
	expected, delivered, lost, extra, short := b.delivery(pub, t)
	rc := t.reconn.Summary()
	ds := drains.Summary()
	b.rep.add("nodes", float64(len(b.cl.servers)), "")
	b.rep.add("clients", float64(b.o.conns), "")
	b.rep.add("docs", float64(b.o.docs), "")
	b.rep.add("pushes_published", float64(published), "")
	b.rep.add("pushes_stored", float64(stored), "")
	b.rep.add("deliveries_expected", float64(expected), "")
	b.rep.add("delivered_once", float64(delivered), "")
	b.rep.add("delivery_pct", 100*float64(delivered)/float64(max(expected, 1)), "%")
	b.rep.add("lost", float64(lost), "")
	b.rep.add("clients_short", float64(short), "")
	b.rep.add("extra", float64(extra), "")
	b.rep.add("duplicates_before_dedupe", float64(t.dups), "")
	b.rep.add("gaps", float64(t.gaps), "")
	b.rep.add("reordered", float64(t.reordered), "")
	b.rep.add("pushes_without_seq", float64(t.noSeq), "")
	b.rep.add("closes_1012", float64(t.closes1012), "")
	b.rep.add("closes_other", float64(t.closesOther), "")
	b.rep.add("reconnects", float64(t.reconnects), "")
	b.rep.add("reconnect_retries", float64(t.reconnErrs), "")
	b.rep.add("reconnect_p50", rc.P50, "ms")
	b.rep.add("reconnect_p99", rc.P99, "ms")
	b.rep.add("reconnect_max", rc.Max, "ms")
	hs := t.reconnHS.Summary()
	b.rep.add("reconnect_handshake_p50", hs.P50, "ms")
	b.rep.add("reconnect_handshake_p99", hs.P99, "ms")
	b.rep.add("recovered_true", float64(t.recovered), "")
	b.rep.add("recovered_false", float64(t.notRecovered), "")
	b.rep.add("drain_seconds_max", ds.Max/1e3, "s")
	b.rep.add("sessions_after", after.Sessions, "")
	b.rep.add("rss_before", float64(before.RSS)/(1<<20), "MiB")
	b.rep.add("rss_after", float64(after.RSS)/(1<<20), "MiB")
	b.rep.add("goroutines_before", before.Goroutines, "")
	b.rep.add("goroutines_after", after.Goroutines, "")
	b.rep.check("every stored push reached every client exactly once (after dedupe)", delivered == expected && extra == 0,
		fmt.Sprintf("%d/%d, %d clients short, %d extra", delivered, expected, short, extra))
	b.rep.check("no gap, nothing out of order", t.gaps == 0 && t.reordered == 0, fmt.Sprintf("%d gaps, %d reordered", t.gaps, t.reordered))
	for _, s := range t.samples {
		b.rep.note(s)
	}
	b.rep.check("every drained client came back", t.reconnFail == 0 && int(after.Sessions) == b.o.conns,
		fmt.Sprintf("%d gave up, %v sessions of %d", t.reconnFail, after.Sessions, b.o.conns))
	b.rep.check("every resume recovered", t.notRecovered == 0, fmt.Sprintf("%d true, %d false", t.recovered, t.notRecovered))
	b.rep.check("every push was stored", stored == published, fmt.Sprintf("%d of %d, %d errors", stored, published, pub.errs))
	return nil
}

// profile fetches CPU profiles of the first node and of the NATS server
// (when it is our child) over d into o.profileDir; the returned wait blocks
// until both are written.
func (b *bench) profile(prefix string, d time.Duration) (wait func()) {
	if b.o.profileDir == "" || len(b.cl.servers) == 0 {
		return func() {}
	}
	secs := strconv.Itoa(max(1, int(d.Seconds()+0.5)))
	var wg sync.WaitGroup
	get := func(url, file string) {
		defer wg.Done()
		cl := http.Client{Timeout: d + 30*time.Second}
		resp, err := cl.Get(url)
		if err != nil {
			b.rep.note("profile " + file + ": " + err.Error())
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(b.o.profileDir, file))
		if err != nil {
			b.rep.note("profile " + file + ": " + err.Error())
			return
		}
		_, _ = io.Copy(f, resp.Body)
		f.Close()
	}
	if err := os.MkdirAll(b.o.profileDir, 0o755); err != nil {
		b.rep.note("profile: " + err.Error())
		return func() {}
	}
	wg.Add(1)
	go get(b.cl.servers[0].admin+"/debug/pprof/profile?seconds="+secs, prefix+"pushd.pprof")
	if b.cl.natsProf != "" {
		wg.Add(1)
		go get(b.cl.natsProf+"/debug/pprof/profile?seconds="+secs, prefix+"nats.pprof")
	}
	return wg.Wait
}

// latencyBuckets reads the nodes' pushd_delivery_latency_seconds (publisher's
// timestamp to socket write) as cumulative counts by upper bound.
var latencyBounds = []string{"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1"}

func (b *bench) latencyBuckets() map[string]float64 {
	names := []string{"pushd_delivery_latency_seconds_count"}
	for _, le := range latencyBounds {
		names = append(names, `pushd_delivery_latency_seconds_bucket{le="`+le+`"}`)
	}
	return b.cl.metric(names...)
}

// serverLatency reports which share of the pushes the nodes wrote within
// 1, 5 and 10 ms of their publishing: the part of the clients' latency that
// is already there at the write (NATS, JetStream, the router, the writers).
func (b *bench) serverLatency(prefix string, m0, m1 map[string]float64) {
	total := m1["pushd_delivery_latency_seconds_count"] - m0["pushd_delivery_latency_seconds_count"]
	if total <= 0 {
		return
	}
	for _, le := range []struct{ bound, name string }{{"0.001", "1ms"}, {"0.005", "5ms"}, {"0.01", "10ms"}} {
		k := `pushd_delivery_latency_seconds_bucket{le="` + le.bound + `"}`
		b.rep.add(prefix+"server_written_within_"+le.name, 100*(m1[k]-m0[k])/total, "%")
	}
}
