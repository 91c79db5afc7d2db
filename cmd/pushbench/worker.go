package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/lxzan/gws"
)

// The coordinator drives each worker with one JSON command per line on the
// worker's stdin; the worker answers each with one JSON reply per line on
// stdout, sending "progress" lines in between while it connects. An
// in-process worker runs the same loop over pipes.

// connectSpec tells a worker which clients to open.
type connectSpec struct {
	Mode        string   `json:"mode"`      // "pushd" or "nats"
	Transport   string   `json:"transport"` // pushd mode: "ws" (default), "sse" or "poll"
	Targets     []string `json:"targets"`
	First       int      `json:"first"` // global index of the first client
	Count       int      `json:"count"`
	Rate        float64  `json:"rate"` // connects/s for this worker; 0 = as fast as Concurrency allows
	Concurrency int      `json:"concurrency"`
	Secret      string   `json:"secret"` // HS256 key; empty = dev ?user=
	Docs        int      `json:"docs"`
	DocDist     string   `json:"doc_dist"`
	SrcFrom     int      `json:"src_from"` // last octet range of 127.0.0.x source addresses
	SrcTo       int      `json:"src_to"`
	ReadBuf     int      `json:"read_buf"`
	EpochNano   int64    `json:"epoch_ns"` // shared start of the per-second timeline
	TimeoutNano int64    `json:"timeout_ns"`
	Subject     string   `json:"subject"` // nats mode: subject to SUB
	// Resume: track each client's last user and doc position ("seq") and
	// come back with since; dedupe by seq, count duplicates and gaps.
	Resume bool `json:"resume,omitempty"`
	// Reconnect: a client the server closes (a drain's 1012) reconnects to
	// another target after up to JitterNano, resuming.
	Reconnect  bool  `json:"reconnect,omitempty"`
	JitterNano int64 `json:"jitter_ns,omitempty"`
	// Users is how many clients there are in all: push k to users goes to
	// user k%Users (and doc push k to doc k%Docs), so a client knows which
	// body index comes next and sees a gap.
	Users int `json:"users,omitempty"`
	// Ack: answer every push that asks for a receipt ("ack":true) with an
	// ack naming its id, and record which connection of each client got
	// each seed broadcast (seed.go).
	Ack bool `json:"ack,omitempty"`
	// Presence: every client but the last Churners joins PresenceDoc asking
	// for presence events; the churners only connect, and join and leave
	// it on "flap" commands.
	PresenceDoc string `json:"presence_doc,omitempty"`
	Churners    int    `json:"churners,omitempty"`
}

type flapSpec struct {
	PerSecond  float64 `json:"per_second"` // joins+leaves per second for this worker
	DurationNs int64   `json:"duration_ns"`
}

type churnSpec struct {
	PerSecond   float64 `json:"per_second"` // disconnect+reconnect cycles per second for this worker
	DurationNs  int64   `json:"duration_ns"`
	Concurrency int     `json:"concurrency"`
	// Background: start the churn and answer at once; "churn_wait" waits
	// for its end, so stats and seed_collect can run meanwhile.
	Background bool `json:"background,omitempty"`
}

type command struct {
	Op      string       `json:"op"` // connect, reset, stats, churn, churn_wait, seed_collect, drop, resume, close
	Connect *connectSpec `json:"connect,omitempty"`
	Seqs    int          `json:"seqs,omitempty"`
	// Seq and PubAtNano name the seed broadcast seed_collect reports on and
	// when it was published.
	Seq       int        `json:"seq,omitempty"`
	PubAtNano int64      `json:"pub_at_ns,omitempty"`
	Churn     *churnSpec `json:"churn,omitempty"`
	// PerClient asks stats for each client's unique user and doc pushes.
	PerClient bool      `json:"per_client,omitempty"`
	Flap      *flapSpec `json:"flap,omitempty"`
}

