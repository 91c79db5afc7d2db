package chaos

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publisher is a backend publishing doc pushes at a steady rate, as
// JetStream requests: a push counts as published once JetStream stored it
// (its answer carries the position), and an unanswered one is published
// again with the same Nats-Msg-Id, so it is stored once whatever happened
// to the first answer. Push number n goes to doc n % docs, with Push-Id
// "chaos-<n>" and body {"n":<n>}.
type publisher struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	docs []string
	run  string // this run's ID, in Nats-Msg-Id

	next     atomic.Int64   // numbers taken so far
	lastSent []atomic.Int64 // per doc: the latest number taken for it (-1: none)

	mu       sync.Mutex
	stored   bitset // numbers JetStream stored
	failed   int    // numbers given up on (never stored, as far as we know)
	retries  int    // publishes made again after no (or an error) answer
	inFlight int

	stop chan struct{}
	wg   sync.WaitGroup
}

// publishGiveUp is how long a push is published again before it counts as
// failed (no NATS quorum for that long).
const publishGiveUp = 60 * time.Second

func newPublisher(natsURLs string, docs []string, run string) (*publisher, error) {
	nc, err := nats.Connect(natsURLs, nats.Name("chaos publisher"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	p := &publisher{nc: nc, js: js, docs: docs, run: run, lastSent: make([]atomic.Int64, len(docs)), stop: make(chan struct{})}
	for i := range p.lastSent {
		p.lastSent[i].Store(-1)
	}
	return p, nil
}

// start publishes rate pushes a second, over workers goroutines, until
// finish.
func (p *publisher) start(rate float64, workers int) {
	work := make(chan int64, workers)
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for n := range work {
				p.publish(n)
			}
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(work)
		every := time.Duration(float64(time.Second) / rate)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			n := p.next.Add(1) - 1
			p.lastSent[n%int64(len(p.docs))].Store(n)
			select {
			case work <- n:
			case <-p.stop:
				return
			}
		}
	}()
}

// publish stores push n, publishing it again until JetStream answers.
func (p *publisher) publish(n int64) {
	id := "chaos-" + strconv.FormatInt(n, 10)
	m := nats.NewMsg("push.doc." + p.docs[n%int64(len(p.docs))])
	m.Header.Set("Push-Id", id)
	m.Header.Set("Push-Event", "chaos")
	m.Data = []byte(`{"n":` + strconv.FormatInt(n, 10) + `}`)
	p.mu.Lock()
	p.inFlight++
	p.mu.Unlock()
	deadline := time.Now().Add(publishGiveUp)
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := p.js.PublishMsg(ctx, m, jetstream.WithMsgID(p.run+"-"+id))
		cancel()
		p.mu.Lock()
		if err == nil {
			p.stored.set(int(n))
			p.inFlight--
			p.mu.Unlock()
			return
		}
		if time.Now().After(deadline) || errors.Is(err, nats.ErrConnectionClosed) {
			p.failed++
			p.inFlight--
			p.mu.Unlock()
			return
		}
		p.retries++
		p.mu.Unlock()
		time.Sleep(100 * time.Millisecond) // a retry's pace, not a wait for an event
	}
}

// finish stops publishing and waits for every push in flight to be stored
// or given up.
func (p *publisher) finish() {
	close(p.stop)
	p.wg.Wait()
}

func (p *publisher) close() { p.nc.Close() }

// snapshot is, per doc, the latest push number taken so far.
func (p *publisher) snapshot() []int64 {
	s := make([]int64, len(p.lastSent))
	for i := range p.lastSent {
		s[i] = p.lastSent[i].Load()
	}
	return s
}

// bitset is a growable set of small non-negative ints.
type bitset []uint64

func (b *bitset) set(i int) bool {
	for i/64 >= len(*b) {
		*b = append(*b, 0)
	}
	was := (*b)[i/64]&(1<<(i%64)) != 0
	(*b)[i/64] |= 1 << (i % 64)
	return was
}

func (b bitset) has(i int) bool { return i >= 0 && i/64 < len(b) && b[i/64]&(1<<(i%64)) != 0 }
