package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// The seed scenario is seed 001's own load test, its scenario 4 (section 4
// 性能壓測 of shared/seeds/001_*.txt): every user gets a broadcast every 5 s
// and answers each with a receipt (回執), while 4% of the users per second go
// offline and come back, for 15 minutes. Here the broadcast is a push to
// push.all with Push-Receipt and Push-Id; each client acknowledges it by
// push_id; the node holding the session publishes the receipt, which the
// coordinator collects. Broadcasts are not stored, so a client that is
// reconnecting when one goes out misses it: the scenario counts, per
// broadcast, what was delivered, acknowledged and receipted, and explains
// every client that got nothing.

const (
	seedReceiptSubject = "pushbench.receipts"
	seedIDPrefix       = "seed-"
	// seedLag is how many broadcasts later one is collected (plus half an
	// interval): its receipts have long arrived by then.
	seedLag = 2
	// seedMaxBroadcasts bounds the broadcasts of one run, and so what a
	// worker keeps per broadcast.
	seedMaxBroadcasts = 1 << 20
)

// seedMessage is the seed's broadcast, its socket.io "42" framing dropped so
// it is a JSON value the node embeds as is: 470 bytes.
const seedMessage = `["message",{"type":"xx","data":{"type":"xx","clients":[{"id":1,"name":"xx","email":"xx@xx.xx","avatar":"ZgG5kEjCkT6mZla6.png",` +
	`"created_at":1623811084000,"name_pinyin":"","team_id":13,"team_role":"member","merged_into":0,"team_time":1623811084000,"mobile":"+xxxx",` +
	`"mobile_account":"","status":1,"has_password":true,"team":null,"membership":null,"is_seat":true,"team_role_enum":3,` +
	`"register_time":1623811084000,"alias":"","type":"anoymous"}],"userCount":1,"from":"ws"}}]`

// seedBody is the seed's message with the send time and the broadcast's
// number in front (the workers' latency and per-broadcast bookkeeping read
// them), padded to size when size is larger.
func seedBody(seq, size int) []byte {
	b := make([]byte, 0, max(size, len(seedMessage)+64))
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, time.Now().UnixNano(), 10)
	b = append(b, `,"s":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `,"message":`...)
	b = append(b, seedMessage...)
	if pad := size - len(b) - len(`,"pad":""}`); pad > 0 {
		b = append(b, `,"pad":"`...)
		b = append(b, strings.Repeat("x", pad)...)
		b = append(b, '"')
	}
	return append(b, '}')
}

func seedID(seq int) string { return seedIDPrefix + strconv.Itoa(seq) }

// seedSeq is the broadcast number of a seed push ID, -1 if it is not one.
func seedSeq(id []byte) int {
	v, ok := bytes.CutPrefix(id, []byte(seedIDPrefix))
	if !ok || len(v) == 0 || len(v) > 7 {
		return -1
	}
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	if n >= seedMaxBroadcasts {
		return -1
	}
	return n
}

// stringAfter is the JSON string value right after key (which ends with the
// opening quote), nil if none; the values read here have no escapes.
func stringAfter(b, key []byte) []byte {
	i := bytes.Index(b, key)
	if i < 0 {
		return nil
	}
	b = b[i+len(key):]
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return nil
	}
	return b[:j]
}

var (
	keyAckTrue = []byte(`"ack":true`)
	keyID      = []byte(`"id":"`)
	keyUser    = []byte(`"user":"`)
)

// --- worker side ---

// seedWorker is what a worker keeps of the seed broadcasts: per client slot
// the connections it opened, and per broadcast not yet collected which
// connection of each client got it.
type seedWorker struct {
	gens []atomic.Uint32 // per slot: connections opened (benchClient.gen)
	mu   sync.Mutex
	recs map[int]*seedRec
	done map[int]bool // collected: a late copy is not recorded again
}

// seedRec is one broadcast as this worker's clients saw it.
type seedRec struct {
	got   []atomic.Uint32 // per slot: gen of the connection that got it, 0 if none
	acked []atomic.Bool   // per slot: its ack frame was written
	twice atomic.Uint64   // got on a second connection of the same client (old and new session overlapped)
	dup   atomic.Uint64   // got twice on one connection: a duplicate delivery
}

func (s *seedWorker) init(n int) {
	s.gens = make([]atomic.Uint32, n)
	s.recs = map[int]*seedRec{}
	s.done = map[int]bool{}
}