type reply struct {
	Op        string  `json:"op"`
	Err       string  `json:"err,omitempty"`
	Progress  int     `json:"progress,omitempty"`
	Connected int     `json:"connected"`
	Failed    int     `json:"failed"`
	FirstErr  string  `json:"first_err,omitempty"`
	Handshake Sparse  `json:"handshake,omitempty"`
	Timeline  []int   `json:"timeline,omitempty"`
	Received  uint64  `json:"received"`
	Latency   Sparse  `json:"latency,omitempty"`
	Last      []int64 `json:"last,omitempty"`
	Open      int     `json:"open"`
	PingsSent uint64  `json:"pings_sent"`
	Pongs     uint64  `json:"pongs"`
	FramesIn  uint64  `json:"frames_in"`
	BytesIn   uint64  `json:"bytes_in"`
	BytesOut  uint64  `json:"bytes_out"`
	Errors    uint64  `json:"errors"`
	Dropped   uint64  `json:"dropped"` // closes we did not ask for
	Cycles    uint64  `json:"cycles"`  // churn: completed reconnects
	CPUNanos  int64   `json:"cpu_ns"`

	// with Resume
	Dups         uint64   `json:"dups,omitempty"`          // pushes at or before the position already processed
	Gaps         uint64   `json:"gaps,omitempty"`          // pushes skipped (by body index) between two received
	Reordered    uint64   `json:"reordered,omitempty"`     // new positions whose body index went backwards
	NoSeq        uint64   `json:"no_seq,omitempty"`        // user/doc pushes without a position
	Recovered    uint64   `json:"recovered,omitempty"`     // hello/joined with "recovered":true
	NotRecovered uint64   `json:"not_recovered,omitempty"` // ... false
	Closes1012   uint64   `json:"closes_1012,omitempty"`   // server closes with 1012 (drain)
	ClosesOther  uint64   `json:"closes_other,omitempty"`  // other server closes
	Reconnects   uint64   `json:"reconnects,omitempty"`    // completed automatic reconnects
	ReconnErrs   uint64   `json:"reconn_errs,omitempty"`   // failed reconnect attempts (retried)
	ReconnFails  uint64   `json:"reconn_fails,omitempty"`  // clients that gave up
	LastPushAt   int64    `json:"last_push_at,omitempty"`  // unix ns of the latest push received
	Reconn       Sparse   `json:"reconn,omitempty"`        // close -> ready again
	ReconnHS     Sparse   `json:"reconn_hs,omitempty"`     // last attempt -> ready
	UserGot      []int32  `json:"user_got,omitempty"`      // per client (index First+i): unique user pushes
	DocGot       []int32  `json:"doc_got,omitempty"`       // ... unique doc pushes
	First        int      `json:"first,omitempty"`
	Samples      []string `json:"samples,omitempty"`  // the first anomalies seen, described
	GotUser      uint64   `json:"got_user,omitempty"` // unique user pushes, all clients
	GotDoc       uint64   `json:"got_doc,omitempty"`  // unique doc pushes, all clients
	// Presence: presence_diff frames and the joins and leaves they carried
	// (listed, or counted in counts-only frames); flaps sent.
	PresenceFrames uint64 `json:"presence_frames"`
	PresenceEvents uint64 `json:"presence_events"`
	Flaps          uint64 `json:"flaps"`

	Acks uint64       `json:"acks,omitempty"` // ack frames sent (connectSpec.Ack)
	Seed *seedCollect `json:"seed,omitempty"` // seed_collect
}

// runWorker serves commands until "close" or EOF, then closes every client.
func runWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	w := &worker{ctx: ctx}
	var outMu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(r reply) {
		outMu.Lock()
		_ = enc.Encode(r)
		outMu.Unlock()
	}
	w.progress = func(n int) { send(reply{Op: "progress", Progress: n}) }
	defer w.closeAll()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var c command
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			send(reply{Op: "error", Err: err.Error()})
			continue
		}
		r := w.do(c)
		r.Op = c.Op
		send(r)
		if c.Op == "close" {
			return nil
		}
	}
	return sc.Err()
}

// The connect timeline counts completed handshakes per 100ms since the
// shared epoch; the coordinator slides a one-second window over it.
const (
	timelineStep  = int64(100 * time.Millisecond)
	timelineSlots = 36000
)

type worker struct {
	ctx      context.Context
	progress func(int)
	spec     connectSpec
	clients  []atomic.Pointer[benchClient]
	stopPing chan struct{}
	pingDone sync.WaitGroup

	hs       Hist
	lat      Hist
	timeline [timelineSlots]atomic.Int32

	received  atomic.Uint64
	pingsSent atomic.Uint64
	pongs     atomic.Uint64
	framesIn  atomic.Uint64
	bytesIn   atomic.Uint64
	bytesOut  atomic.Uint64
	errs      atomic.Uint64
	dropped   atomic.Uint64
	cycles    atomic.Uint64
	last      atomic.Pointer[[]atomic.Int64]

	// Resume tracking (see connectSpec.Resume); state is per client slot
	// and outlives reconnects.
	state                           []clientState
	dups, gaps, reordered, noSeq    atomic.Uint64
	recovered, notRecovered         atomic.Uint64
	closes1012, closesOther         atomic.Uint64
	reconnects, reconnErrs, reconnF atomic.Uint64
	lastPushAt                      atomic.Int64
	reconn                          Hist          // close -> usable again, jitter included
	reconnHS                        Hist          // the successful attempt alone: dial -> hello (+joined)
	closing                         chan struct{} // closed by closeAll: no reconnect starts after
	closingMu                       sync.Mutex
	samplesMu                       sync.Mutex
	samples                         []string
	reconnWG                        sync.WaitGroup

	presenceFrames atomic.Uint64
	presenceEvents atomic.Uint64
	flaps          atomic.Uint64
	// With connectSpec.Ack (seed.go).
	acks      atomic.Uint64
	seed      seedWorker
	churnStop chan struct{} // a background churn runs until closed
	churnDone chan struct{}
}

