package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

// workerEnv marks a re-exec of our own binary as a worker (the hidden worker
// subcommand sets it too, so a test binary can recognise it in TestMain).
const workerEnv = "PUSHBENCH_ROLE"

// workerConn is the coordinator's end of one worker.
type workerConn struct {
	id       int
	in       io.WriteCloser
	replies  chan reply
	progress atomic.Int64
	cmd      *exec.Cmd
	pid      int
	done     chan struct{}
	mu       sync.Mutex
}

func startWorkers(ctx context.Context, o *options, n int) ([]*workerConn, error) {
	var ws []*workerConn
	for i := range n {
		w := &workerConn{id: i, replies: make(chan reply, 1), done: make(chan struct{})}
		var out io.Reader
		if o.inProcess {
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			w.in, out, w.pid = inW, outR, os.Getpid()
			go func() {
				err := runWorker(ctx, inR, outW)
				outW.CloseWithError(err)
				inR.Close()
				close(w.done)
			}()
		} else {
			self, err := os.Executable()
			if err != nil {
				return ws, err
			}
			cmd := exec.Command(self, "worker")
			cmd.Env = append(os.Environ(), workerEnv+"=worker")
			cmd.Stderr = os.Stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
			stdin, err := cmd.StdinPipe()
			if err != nil {
				return ws, err
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				return ws, err
			}
			if err := cmd.Start(); err != nil {
				return ws, fmt.Errorf("start worker: %w", err)
			}
			w.in, out, w.cmd, w.pid = stdin, stdout, cmd, cmd.Process.Pid
			go func() { _ = cmd.Wait(); close(w.done) }()
		}
		go w.read(out)
		ws = append(ws, w)
	}
	return ws, nil
}

func (w *workerConn) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	for sc.Scan() {
		var rp reply
		if err := json.Unmarshal(sc.Bytes(), &rp); err != nil {
			continue
		}
		if rp.Op == "progress" {
			w.progress.Store(int64(rp.Progress))
			continue
		}
		w.replies <- rp
	}
	close(w.replies)
}