func (s *seedWorker) rec(k, n int) *seedRec {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done[k] {
		return nil
	}
	r := s.recs[k]
	if r == nil {
		r = &seedRec{got: make([]atomic.Uint32, n), acked: make([]atomic.Bool, n)}
		s.recs[k] = r
	}
	return r
}

// ackPush answers a push that asks for a receipt with an ack by its id, as
// the seed's clients answered each broadcast, and records a seed broadcast's
// delivery to this connection.
func (c *benchClient) ackPush(b []byte) {
	if !bytes.Contains(b, keyAckTrue) {
		return
	}
	w := c.w
	id := stringAfter(b, keyID)
	if len(id) == 0 {
		w.errs.Add(1)
		return
	}
	i := c.idx - w.spec.First
	var r *seedRec
	if k := seedSeq(id); k >= 0 {
		if r = w.seed.rec(k, len(w.clients)); r != nil {
			switch old := r.got[i].Swap(c.gen); {
			case old == c.gen:
				r.dup.Add(1)
			case old != 0:
				r.twice.Add(1)
			}
		}
	}
	msg := `{"type":"ack","push_id":"` + string(id) + `"}`
	w.bytesOut.Add(uint64(len(msg)))
	if err := c.conn.WriteString(msg); err != nil {
		return
	}
	w.acks.Add(1)
	if r != nil {
		r.acked[i].Store(true)
	}
}

// seedCollect is a worker's account of one broadcast, taken a few seconds
// after it went out.
type seedCollect struct {
	Seq   int `json:"seq"`
	First int `json:"first"` // global index of this worker's first client
	Count int `json:"count"` // its clients
	// Delivered: clients (bit i = client First+i) that got it. Stable: of
	// those, the ones still holding, open, the connection that got it: each
	// of them must have produced a receipt.
	Delivered []uint64 `json:"delivered"`
	Stable    []uint64 `json:"stable"`
	Acked     int      `json:"acked"`
	// Missed: clients that did not get it. Reconnecting: of those, the ones
	// whose connection now open became ready after it was published, or
	// that are between connections: they were away when it went out.
	// Unexplained: the rest, open since before it was published.
	Missed       int      `json:"missed"`
	Reconnecting int      `json:"reconnecting"`
	Unexplained  int      `json:"unexplained"`
	Twice        uint64   `json:"twice"`
	Dup          uint64   `json:"dup"`
	Samples      []string `json:"samples,omitempty"`
}

func (w *worker) seedCollect(k int, pubAt int64) *seedCollect {
	n := len(w.clients)
	out := &seedCollect{Seq: k, First: w.spec.First, Count: n, Delivered: make([]uint64, (n+63)/64), Stable: make([]uint64, (n+63)/64)}
	w.seed.mu.Lock()
	r := w.seed.recs[k]
	delete(w.seed.recs, k)
	if w.seed.done != nil {
		w.seed.done[k] = true
	}
	w.seed.mu.Unlock()
	for i := 0; i < n; i++ {
		c := w.clients[i].Load()
		open := c != nil && c.ready.Load() && !c.closed.Load() && !c.leaving.Load()
		gen := uint32(0)
		if r != nil {
			gen = r.got[i].Load()
		}
		if gen != 0 {
			out.Delivered[i/64] |= 1 << (i % 64)
			if r.acked[i].Load() {
				out.Acked++
			}
			if open && c.gen == gen {
				out.Stable[i/64] |= 1 << (i % 64)
			}
			continue
		}
		out.Missed++
		if open && c.readyAt.Load() < pubAt {
			out.Unexplained++
			if len(out.Samples) < 5 {
				out.Samples = append(out.Samples, fmt.Sprintf("client %d: open since %s before broadcast %d, got nothing",
					w.spec.First+i, time.Duration(pubAt-c.readyAt.Load()), k))
			}
			continue
		}
		out.Reconnecting++
	}
	if r != nil {
		out.Twice, out.Dup = r.twice.Load(), r.dup.Load()
	}
	return out
}