// clientState is what a client remembers across its connections: the
// positions it processed, what it got since the last reset, and the body
// index it expects next on each subject.
type clientState struct {
	userSeq, docSeq atomic.Uint64
	userGot, docGot atomic.Int32
	userS, docS     atomic.Int64 // last body index received; -1: none yet
	downAt          atomic.Int64 // when it was closed (unix ns)
}

func (w *worker) do(c command) reply {
	switch c.Op {
	case "connect":
		if c.Connect == nil {
			return reply{Err: "connect without spec"}
		}
		return w.connectAll(*c.Connect)
	case "reset":
		w.resetResume()
		w.received.Store(0)
		w.lat.Reset()
		w.errs.Store(0)
		w.framesIn.Store(0)
		w.bytesIn.Store(0)
		w.bytesOut.Store(0)
		w.pingsSent.Store(0)
		w.pongs.Store(0)
		w.presenceFrames.Store(0)
		w.presenceEvents.Store(0)
		w.flaps.Store(0)
		last := make([]atomic.Int64, c.Seqs)
		w.last.Store(&last)
		return w.stats(false)
	case "stats":
		r := w.stats(true)
		if c.PerClient {
			r.First = w.spec.First
			r.UserGot = make([]int32, len(w.state))
			r.DocGot = make([]int32, len(w.state))
			for i := range w.state {
				r.UserGot[i], r.DocGot[i] = w.state[i].userGot.Load(), w.state[i].docGot.Load()
			}
		}
		return r
	case "drop":
		w.drop()
		return w.stats(false)
	case "resume":
		return w.resumeAll()
	case "churn":
		if c.Churn == nil {
			return reply{Err: "churn without spec"}
		}
		if c.Churn.Background {
			if w.churnDone != nil {
				return reply{Err: "a churn is running already"}
			}
			w.churnStop, w.churnDone = make(chan struct{}), make(chan struct{})
			go func(spec churnSpec, stop, done chan struct{}) {
				defer close(done)
				w.churn(spec, stop)
			}(*c.Churn, w.churnStop, w.churnDone)
			return w.stats(false)
		}
		w.churn(*c.Churn, nil)
		return w.stats(false)
	case "flap":
		if c.Flap == nil {
			return reply{Err: "flap without spec"}
		}
		w.flap(*c.Flap)
		return w.stats(false)
	case "churn_wait":
		w.waitChurn(false)
		return w.stats(false)
	case "seed_collect":
		r := w.stats(false)
		r.Seed = w.seedCollect(c.Seq, c.PubAtNano)
		return r
	case "close":
		w.closeAll()
		return w.stats(false)
	}
	return reply{Err: "unknown op " + c.Op}
}

func (w *worker) stats(withLast bool) reply {
	r := reply{
		Received: w.received.Load(), Latency: w.lat.Snapshot(), PingsSent: w.pingsSent.Load(), Pongs: w.pongs.Load(),
		FramesIn: w.framesIn.Load(), BytesIn: w.bytesIn.Load(), BytesOut: w.bytesOut.Load(), Errors: w.errs.Load(),
		Dropped: w.dropped.Load(), Cycles: w.cycles.Load(), CPUNanos: procCPU(os.Getpid()),
		Dups: w.dups.Load(), Gaps: w.gaps.Load(), Reordered: w.reordered.Load(), NoSeq: w.noSeq.Load(),
		Recovered: w.recovered.Load(), NotRecovered: w.notRecovered.Load(), Closes1012: w.closes1012.Load(),
		ClosesOther: w.closesOther.Load(), Reconnects: w.reconnects.Load(), ReconnErrs: w.reconnErrs.Load(),
		ReconnFails: w.reconnF.Load(), LastPushAt: w.lastPushAt.Load(), Reconn: w.reconn.Snapshot(), ReconnHS: w.reconnHS.Snapshot(),
		PresenceFrames: w.presenceFrames.Load(), PresenceEvents: w.presenceEvents.Load(), Flaps: w.flaps.Load(),
		Acks: w.acks.Load(),
	}
	for i := range w.clients {
		if c := w.clients[i].Load(); c != nil && c.ready.Load() && !c.closed.Load() {
			r.Open++
		}
	}
	w.samplesMu.Lock()
	r.Samples = append([]string(nil), w.samples...)
	w.samplesMu.Unlock()
	for i := range w.state {
		r.GotUser += uint64(w.state[i].userGot.Load())
		r.GotDoc += uint64(w.state[i].docGot.Load())
	}
	if p := w.last.Load(); withLast && p != nil {
		r.Last = make([]int64, len(*p))
		for i := range *p {
			r.Last[i] = (*p)[i].Load()
		}
	}
	return r
}