func (w *workerConn) call(ctx context.Context, c command, timeout time.Duration) (reply, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, _ := json.Marshal(c)
	if _, err := w.in.Write(append(b, '\n')); err != nil {
		return reply{}, fmt.Errorf("worker %d: %w", w.id, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r, ok := <-w.replies:
		if !ok {
			return r, fmt.Errorf("worker %d exited", w.id)
		}
		if r.Err != "" {
			return r, fmt.Errorf("worker %d: %s", w.id, r.Err)
		}
		return r, nil
	case <-t.C:
		return reply{}, fmt.Errorf("worker %d: %s timed out after %s", w.id, c.Op, timeout)
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

func (w *workerConn) stop() {
	_, _ = w.call(context.Background(), command{Op: "close"}, 10*time.Second)
	_ = w.in.Close()
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		if w.cmd != nil {
			_ = w.cmd.Process.Kill()
			<-w.done
		}
	}
}

// all runs one command on every worker at once.
func all(ctx context.Context, ws []*workerConn, timeout time.Duration, mk func(i int) command) ([]reply, error) {
	out := make([]reply, len(ws))
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = w.call(ctx, mk(i), timeout)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// bench is one run: the cluster, the workers, the publisher and the report.
type bench struct {
	o       *options
	ctx     context.Context
	cl      *cluster
	workers []*workerConn
	nc      *nats.Conn
	stderr  io.Writer
	rep     *report
	users   int // clients connected (global indexes 0..users-1)
	mode    string
	// resume makes clients track positions and resume; reconnect makes
	// them come back by themselves when the server closes them.
	resume, reconnect bool
	// ack makes clients acknowledge pushes that ask for receipts (seed).
	ack   bool
	phase string // prefix of the connect metrics (history: off_, on_)
	// presenceDoc is the doc the presence scenario's clients join; the
	// last churners of them join and leave it instead.
	presenceDoc string
	churners    int
}

// churnersOf is how many of worker i's clients are churners.
func (b *bench) churnersOf(i, nw int) int {
	if b.churners == 0 {
		return 0
	}
	per := b.churners / nw
	if i == nw-1 {
		return b.churners - per*(nw-1)
	}
	return per
}

func newBench(ctx context.Context, o *options, stderr io.Writer, scenario string) *bench {
	return &bench{o: o, ctx: ctx, stderr: stderr, rep: newReport(scenario, o), mode: "pushd"}
}

func (b *bench) close() {
	for _, w := range b.workers {
		w.stop()
	}
	b.workers = nil
	if b.nc != nil {
		b.nc.Close()
		b.nc = nil
	}
	if b.cl != nil {
		b.cl.close()
	}
}

func (b *bench) setup() error {
	cl, err := setupCluster(b.ctx, b.o, b.o.jetstream)
	b.cl = cl
	if err != nil {
		return err
	}
	return b.connectNATS(cl.natsURL)
}

func (b *bench) connectNATS(url string) error {
	nc, err := nats.Connect(url, nats.Name("pushbench"), nats.ReconnectBufSize(64<<20))
	if err != nil {
		return fmt.Errorf("publisher NATS connect %s: %w", url, err)
	}
	b.nc = nc
	return nil
}

func (b *bench) workerCount() int {
	n := b.o.workers
	if n <= 0 {
		n = (b.o.conns + b.o.perWorker - 1) / b.o.perWorker
	}
	return max(1, min(n, max(b.o.conns, 1)))
}

// connectResult is the connect phase summarised.
type connectResult struct {
	connected, failed int
	firstErr          string
	elapsed           time.Duration
	peakPerSec        int
	hs                *Hist
}

// connect opens o.conns clients over the workers against targets.
func (b *bench) connect(targets []string, subject string) (connectResult, error) {
	var res connectResult
	nw := b.workerCount()
	if b.workers == nil {
		ws, err := startWorkers(b.ctx, b.o, nw)
		b.workers = ws
		if err != nil {
			return res, err
		}
	}
	epoch := time.Now()
	stopBar := b.progressBar(epoch)
	per := b.o.conns / nw
	rs, err := all(b.ctx, b.workers, b.o.timeout+time.Duration(float64(b.o.conns)/max(b.o.connRate, 50)*float64(time.Second))+time.Minute,
		func(i int) command {
			count := per
			if i == nw-1 {
				count = b.o.conns - per*(nw-1)
			}
			return command{Op: "connect", Connect: &connectSpec{
				Mode: b.mode, Transport: b.o.transport, Targets: targets, First: i * per, Count: count, Rate: b.o.connRate / float64(nw),
				Concurrency: b.o.concurrency, Secret: b.o.secret, Docs: b.o.docs, DocDist: b.o.docDist,
				SrcFrom: b.o.srcFrom, SrcTo: b.o.srcTo, ReadBuf: b.o.readBuf, EpochNano: epoch.UnixNano(),
				TimeoutNano: int64(b.o.timeout), Subject: subject,
				Resume: b.resume, Reconnect: b.reconnect, JitterNano: int64(b.o.jitter), Users: b.o.conns,
				PresenceDoc: b.presenceDoc, Churners: b.churnersOf(i, nw), Ack: b.ack,
			}}
		})
	stopBar()
	res.elapsed = time.Since(epoch)
	res.hs = &Hist{}
	var timeline []int
	for _, r := range rs {
		res.connected += r.Connected
		res.failed += r.Failed
		if res.firstErr == "" {
			res.firstErr = r.FirstErr
		}
		res.hs.Merge(r.Handshake)
		for i, v := range r.Timeline {
			if i >= len(timeline) {
				timeline = append(timeline, 0)
			}
			timeline[i] += v
		}
	}
	res.peakPerSec = peakWindow(timeline, int(int64(time.Second)/timelineStep))
	if res.elapsed < time.Second && res.elapsed > 0 {
		res.peakPerSec = int(float64(res.connected) / res.elapsed.Seconds())
	}
	b.users = b.o.conns
	return res, err
}

// progressBar draws the ramp on stderr when it is a terminal or --progress.
func (b *bench) progressBar(start time.Time) func() {
	show := b.o.progress
	if f, ok := b.stderr.(*os.File); ok && !show {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			show = true
		}
	}
	if !show {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		draw := func() {
			var n int64
			for _, w := range b.workers {
				n += w.progress.Load()
			}
			total := int64(max(b.o.conns, 1))
			const width = 30
			fill := int(n * width / total)
			el := time.Since(start).Seconds()
			fmt.Fprintf(b.stderr, "\rconnecting [%s%s] %d/%d %.0f/s ", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), n, total, float64(n)/max(el, 0.001))
		}
		for {
			select {
			case <-stop:
				draw()
				fmt.Fprintln(b.stderr)
				return
			case <-t.C:
				draw()
			}
		}
	}()
	return func() { close(stop); <-done }
}

// totals sums every worker's stats.
type totals struct {
	received, pingsSent, pongs, framesIn, bytesIn, bytesOut, errs, dropped, cycles uint64
	presenceFrames, presenceEvents, flaps                                          uint64
	open                                                                           int
	lat                                                                            *Hist
	last                                                                           []int64
	clientCPU                                                                      int64

	dups, gaps, reordered, noSeq, recovered, notRecovered       uint64
	closes1012, closesOther, reconnects, reconnErrs, reconnFail uint64
	lastPushAt                                                  int64
	gotUser, gotDoc                                             uint64
	reconn, reconnHS                                            *Hist
	userGot, docGot                                             []int32 // by global client index, with perClient
	samples                                                     []string
}

func (b *bench) stats(withLast bool) (totals, error) { return b.statsOf(withLast, false) }

func (b *bench) statsOf(withLast, perClient bool) (totals, error) {
	t := totals{lat: &Hist{}, reconn: &Hist{}, reconnHS: &Hist{}}
	rs, err := all(b.ctx, b.workers, time.Minute, func(int) command { return command{Op: "stats", PerClient: perClient} })
	if perClient {
		t.userGot, t.docGot = make([]int32, b.o.conns), make([]int32, b.o.conns)
	}
	for _, r := range rs {
		t.dups += r.Dups
		t.gaps += r.Gaps
		t.reordered += r.Reordered
		t.noSeq += r.NoSeq
		t.recovered += r.Recovered
		t.notRecovered += r.NotRecovered
		t.closes1012 += r.Closes1012
		t.closesOther += r.ClosesOther
		t.reconnects += r.Reconnects
		t.reconnErrs += r.ReconnErrs
		t.reconnFail += r.ReconnFails
		t.lastPushAt = max(t.lastPushAt, r.LastPushAt)
		t.gotUser += r.GotUser
		t.gotDoc += r.GotDoc
		t.reconn.Merge(r.Reconn)
		t.reconnHS.Merge(r.ReconnHS)
		t.samples = append(t.samples, r.Samples...)
		if perClient {
			for i, v := range r.UserGot {
				if j := r.First + i; j < len(t.userGot) {
					t.userGot[j], t.docGot[j] = v, r.DocGot[i]
				}
			}
		}
		t.received += r.Received
		t.pingsSent += r.PingsSent
		t.pongs += r.Pongs
		t.framesIn += r.FramesIn
		t.bytesIn += r.BytesIn
		t.bytesOut += r.BytesOut
		t.errs += r.Errors
		t.dropped += r.Dropped
		t.cycles += r.Cycles
		t.presenceFrames += r.PresenceFrames
		t.presenceEvents += r.PresenceEvents
		t.flaps += r.Flaps
		t.open += r.Open
		t.lat.Merge(r.Latency)
		if withLast {
			for i, v := range r.Last {
				if i >= len(t.last) {
					t.last = append(t.last, 0)
				}
				t.last[i] = max(t.last[i], v)
			}
		}
	}
	if !b.o.inProcess {
		for _, w := range b.workers {
			t.clientCPU += procCPU(w.pid)
		}
	}
	t.clientCPU += procCPU(os.Getpid())
	return t, err
}

func (b *bench) reset(seqs int) error {
	_, err := all(b.ctx, b.workers, time.Minute, func(int) command { return command{Op: "reset", Seqs: seqs} })
	return err
}

// body is a push body of about size bytes carrying the send time and seq.
func body(seq int, size int) []byte {
	b := make([]byte, 0, max(size, 48))
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, time.Now().UnixNano(), 10)
	b = append(b, `,"s":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `,"p":"`...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// publish sends count pushes at rate per second, subjects from subj. It is
// bounded by count and by the context.
func (b *bench) publish(count int, rate float64, subj func(seq int) string) (time.Time, time.Time, error) {
	start := time.Now()
	for seq := 0; seq < count; seq++ {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(seq) / rate * 1e9))); d > 0 {
				select {
				case <-time.After(d):
				case <-b.ctx.Done():
					return start, time.Now(), b.ctx.Err()
				}
			}
		}
		bd := body(seq, b.o.payload)
		m := &nats.Msg{Subject: subj(seq), Data: bd, Header: nats.Header{}}
		if b.mode == "pushd" {
			m.Header.Set("Push-Timestamp", strconv.FormatInt(time.Now().UnixNano(), 10))
			m.Header.Set("Push-Event", "bench")
		} else {
			m.Header = nil
		}
		if err := b.nc.PublishMsg(m); err != nil {
			return start, time.Now(), err
		}
	}
	err := b.nc.FlushTimeout(30 * time.Second)
	return start, time.Now(), err
}

// waitDelivered polls the workers until expected pushes arrived or nothing
// more arrived for o.settle.
func (b *bench) waitDelivered(expected uint64) (totals, error) {
	var last uint64
	lastChange := time.Now()
	for {
		t, err := b.stats(false)
		if err != nil {
			return t, err
		}
		if t.received >= expected {
			return b.stats(true)
		}
		if t.received != last {
			last, lastChange = t.received, time.Now()
		}
		if time.Since(lastChange) > b.o.settle {
			return b.stats(true)
		}
		select {
		case <-b.ctx.Done():
			return t, b.ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func randomUser(rng *rand.Rand, n int) string { return userID(rng.IntN(max(n, 1))) }

// peakWindow is the largest sum of n consecutive slots.
func peakWindow(slots []int, n int) int {
	best, sum := 0, 0
	for i, v := range slots {
		sum += v
		if i >= n {
			sum -= slots[i-n]
		}
		best = max(best, sum)
	}
	return best
}