// waitChurn waits for a background churn to end; stop ends it first.
func (w *worker) waitChurn(stop bool) {
	if w.churnDone == nil {
		return
	}
	if stop {
		close(w.churnStop)
	}
	<-w.churnDone
	w.churnStop, w.churnDone = nil, nil
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func bit(set []uint64, i int) bool { return i >= 0 && i/64 < len(set) && set[i/64]&(1<<(i%64)) != 0 }

// --- coordinator side ---

// receiptLog counts the receipts the nodes publish, per broadcast and per
// client.
type receiptLog struct {
	mu       sync.Mutex
	clients  int
	epoch    time.Time
	by       map[int]*receiptsOf
	total    uint64
	bad      uint64 // not a receipt of a seed broadcast by a known client
	late     uint64 // arrived after their broadcast was collected
	timeline []int  // receipts per 100 ms since epoch
}

type receiptsOf struct {
	users     []uint64 // bit per client
	count     int
	dups      int // the same client twice
	last      int64
	collected bool
}

func newReceiptLog(clients int) *receiptLog {
	return &receiptLog{clients: clients, by: map[int]*receiptsOf{}, epoch: time.Now()}
}

func (l *receiptLog) add(data []byte) {
	now := time.Now()
	k := seedSeq(stringAfter(data, keyID))
	u := -1
	if v, ok := bytes.CutPrefix(stringAfter(data, keyUser), []byte("u")); ok {
		if n, err := strconv.Atoi(string(v)); err == nil {
			u = n
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	if k < 0 || u < 0 || u >= l.clients {
		l.bad++
		return
	}
	if slot := int(now.Sub(l.epoch) / (100 * time.Millisecond)); slot >= 0 && slot < timelineSlots {
		for len(l.timeline) <= slot {
			l.timeline = append(l.timeline, 0)
		}
		l.timeline[slot]++
	}
	r := l.by[k]
	if r == nil {
		r = &receiptsOf{users: make([]uint64, (l.clients+63)/64)}
		l.by[k] = r
	}
	if r.collected {
		l.late++
		return
	}
	r.count++
	r.last = now.UnixNano()
	if bit(r.users, u) {
		r.dups++
		return
	}
	r.users[u/64] |= 1 << (u % 64)
}

// seedBroadcast is one broadcast's account.
type seedBroadcast struct {
	pubAt                                    time.Time
	sessions                                 float64 // pushd_connections summed over the nodes just before publishing
	collected                                bool
	delivered, stable, acked, receipts, dups int
	stableNoReceipt, receiptNoDelivery       int
	missed, reconnecting, unexplained        int
	twice, dup                               uint64
	lastReceipt                              time.Duration // publish -> latest receipt
}

// seedSample is the nodes' resources at one moment of the run.
type seedSample struct {
	at time.Duration // since the broadcasts began
	serverSample
}

// seedUsage is CPU time at one moment: per node, the clients' workers, this
// process (NATS server, publisher, receipt counting) and the whole machine.
type seedUsage struct {
	at       time.Time
	nodes    []int64
	clients  int64
	self     int64
	machine  int64 // busy ns over all cores, /proc/stat
	loadavg1 float64
}

func (b *bench) seedUsage() seedUsage {
	u := seedUsage{at: time.Now(), self: procCPU(os.Getpid()), machine: machineBusy(), loadavg1: loadavg1()}
	for _, sp := range b.cl.servers {
		u.nodes = append(u.nodes, procCPU(sp.pid))
	}
	if !b.o.inProcess {
		for _, w := range b.workers {
			u.clients += procCPU(w.pid)
		}
	}
	return u
}

// machineBusy is the CPU time all processes of the machine spent, from the
// first line of /proc/stat (user+nice+system+irq+softirq+steal), in ns.
func machineBusy() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return busy * int64(time.Second) / clkTck
}

func loadavg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func (b *bench) sleepUntil(t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return b.ctx.Err()
	}
	select {
	case <-time.After(d):
		return nil
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
}

func runSeed(b *bench) error {
	o := b.o
	if o.interval <= 0 {
		return fmt.Errorf("--interval %s: want a positive duration", o.interval)
	}
	if o.churnPct < 0 || o.churnPct > 100 {
		return fmt.Errorf("--churn-pct %v: want 0..100", o.churnPct)
	}
	count := int(o.duration / o.interval)
	if count < 1 || count > seedMaxBroadcasts {
		return fmt.Errorf("--duration %s / --interval %s is %d broadcasts: want 1..%d", o.duration, o.interval, count, seedMaxBroadcasts)
	}
	sampleEvery := o.sampleEvery
	if sampleEvery <= 0 {
		sampleEvery = min(30*time.Second, max(time.Second, o.duration/30))
	}
	b.ack = true
	if err := b.setup(); err != nil {
		return err
	}
	base := b.cl.sample(true)
	cr, err := b.connectChecked(b.cl.targets(), "")
	if err != nil {
		return err
	}
	n := float64(o.conns)
	b.rep.add("clients", n, "")
	b.rep.add("nodes", float64(len(b.cl.servers)), "")
	b.rep.add("client_workers", float64(len(b.workers)), "")
	b.rep.add("ramp_accepted_per_sec_avg", float64(cr.connected)/max(cr.elapsed.Seconds(), 1e-9), "1/s")
	b.rep.add("ramp_accepted_per_sec_peak", float64(cr.peakPerSec), "1/s")

	log := newReceiptLog(o.conns)
	sub, err := b.nc.Subscribe(seedReceiptSubject, func(m *nats.Msg) { log.add(m.Data) })
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return err
	}
	if err := b.nc.Flush(); err != nil {
		return err
	}
	if err := b.reset(count); err != nil {
		return err
	}
	idle := b.cl.sample(true)
	m0 := b.cl.metric(seedNodeMetrics...)
	churnRate := o.churnPct / 100 * n
	nw := len(b.workers)
	window := time.Duration(count) * o.interval

	start := time.Now()
	log.mu.Lock()
	log.epoch = start
	log.mu.Unlock()
	if _, err := all(b.ctx, b.workers, time.Minute, func(int) command {
		return command{Op: "churn", Churn: &churnSpec{PerSecond: churnRate / float64(nw), DurationNs: int64(window), Background: true}}
	}); err != nil {
		return err
	}
	u0 := b.seedUsage()
	per := make([]seedBroadcast, count)
	var samples []seedSample
	var lastSample time.Time
	collect := func(k int) error {
		rs, err := all(b.ctx, b.workers, time.Minute, func(int) command {
			return command{Op: "seed_collect", Seq: k, PubAtNano: per[k].pubAt.UnixNano()}
		})
		if err != nil {
			return err
		}
		b.seedAccount(&per[k], k, rs, log)
		return nil
	}
	sampleNow := func() {
		samples = append(samples, seedSample{time.Since(start), b.cl.sample(true)})
		lastSample = time.Now()
	}
	var runErr error
	for k := 0; k < count && runErr == nil; k++ {
		at := start.Add(time.Duration(k) * o.interval)
		if runErr = b.sleepUntil(at); runErr != nil {
			break
		}
		per[k].sessions = b.cl.metric(mConnection)[mConnection]
		per[k].pubAt = time.Now()
		m := &nats.Msg{Subject: "push.all", Data: seedBody(k, o.payload), Header: nats.Header{}}
		m.Header.Set("Push-Receipt", seedReceiptSubject)
		m.Header.Set("Push-Id", seedID(k))
		m.Header.Set("Push-Event", "message")
		m.Header.Set("Push-Timestamp", strconv.FormatInt(per[k].pubAt.UnixNano(), 10))
		if runErr = b.nc.PublishMsg(m); runErr != nil {
			break
		}
		if runErr = b.nc.Flush(); runErr != nil {
			break
		}
		if runErr = b.sleepUntil(at.Add(o.interval / 2)); runErr != nil {
			break
		}
		if k >= seedLag {
			runErr = collect(k - seedLag)
		}
		if time.Since(lastSample) >= sampleEvery-o.interval/2 {
			sampleNow()
		}
	}
	if runErr == nil {
		runErr = b.sleepUntil(start.Add(window))
	}
	u1 := b.seedUsage()
	// Reconnects in flight finish (each within --timeout).
	if _, err := all(b.ctx, b.workers, o.timeout+time.Minute, func(int) command { return command{Op: "churn_wait"} }); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return runErr
	}
	sampleNow()
	// The last broadcasts' receipts: wait until none came for o.settle.
	var lastTotal uint64
	quiet := time.Now()
	for time.Since(quiet) < o.settle {
		log.mu.Lock()
		t := log.total
		log.mu.Unlock()
		if t != lastTotal {
			lastTotal, quiet = t, time.Now()
		}
		if err := b.sleepUntil(time.Now().Add(100 * time.Millisecond)); err != nil {
			return err
		}
	}
	for k := max(0, count-seedLag); k < count; k++ {
		if err := collect(k); err != nil {
			return err
		}
	}
	t, err := b.stats(false)
	if err != nil {
		return err
	}
	m1 := b.cl.metric(seedNodeMetrics...)
	time.Sleep(o.settle)
	after := b.cl.sample(true)
	b.seedReport(per, samples, log, sub, base, idle, after, u0, u1, t, m0, m1, churnRate, sampleEvery)
	return nil
}