// benchClient is one lean connection: a gws client conn, its read goroutine
// and a few words of state.
type benchClient struct {
	w        *worker
	idx      int
	gen      uint32       // with Ack: this slot's connections opened so far, this one included
	st       *clientState // nil unless Resume
	target   int
	pushes   atomic.Int64 // received on this connection
	readyAt  atomic.Int64
	conn     *gws.Conn
	user     string
	doc      string
	readyCh  chan struct{}
	ready    atomic.Bool
	closed   atomic.Bool
	leaving  atomic.Bool
	nextPing atomic.Int64
	interval atomic.Int64
	natsBuf  []byte
	// listen asks for presence events on its join; inDoc is a churner's
	// membership, flipped by flap.
	listen bool
	inDoc  atomic.Bool
	// raw and session are an SSE or long-poll client's connection and
	// "sid=...&secret=..." (httpclient.go); conn is nil then.
	raw     net.Conn
	session string
}

// netConn is the client's socket, whatever its transport.
func (c *benchClient) netConn() net.Conn {
	if c.conn != nil {
		return c.conn.NetConn()
	}
	return c.raw
}

type clientSlot struct{ c *benchClient }

func (*clientSlot) Len() int                                { return 0 }
func (*clientSlot) Load(string) (any, bool)                 { return nil, false }
func (*clientSlot) Delete(string)                           {}
func (*clientSlot) Store(string, any)                       {}
func (*clientSlot) Range(func(string, any) bool)            {}
func clientOf(c *gws.Conn) *benchClient                     { return c.Session().(*clientSlot).c }
func (w *worker) slot(idx int) *atomic.Pointer[benchClient] { return &w.clients[idx-w.spec.First] }

func userID(i int) string { return "u" + strconv.Itoa(i) }
func docID(i int) string  { return "d" + strconv.Itoa(i) }

func (w *worker) connectAll(spec connectSpec) reply {
	w.spec = spec
	w.clients = make([]atomic.Pointer[benchClient], spec.Count)
	w.closing = make(chan struct{})
	if spec.Ack {
		w.seed.init(spec.Count)
	}
	if spec.Resume {
		w.state = make([]clientState, spec.Count)
		w.resetResume()
	}
	if spec.Concurrency <= 0 {
		spec.Concurrency = 256
	}
	if spec.TimeoutNano <= 0 {
		spec.TimeoutNano = int64(10 * time.Second)
	}
	w.spec = spec
	var (
		ok, failed atomic.Int64
		errMu      sync.Mutex
		firstErr   string
		wg         sync.WaitGroup
	)
	sem := make(chan struct{}, spec.Concurrency)
	start := time.Now()
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				w.progress(int(ok.Load() + failed.Load()))
			}
		}
	}()
loop:
	for i := 0; i < spec.Count; i++ {
		if spec.Rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / spec.Rate * 1e9))); d > 0 {
				select {
				case <-time.After(d):
				case <-w.ctx.Done():
					break loop
				}
			}
		}
		select {
		case sem <- struct{}{}:
		case <-w.ctx.Done():
			break loop
		}
		wg.Add(1)
		go func(idx int) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := w.connectOne(idx, true); err != nil {
				failed.Add(1)
				errMu.Lock()
				if firstErr == "" {
					firstErr = err.Error()
				}
				errMu.Unlock()
				return
			}
			ok.Add(1)
		}(spec.First + i)
	}
	wg.Wait()
	close(stopProgress)
	<-progressDone
	w.startPinger()
	r := w.stats(false)
	r.Connected, r.Failed, r.FirstErr = int(ok.Load()), int(failed.Load()), firstErr
	r.Handshake = w.hs.Snapshot()
	last := 0
	for i := range w.timeline {
		if w.timeline[i].Load() > 0 {
			last = i
		}
	}
	for i := 0; i <= last; i++ {
		r.Timeline = append(r.Timeline, int(w.timeline[i].Load()))
	}
	return r
}