// seedLatencyBounds are the upper bounds of pushd_delivery_latency_seconds
// (publisher's timestamp to socket write) the seed scenario reports.
var seedLatencyBounds = []string{"0.01", "0.1", "0.5", "1", "2.5"}

// Node metrics the seed scenario reads (docs/METRICS.md).
var seedNodeMetrics = []string{
	"pushd_delivery_latency_seconds_count", `pushd_delivery_latency_seconds_bucket{le="0.01"}`, `pushd_delivery_latency_seconds_bucket{le="0.1"}`,
	`pushd_delivery_latency_seconds_bucket{le="0.5"}`, `pushd_delivery_latency_seconds_bucket{le="1"}`, `pushd_delivery_latency_seconds_bucket{le="2.5"}`,
	`pushd_receipts_total{result="acked"}`, `pushd_receipts_total{result="dropped"}`,
	"pushd_slow_consumers_total", "pushd_connections_accepted_total",
	`pushd_connections_closed_total{reason="heartbeat_timeout"}`, `pushd_connections_closed_total{reason="slow_consumer"}`,
	`pushd_connections_closed_total{reason="write_timeout"}`, `pushd_connections_closed_total{reason="protocol_error"}`,
	`pushd_connections_closed_total{reason="error"}`, `pushd_connections_closed_total{reason="rate_limited"}`,
}