// docFor is the doc client i joins: deterministic, so the coordinator knows
// every membership without asking.
func docFor(i, docs int, dist string, zipf *zipfTable) int {
	if docs <= 0 {
		return -1
	}
	h := splitmix(uint64(i) + 0x9e3779b97f4a7c15)
	switch {
	case dist == "uniform" || dist == "":
		return int(h % uint64(docs))
	case strings.HasPrefix(dist, "fixed:"):
		n, _ := strconv.Atoi(strings.TrimPrefix(dist, "fixed:"))
		if n <= 0 {
			n = 1
		}
		return (i / n) % docs
	case dist == "zipf":
		return zipf.pick(float64(h>>11) / (1 << 53))
	}
	return int(h % uint64(docs))
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// zipfTable draws doc ranks with weight 1/(k+1)^1.1 by inverse CDF.
type zipfTable struct{ cdf []float64 }

func newZipf(n int) *zipfTable {
	z := &zipfTable{cdf: make([]float64, n)}
	sum := 0.0
	for k := 0; k < n; k++ {
		sum += 1 / pow11(float64(k+1))
		z.cdf[k] = sum
	}
	for k := range z.cdf {
		z.cdf[k] /= sum
	}
	return z
}

func pow11(x float64) float64 { return math.Pow(x, 1.1) }

func (z *zipfTable) pick(u float64) int {
	lo, hi := 0, len(z.cdf)-1
	for lo < hi {
		m := (lo + hi) / 2
		if z.cdf[m] < u {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (w *worker) wsURL(idx, target int) (string, error) {
	s := w.spec
	base := s.Targets[target]
	if s.Mode == "nats" {
		return base, nil
	}
	user := userID(idx)
	q := url.Values{}
	if s.Secret != "" {
		// The same token on every connection of a client, as a real client
		// keeps its token until it refreshes it (the node's verified-token
		// cache sees reconnects as they are).
		epoch := time.Unix(0, s.EpochNano)
		claims := jwt.MapClaims{"sub": user, "exp": epoch.Add(24 * time.Hour).Unix(), "iat": epoch.Unix()}
		if s.Docs > 0 {
			// the doc it will join, granted in the token's docs claim
			claims["docs"] = []string{docID(docFor(idx, s.Docs, s.DocDist, zipfFor(s.Docs)))}
		}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(s.Secret))
		if err != nil {
			return "", err
		}
		q.Set("token", tok)
	} else {
		q.Set("user", user)
	}
	if st := w.stateOf(idx); st != nil {
		if seq := st.userSeq.Load(); seq > 0 {
			q.Set("since", strconv.FormatUint(seq, 10))
		}
	}
	return base + "?" + q.Encode(), nil
}

var zipfCache sync.Map // docs count -> *zipfTable

func zipfFor(n int) *zipfTable {
	if z, ok := zipfCache.Load(n); ok {
		return z.(*zipfTable)
	}
	z, _ := zipfCache.LoadOrStore(n, newZipf(n))
	return z.(*zipfTable)
}

// connectOne opens client idx and waits until it is usable: hello (and
// joined) for pushd, PONG after CONNECT+SUB+PING for NATS.
func (w *worker) connectOne(idx int, record bool) error {
	return w.connectOneTo(idx, idx%len(w.spec.Targets), record)
}

// connectOneTo opens client idx on target index target.
func (w *worker) connectOneTo(idx, target int, record bool) error {
	s := w.spec
	start := time.Now()
	addr, err := w.wsURL(idx, target)
	if err != nil {
		return err
	}
	u, err := url.Parse(addr)
	if err != nil {
		return err
	}
	var local net.Addr
	if s.SrcFrom > 0 && s.SrcTo >= s.SrcFrom {
		local = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(s.SrcFrom+idx%(s.SrcTo-s.SrcFrom+1)))}
	}
	timeout := time.Duration(s.TimeoutNano)
	d := net.Dialer{LocalAddr: local, Timeout: timeout}
	nc, err := d.DialContext(w.ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	c := &benchClient{w: w, idx: idx, user: userID(idx), readyCh: make(chan struct{}), st: w.stateOf(idx), target: target}
	if s.Ack {
		c.gen = w.seed.gens[idx-s.First].Add(1)
	}
	if s.Docs > 0 && s.Mode != "nats" {
		c.doc = docID(docFor(idx, s.Docs, s.DocDist, zipfFor(s.Docs)))
	}
	if s.PresenceDoc != "" && idx < s.First+s.Count-s.Churners {
		c.doc, c.listen = s.PresenceDoc, true
	}
	if s.Mode != "nats" && s.Transport != "" && s.Transport != transportWS {
		c.raw = nc
		if old := w.slot(idx).Swap(c); old != nil && !old.closed.Load() {
			old.leaving.Store(true)
			_ = old.netConn().Close()
		}
		if err := w.connectHTTP(c, nc, u.Host, timeout); err != nil {
			c.leaving.Store(true)
			_ = nc.Close()
			return err
		}
		return w.awaitReady(c, nc, start, timeout, record)
	}
	rb := s.ReadBuf
	if rb <= 0 {
		rb = 1024
	}
	if u.Scheme == "wss" {
		// A measurement of what TLS costs the node: the run's self-signed
		// certificate is not checked.
		tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // see above
		_ = tc.SetDeadline(start.Add(timeout))
		if err := tc.HandshakeContext(w.ctx); err != nil {
			_ = nc.Close()
			return err
		}
		nc = tc
	}
	conn, _, err := gws.NewClientFromConn(benchHandler{}, &gws.ClientOption{
		Addr: addr, ReadBufferSize: rb, ReadMaxPayloadSize: 1 << 20, HandshakeTimeout: timeout,
		NewSession: func() gws.SessionStorage { return &clientSlot{} },
	}, nc)
	if err != nil {
		return err
	}
	conn.Session().(*clientSlot).c = c
	c.conn = conn
	if old := w.slot(idx).Swap(c); old != nil && !old.closed.Load() {
		old.leaving.Store(true)
		_ = old.netConn().Close()
	}
	_ = nc.SetDeadline(time.Time{})
	go conn.ReadLoop()
	if s.Mode == "nats" {
		subj := s.Subject
		if subj == "" {
			subj = "push.all"
		}
		if err := conn.WriteMessage(gws.OpcodeBinary, []byte("CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB "+subj+" 1\r\nPING\r\n")); err != nil {
			return err
		}
	}
	return w.awaitReady(c, nc, start, timeout, record)
}

// awaitReady waits for client c's hello (and joined), then records the
// handshake.
func (w *worker) awaitReady(c *benchClient, nc net.Conn, start time.Time, timeout time.Duration, record bool) error {
	s := w.spec
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.readyCh:
	case <-t.C:
		c.leaving.Store(true)
		_ = nc.Close()
		return errors.New("no hello within timeout")
	case <-w.ctx.Done():
		c.leaving.Store(true)
		_ = nc.Close()
		return w.ctx.Err()
	}
	c.readyAt.Store(time.Now().UnixNano())
	c.ready.Store(true)
	if record {
		now := time.Now()
		w.hs.RecordDuration(now.Sub(start))
		if sec := (now.UnixNano() - s.EpochNano) / timelineStep; sec >= 0 && sec < int64(len(w.timeline)) {
			w.timeline[sec].Add(1)
		}
	}
	return nil
}

func (c *benchClient) markReady() {
	select {
	case <-c.readyCh:
	default:
		close(c.readyCh)
	}
}

// benchHandler handles every client's events on its read goroutine.
type benchHandler struct{}

func (benchHandler) OnOpen(*gws.Conn) {}

func (benchHandler) OnClose(conn *gws.Conn, err error) {
	c := clientOf(conn)
	if c == nil {
		return
	}
	c.closed.Store(true)
	if c.leaving.Load() || c.w.ctx.Err() != nil {
		return
	}
	if c.w.spec.Reconnect && c.st != nil {
		var ce *gws.CloseError
		if errors.As(err, &ce) && ce.Code == 1012 {
			c.w.closes1012.Add(1)
		} else {
			c.w.closesOther.Add(1)
		}
		c.st.downAt.Store(time.Now().UnixNano())
		c.w.startReconnect(c.idx, c.target)
		return
	}
	c.w.dropped.Add(1)
}

func (benchHandler) OnPing(conn *gws.Conn, p []byte) { _ = conn.WritePong(p) }
func (benchHandler) OnPong(*gws.Conn, []byte)        {}

var (
	pfxPush   = []byte(`{"type":"push"`)
	pfxHello  = []byte(`{"type":"hello"`)
	pfxJoined = []byte(`{"type":"joined"`)
	pfxPong   = []byte(`{"type":"pong"`)
	pfxError  = []byte(`{"type":"error"`)
	pfxDiff   = []byte(`{"type":"presence_diff"`)
	keyEvent  = []byte(`"event":`)
	keyJoined = []byte(`"joined":`)
	keyLeft   = []byte(`"left":`)
	keyT      = []byte(`"t":`)
	keyS      = []byte(`"s":`)
	keyPing   = []byte(`"ping_interval":`)
	keySeq    = []byte(`"seq":"`)
	keyRecT   = []byte(`"recovered":true`)
	keyRecF   = []byte(`"recovered":false`)
	pfxTarget = []byte(`{"type":"push","target":"`)
)

func (benchHandler) OnMessage(conn *gws.Conn, msg *gws.Message) {
	defer msg.Close()
	c := clientOf(conn)
	w := c.w
	b := msg.Bytes()
	w.framesIn.Add(1)
	w.bytesIn.Add(uint64(len(b)))
	if msg.Opcode == gws.OpcodeBinary || w.spec.Mode == "nats" {
		c.natsData(b)
		return
	}
	switch {
	case bytes.HasPrefix(b, pfxPush):
		w.gotPush(b)
		if c.st != nil {
			c.track(b)
		}
		if w.spec.Ack {
			c.ackPush(b)
		}
	case bytes.HasPrefix(b, pfxDiff):
		w.presenceFrames.Add(1)
		n := int64(bytes.Count(b, keyEvent))
		if n == 0 { // counts only
			n = max(intAfter(b, keyJoined), 0) + max(intAfter(b, keyLeft), 0)
		}
		w.presenceEvents.Add(uint64(n))
	case bytes.HasPrefix(b, pfxPong):
		w.pongs.Add(1)
		c.setInterval(b)
	case bytes.HasPrefix(b, pfxHello):
		c.setInterval(b)
		if c.st != nil {
			c.position(b, &c.st.userSeq)
		}
		if c.doc != "" {
			join := `{"type":"join","doc":"` + c.doc + `"}`
			if c.listen {
				join = `{"type":"join","doc":"` + c.doc + `","presence":true}`
			}
			if c.st != nil {
				if seq := c.st.docSeq.Load(); seq > 0 {
					join = `{"type":"join","doc":"` + c.doc + `","since":"` + strconv.FormatUint(seq, 10) + `"}`
				}
			}
			w.write(c, join)
			return
		}
		c.markReady()
	case bytes.HasPrefix(b, pfxJoined):
		if c.st != nil {
			c.position(b, &c.st.docSeq)
		}
		c.markReady()
	case bytes.HasPrefix(b, pfxError):
		w.errs.Add(1)
	}
}

func (w *worker) write(c *benchClient, s string) {
	w.bytesOut.Add(uint64(len(s)))
	_ = c.conn.WriteString(s)
}

func (c *benchClient) setInterval(b []byte) {
	ms := intAfter(b, keyPing)
	if ms <= 0 {
		return
	}
	iv := ms * int64(time.Millisecond)
	next := iv
	if c.interval.Swap(iv) == 0 || c.nextPing.Load() == 0 {
		// First interval (from hello): start at a random point of it, as a
		// population that connected over time would, instead of every client
		// of a fast ramp pinging in the same few seconds.
		next = 1 + rand.Int64N(iv)
	}
	c.nextPing.Store(time.Now().UnixNano() + next)
}

// gotPush records one push whose body carries {"t":<unix ns>,"s":<seq>}.
func (w *worker) gotPush(b []byte) {
	now := time.Now().UnixNano()
	w.received.Add(1)
	t := intAfter(b, keyT)
	if t > 0 {
		w.lat.Record(now - t)
	}
	if p := w.last.Load(); p != nil {
		if s := intAfter(b, keyS); s >= 0 && s < int64(len(*p)) {
			slot := &(*p)[s]
			for {
				old := slot.Load()
				if old >= now || slot.CompareAndSwap(old, now) {
					break
				}
			}
		}
	}
}

// intAfter parses the decimal integer right after key, -1 if none.
func intAfter(b, key []byte) int64 {
	i := bytes.Index(b, key)
	if i < 0 {
		return -1
	}
	b = b[i+len(key):]
	var v int64
	n := 0
	for ; n < len(b) && b[n] >= '0' && b[n] <= '9'; n++ {
		v = v*10 + int64(b[n]-'0')
	}
	if n == 0 {
		return -1
	}
	return v
}

// natsData parses the NATS text protocol out of WebSocket payloads, which may
// split or join protocol lines arbitrarily.
func (c *benchClient) natsData(b []byte) {
	c.natsBuf = append(c.natsBuf, b...)
	buf := c.natsBuf
	for {
		i := bytes.Index(buf, []byte("\r\n"))
		if i < 0 {
			break
		}
		line := buf[:i]
		switch {
		case bytes.HasPrefix(line, []byte("MSG ")):
			f := bytes.Fields(line)
			n, err := strconv.Atoi(string(f[len(f)-1]))
			if err != nil || len(f) < 4 {
				c.w.errs.Add(1)
				buf = buf[i+2:]
				continue
			}
			if len(buf) < i+2+n+2 {
				goto keep
			}
			c.w.gotPush(buf[i+2 : i+2+n])
			buf = buf[i+2+n+2:]
			continue
		case bytes.Equal(line, []byte("PING")):
			_ = c.conn.WriteMessage(gws.OpcodeBinary, []byte("PONG\r\n"))
		case bytes.Equal(line, []byte("PONG")):
			c.markReady()
		case bytes.HasPrefix(line, []byte("-ERR")):
			c.w.errs.Add(1)
		}
		buf = buf[i+2:]
	}
keep:
	if len(buf) == 0 {
		c.natsBuf = c.natsBuf[:0]
		if cap(c.natsBuf) > 4096 {
			c.natsBuf = nil
		}
		return
	}
	c.natsBuf = append(c.natsBuf[:0], buf...)
}

// startPinger runs the one heartbeat goroutine of this worker: every 250ms it
// sends {"type":"ping"} on every pushd client whose interval is up.
func (w *worker) startPinger() {
	if w.stopPing != nil || w.spec.Mode == "nats" {
		return
	}
	w.stopPing = make(chan struct{})
	w.pingDone.Add(1)
	go func() {
		defer w.pingDone.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.stopPing:
				return
			case <-w.ctx.Done():
				return
			case now := <-t.C:
				ns := now.UnixNano()
				for i := range w.clients {
					c := w.clients[i].Load()
					if c == nil || !c.ready.Load() || c.closed.Load() {
						continue
					}
					if np := c.nextPing.Load(); np != 0 && np <= ns {
						c.nextPing.Store(ns + c.interval.Load())
						w.pingsSent.Add(1)
						w.write(c, `{"type":"ping"}`)
					}
				}
			}
		}
	}()
}