// seedAccount compares the workers' account of broadcast k with the
// receipts collected for it.
func (b *bench) seedAccount(p *seedBroadcast, k int, rs []reply, log *receiptLog) {
	log.mu.Lock()
	rec := log.by[k]
	if rec != nil {
		rec.collected = true
	}
	log.mu.Unlock()
	var users []uint64
	if rec != nil {
		users = rec.users
		p.receipts, p.dups = rec.count, rec.dups
		if rec.last > 0 {
			p.lastReceipt = time.Duration(rec.last - p.pubAt.UnixNano())
		}
	}
	for _, r := range rs {
		s := r.Seed
		if s == nil {
			continue
		}
		p.acked += s.Acked
		p.missed += s.Missed
		p.reconnecting += s.Reconnecting
		p.unexplained += s.Unexplained
		p.twice += s.Twice
		p.dup += s.Dup
		for _, smp := range s.Samples {
			if len(b.rep.Notes) < 20 {
				b.rep.note(smp)
			}
		}
		for i := 0; i < s.Count; i++ {
			d, st, rc := bit(s.Delivered, i), bit(s.Stable, i), bit(users, s.First+i)
			if d {
				p.delivered++
			}
			if st {
				p.stable++
				if !rc {
					p.stableNoReceipt++
				}
			}
			if rc && !d {
				p.receiptNoDelivery++
			}
		}
	}
	p.collected = true
	if rec != nil {
		rec.users = nil // counted; free it
	}
}