// churn disconnects and reconnects random clients at spec.PerSecond until the
// duration is up or stop is closed. Bounded by time and by Concurrency
// reconnects in flight.
func (w *worker) churn(spec churnSpec, stop <-chan struct{}) {
	if len(w.clients) == 0 || spec.PerSecond <= 0 {
		return
	}
	if spec.Concurrency <= 0 {
		spec.Concurrency = 128
	}
	sem := make(chan struct{}, spec.Concurrency)
	// busy marks the clients with a cycle in flight: a second cycle of the
	// same client would close the connection the first is still opening.
	busy := make([]atomic.Bool, len(w.clients))
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(time.Duration(spec.DurationNs))
	rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(w.spec.First)))
	for i := 0; ; i++ {
		at := start.Add(time.Duration(float64(i) / spec.PerSecond * 1e9))
		if !at.Before(end) || !time.Now().Before(end) || w.ctx.Err() != nil || closed(stop) {
			break // bounded by the count the rate allows, the wall clock and stop
		}
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-w.ctx.Done():
			case <-stop:
			}
		}
		select {
		case sem <- struct{}{}:
		case <-w.ctx.Done():
			continue
		case <-stop:
			continue
		}
		i := rng.IntN(len(w.clients))
		for tries := 0; !busy[i].CompareAndSwap(false, true); tries++ {
			if tries == 8 {
				i = -1 // nearly every client is reconnecting: skip this one
				break
			}
			i = rng.IntN(len(w.clients))
		}
		if i < 0 {
			<-sem
			continue
		}
		idx := w.spec.First + i
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer busy[i].Store(false)
			if c := w.slot(idx).Load(); c != nil {
				c.leaving.Store(true)
				if c.conn != nil {
					_ = c.conn.WriteClose(1000, nil)
				}
				_ = c.netConn().Close()
			}
			if err := w.connectOne(idx, false); err != nil {
				w.errs.Add(1)
				w.sample("reconnect of client " + strconv.Itoa(idx) + ": " + err.Error())
				return
			}
			w.cycles.Add(1)
		}()
	}
	wg.Wait()
}

// flap makes this worker's churners join and leave the presence doc, one
// of them per op, at spec.PerSecond ops until the duration is up: a
// churner out of the doc joins, one in it leaves.
func (w *worker) flap(spec flapSpec) {
	s := w.spec
	if s.Churners <= 0 || spec.PerSecond <= 0 {
		return
	}
	join := `{"type":"join","doc":"` + s.PresenceDoc + `"}`
	leave := `{"type":"leave","doc":"` + s.PresenceDoc + `"}`
	start := time.Now()
	end := start.Add(time.Duration(spec.DurationNs))
	rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(s.First)))
	for i := 0; ; i++ {
		at := start.Add(time.Duration(float64(i) / spec.PerSecond * 1e9))
		if !at.Before(end) || w.ctx.Err() != nil {
			return // bounded by the count the rate allows and by the wall clock
		}
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-w.ctx.Done():
				return
			}
		}
		c := w.clients[s.Count-s.Churners+rng.IntN(s.Churners)].Load()
		if c == nil || !c.ready.Load() || c.closed.Load() {
			continue
		}
		if c.inDoc.CompareAndSwap(false, true) {
			w.write(c, join)
		} else {
			c.inDoc.Store(false)
			w.write(c, leave)
		}
		w.flaps.Add(1)
	}
}

func (w *worker) closeAll() {
	w.waitChurn(true)
	if w.closing != nil {
		w.closingMu.Lock()
		select {
		case <-w.closing:
		default:
			close(w.closing)
		}
		w.closingMu.Unlock()
		w.reconnWG.Wait()
	}
	if w.stopPing != nil {
		close(w.stopPing)
		w.pingDone.Wait()
		w.stopPing = nil
	}
	for i := range w.clients {
		if c := w.clients[i].Load(); c != nil && !c.closed.Load() {
			c.leaving.Store(true)
			_ = c.netConn().Close()
		}
	}
}

// procCPU is utime+stime of pid in nanoseconds, from /proc/<pid>/stat.
func procCPU(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return (ut + st) * int64(time.Second) / clkTck
}

// clkTck is USER_HZ, 100 on every Linux architecture Go supports.
const clkTck = 100

// procRSS is VmRSS of pid in bytes.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