func (b *bench) seedReport(per []seedBroadcast, samples []seedSample, log *receiptLog, sub *nats.Subscription,
	base, idle, after serverSample, u0, u1 seedUsage, t totals, m0, m1 map[string]float64, churnRate float64, sampleEvery time.Duration) {
	o := b.o
	n := float64(o.conns)
	var (
		sessions                                                  float64
		delivered, stable, acked, receipts, dups                  int
		stableNoReceipt, receiptNoDelivery, missed, reconn, unexp int
		twice, dup                                                uint64
		lastRc                                                    Hist
		minRcPct, minDelivPct                                     = math.Inf(1), math.Inf(1)
		collected                                                 int
	)
	for _, p := range per {
		if !p.collected {
			continue
		}
		collected++
		sessions += p.sessions
		delivered += p.delivered
		stable += p.stable
		acked += p.acked
		receipts += p.receipts
		dups += p.dups
		stableNoReceipt += p.stableNoReceipt
		receiptNoDelivery += p.receiptNoDelivery
		missed += p.missed
		reconn += p.reconnecting
		unexp += p.unexplained
		twice += p.twice
		dup += p.dup
		if p.lastReceipt > 0 {
			lastRc.RecordDuration(p.lastReceipt)
		}
		if p.sessions > 0 {
			minRcPct = min(minRcPct, 100*float64(p.receipts)/p.sessions)
		}
		minDelivPct = min(minDelivPct, 100*float64(p.delivered)/n)
	}
	cn := float64(max(collected, 1))
	secs := u1.at.Sub(u0.at).Seconds()
	cycles := float64(t.cycles)
	b.rep.add("broadcasts", float64(collected), "")
	b.rep.add("interval", o.interval.Seconds(), "s")
	b.rep.add("frame_bytes", float64(len(seedBody(0, o.payload))+len(`{"type":"push","target":"all","ack":true,"event":"message","id":"seed-000","data":}`)), "B")
	b.rep.add("churn_target_per_sec", churnRate, "1/s")
	b.rep.add("churn_cycles", cycles, "")
	b.rep.add("churn_per_sec", cycles/secs, "1/s")
	b.rep.add("client_errors", float64(t.errs), "")
	for _, smp := range t.samples {
		b.rep.note(smp)
	}

	// Deliveries, acks, receipts.
	b.rep.add("sessions_at_publish_avg", sessions/cn, "")
	b.rep.add("deliveries", float64(delivered), "")
	b.rep.add("deliveries_per_broadcast_avg", float64(delivered)/cn, "")
	b.rep.add("deliveries_per_broadcast_min_pct", minDelivPct, "% of clients")
	b.rep.add("acks_sent", float64(acked), "")
	b.rep.add("receipts", float64(receipts), "")
	b.rep.add("receipts_per_broadcast_avg", float64(receipts)/cn, "")
	b.rep.add("receipts_vs_sessions_at_publish", 100*float64(receipts)/max(sessions, 1), "%")
	b.rep.add("receipts_vs_sessions_at_publish_min", minRcPct, "%")
	b.rep.add("receipts_vs_deliveries", 100*float64(receipts)/float64(max(delivered, 1)), "%")
	b.rep.add("missed_reconnecting", float64(reconn), "")
	b.rep.add("missed_reconnecting_pct", 100*float64(reconn)/(n*cn), "% of client-broadcasts")
	b.rep.add("missed_unexplained", float64(unexp), "")
	b.rep.add("delivered_not_receipted", float64(delivered-receipts+dups), "")
	b.rep.add("delivered_then_churned", float64(delivered-stable), "")
	b.rep.add("stable_deliveries", float64(stable), "")
	b.rep.add("stable_without_receipt", float64(stableNoReceipt), "")
	b.rep.add("receipts_without_delivery", float64(receiptNoDelivery), "")
	b.rep.add("duplicate_receipts", float64(dups), "")
	b.rep.add("delivered_on_two_connections", float64(twice), "")
	b.rep.add("receipts_late_or_foreign", float64(log.late+log.bad), "")
	nodeAcked := m1[`pushd_receipts_total{result="acked"}`] - m0[`pushd_receipts_total{result="acked"}`]
	b.rep.add("receipts_published_by_nodes", nodeAcked, "")
	rcs := lastRc.Summary()
	b.rep.add("last_receipt_after_publish_p50", rcs.P50, "ms")
	b.rep.add("last_receipt_after_publish_max", rcs.Max, "ms")
	log.mu.Lock()
	peak := peakWindow(log.timeline, int(int64(time.Second)/timelineStep))
	log.mu.Unlock()
	b.rep.add("receipts_per_sec_peak", float64(peak), "1/s")
	b.rep.add("receipts_per_sec_avg", float64(receipts)/secs, "1/s")
	lat := t.lat.Summary()
	b.rep.add("delivery_latency_p50", lat.P50, "ms")
	b.rep.add("delivery_latency_p99", lat.P99, "ms")
	b.rep.add("delivery_latency_max", lat.Max, "ms")
	// The nodes' share of it: publish to socket write (the rest is the
	// clients reading on the same cores).
	if total := m1["pushd_delivery_latency_seconds_count"] - m0["pushd_delivery_latency_seconds_count"]; total > 0 {
		for _, le := range seedLatencyBounds {
			k := `pushd_delivery_latency_seconds_bucket{le="` + le + `"}`
			b.rep.add("server_written_within_"+le+"s", 100*(m1[k]-m0[k])/total, "%")
		}
	}

	// Memory per connection: the nodes' RSS over the sessions they hold.
	perConn := func(s serverSample) float64 { return float64(s.RSS) / max(s.Sessions, 1) / 1024 }
	b.rep.add("rss_nodes_empty", float64(base.RSS)/(1<<20), "MiB")
	b.rep.add("rss_per_conn_idle", perConn(idle), "KiB")
	b.rep.add("rss_per_conn_idle_over_empty", float64(idle.RSS-base.RSS)/max(idle.Sessions, 1)/1024, "KiB")
	if len(samples) > 0 {
		first, mid, last := samples[0], samples[len(samples)/2], samples[len(samples)-1]
		for _, s := range []struct {
			name string
			s    seedSample
		}{{"start", first}, {"mid", mid}, {"end", last}} {
			b.rep.add("rss_per_conn_"+s.name, perConn(s.s.serverSample), "KiB")
			b.rep.add("rss_total_"+s.name, float64(s.s.RSS)/(1<<20), "MiB")
			b.rep.add("heap_live_"+s.name, s.s.HeapLive/(1<<20), "MiB")
			b.rep.add("goroutines_"+s.name, s.s.Goroutines, "")
			b.rep.add("sessions_"+s.name, s.s.Sessions, "")
			b.rep.add("sample_at_"+s.name, s.s.at.Seconds(), "s")
		}
	}
	b.rep.add("samples", float64(len(samples)), "")
	b.rep.add("sample_every", sampleEvery.Seconds(), "s")
	rssS := series(samples, func(s seedSample) float64 { return float64(s.RSS) / (1 << 20) })
	heapS := series(samples, func(s seedSample) float64 { return s.HeapLive / (1 << 20) })
	gorS := series(samples, func(s seedSample) float64 { return s.Goroutines })
	b.rep.add("rss_slope_last_two_thirds", slopePerMin(samples, rssS), "MiB/min")
	b.rep.add("heap_live_slope_last_two_thirds", slopePerMin(samples, heapS), "MiB/min")
	b.rep.add("goroutines_slope_last_two_thirds", slopePerMin(samples, gorS), "1/min")
	b.rep.add("goroutines_min", minOf(gorS), "")
	b.rep.add("goroutines_max", maxOf(gorS), "")
	b.rep.add("goroutines_idle", idle.Goroutines, "")
	b.rep.add("goroutines_after", after.Goroutines, "")
	b.rep.add("heap_live_idle", idle.HeapLive/(1<<20), "MiB")
	b.rep.add("heap_live_after", after.HeapLive/(1<<20), "MiB")
	b.rep.add("sessions_after", after.Sessions, "")
	b.rep.setRaw("samples", sampleTable(samples))

	// CPU over the broadcasting window.
	core := func(d int64) float64 { return float64(d) / 1e9 / secs }
	var pushd int64
	for i := range u1.nodes {
		d := u1.nodes[i] - u0.nodes[i]
		pushd += d
		b.rep.add(fmt.Sprintf("node%d_cores", i+1), core(d), "cores")
	}
	b.rep.add("pushd_cores", core(pushd), "cores")
	b.rep.add("pushd_cpu_per_delivery", float64(pushd)/1e3/float64(max(delivered, 1)), "µs")
	b.rep.add("pushd_cpu_per_receipt", float64(pushd)/1e3/float64(max(receipts, 1)), "µs")
	b.rep.add("pushd_cpu_per_client_second", float64(pushd)/1e3/(n*secs), "µs")
	if !o.inProcess {
		b.rep.add("clients_cores", core(u1.clients-u0.clients), "cores")
	}
	b.rep.add("pushbench_nats_cores", core(u1.self-u0.self), "cores")
	mach := core(u1.machine - u0.machine)
	b.rep.add("machine_busy_cores", mach, "cores")
	b.rep.add("other_processes_cores", mach-core(pushd)-core(u1.clients-u0.clients)-core(u1.self-u0.self), "cores")
	b.rep.add("loadavg1_start", u0.loadavg1, "")
	b.rep.add("loadavg1_end", u1.loadavg1, "")

	// Errors the nodes saw.
	d := func(k string) float64 { return m1[k] - m0[k] }
	var nodeErrs float64
	for _, k := range seedNodeMetrics {
		if !strings.HasPrefix(k, "pushd_connections_closed_total") && k != "pushd_slow_consumers_total" && k != `pushd_receipts_total{result="dropped"}` {
			continue
		}
		if v := d(k); v != 0 {
			nodeErrs += v
			b.rep.note(fmt.Sprintf("nodes: %s +%.0f", k, v))
		}
	}
	b.rep.add("node_errors", nodeErrs, "")
	b.rep.add("subscriber_dropped_receipts", float64(droppedOf(sub)), "")

	// Checks.
	b.rep.check("every broadcast collected", collected == len(per), fmt.Sprintf("%d/%d", collected, len(per)))
	b.rep.check("every client open since before a broadcast got it", unexp == 0,
		fmt.Sprintf("%d missed while connected; %d missed while reconnecting", unexp, reconn))
	b.rep.check("a receipt for every delivery to a client that did not churn after it", stableNoReceipt == 0 && stable > 0,
		fmt.Sprintf("%d of %d without receipt", stableNoReceipt, stable))
	b.rep.check("no receipt without a delivery, none twice", receiptNoDelivery == 0 && uint64(dups) <= twice && dup == 0 && log.bad == 0,
		fmt.Sprintf("%d without delivery, %d duplicate receipts (%d clients got one on two connections), %d duplicate deliveries, %d foreign",
			receiptNoDelivery, dups, twice, dup, log.bad))
	b.rep.check("no errors", t.errs == 0 && t.dropped == 0 && nodeErrs == 0 && droppedOf(sub) == 0,
		fmt.Sprintf("%d client errors, %d unrequested closes, %.0f node errors, %d receipts dropped by the subscriber", t.errs, t.dropped, nodeErrs, droppedOf(sub)))
	b.rep.check("churn reached its rate", cycles >= 0.9*churnRate*secs, fmt.Sprintf("%.0f cycles in %.0fs, target %.0f/s", cycles, secs, churnRate))
	gDelta := after.Goroutines - idle.Goroutines
	b.rep.check("goroutines flat", gDelta <= max(10, 0.01*n), fmt.Sprintf("%.0f idle before -> %.0f after (%+.0f)", idle.Goroutines, after.Goroutines, gDelta))
	b.rep.check("sessions match clients after", int(after.Sessions) == o.conns, fmt.Sprintf("%.0f of %d", after.Sessions, o.conns))
	if len(samples) >= 3 {
		midR, lastR := thirds(rssS)
		b.rep.check("RSS flat (last third vs middle third <= 1.1x + 8 MiB)", lastR <= midR*1.1+8, fmt.Sprintf("%.1f -> %.1f MiB", midR, lastR))
		midH, lastH := thirds(heapS)
		b.rep.check("live heap flat (last third vs middle third <= 1.1x + 4 MiB)", lastH <= midH*1.1+4, fmt.Sprintf("%.1f -> %.1f MiB", midH, lastH))
	}
}

func droppedOf(sub *nats.Subscription) int {
	d, _ := sub.Dropped()
	return d
}

func series(ss []seedSample, f func(seedSample) float64) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

// thirds is the mean of the middle and of the last third of vs (the first
// third is warm-up: maps and pools grow to the churn's in-flight peak).
func thirds(vs []float64) (mid, last float64) {
	k := len(vs) / 3
	return mean(vs[k : len(vs)-k]), mean(vs[len(vs)-k:])
}

func mean(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := 0.0
	for _, v := range vs {
		s += v
	}
	return s / float64(len(vs))
}

func minOf(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	return slices.Min(vs)
}

func maxOf(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	return slices.Max(vs)
}

// slopePerMin is the least-squares slope of vs over the last two thirds of
// the samples, per minute.
func slopePerMin(ss []seedSample, vs []float64) float64 {
	k := len(vs) / 3
	xs, ys := ss[k:], vs[k:]
	if len(ys) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range ys {
		x := xs[i].at.Minutes()
		sx += x
		sy += ys[i]
		sxx += x * x
		sxy += x * ys[i]
	}
	m := float64(len(ys))
	den := m*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (m*sxy - sx*sy) / den
}

// sampleTable is the samples for the JSON report: seconds, RSS MiB, live
// heap MiB, goroutines, sessions.
func sampleTable(ss []seedSample) [][5]float64 {
	out := make([][5]float64, len(ss))
	for i, s := range ss {
		out[i] = [5]float64{math.Round(s.at.Seconds()*10) / 10, math.Round(float64(s.RSS)/(1<<20)*10) / 10,
			math.Round(s.HeapLive/(1<<20)*10) / 10, s.Goroutines, s.Sessions}
	}
	return out
}
