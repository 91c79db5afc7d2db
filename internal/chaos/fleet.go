package chaos

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushd/pushd/client"
)

// fleet are the Go SDK clients: each its own user, joined to a few docs,
// recording every push its handlers get. One client is one session lineage:
// its sessions follow one another, each resuming where the last left off.
type fleet struct {
	members []*member
	moves   atomic.Int64 // sessions closed by rebalancing (1012 "rebalance")
}

// member is one client and what it received.
type member struct {
	c    *client.Client
	docs []int          // the docs it joined (indexes)
	slot map[string]int // doc name -> index in docs

	mu    sync.Mutex
	got   bitset // push numbers handed to OnPush
	twice int    // pushes handed over again (after the SDK's dedupe by seq)
	noSeq int    // pushes without a position (history unavailable)
	gaps  int    // rejoins told the missed pushes could not all be replayed
	errs  []string

	last []atomic.Int64 // per joined doc: the highest push number received (-1: none)
}

// startFleet connects cfg.Clients clients, each joined to cfg.DocsPerClient
// docs, and waits until every one is connected and every join answered.
func startFleet(ctx context.Context, c *cluster, cfg *Config, docs []string) (*fleet, error) {
	f := &fleet{}
	for k := range cfg.Clients {
		m := &member{slot: map[string]int{}}
		for j := range cfg.DocsPerClient {
			d := (k*cfg.DocsPerClient + j) % len(docs)
			m.slot[docs[d]] = len(m.docs)
			m.docs = append(m.docs, d)
		}
		m.last = make([]atomic.Int64, len(m.docs))
		for i := range m.last {
			m.last[i].Store(-1)
		}
		m.c = client.New(client.Config{
			URLs:    c.urls(k),
			User:    "chaos-u" + strconv.Itoa(k),
			Backoff: cfg.Backoff,
			OnPush:  m.onPush,
			OnError: m.onError,
			OnDisconnect: func(ev client.DisconnectEvent) {
				if ev.Error == "rebalance" {
					f.moves.Add(1)
				}
			},
		})
		f.members = append(f.members, m)
	}
	// Connect in parallel, a few at a time: a handshake storm is not the
	// subject here.
	sem := make(chan struct{}, 64)
	errc := make(chan error, len(f.members))
	for _, m := range f.members {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			if err := m.c.Connect(ctx); err != nil {
				errc <- err
				return
			}
			for _, d := range m.docs {
				if err := m.c.Join(docs[d], client.JoinOptions{OnSubscribed: m.onSubscribed}).Ready(ctx); err != nil {
					errc <- fmt.Errorf("join %s: %w", docs[d], err)
					return
				}
			}
			errc <- nil
		}()
	}
	for range f.members {
		if err := <-errc; err != nil {
			f.close()
			return nil, err
		}
	}
	return f, nil
}

func (m *member) onPush(p *client.Push) error {
	s, ok := m.slot[p.Doc]
	n, err := strconv.ParseInt(strings.TrimPrefix(p.ID, "chaos-"), 10, 64)
	if !ok || p.Target != "doc" || err != nil || n < 0 {
		m.onError(fmt.Errorf("an unexpected push: %s %s id %q", p.Target, p.Doc, p.ID))
		return nil
	}
	m.mu.Lock()
	if m.got.set(int(n)) {
		m.twice++
	}
	if p.Seq == 0 {
		m.noSeq++
	}
	m.mu.Unlock()
	for {
		l := m.last[s].Load()
		if n <= l || m.last[s].CompareAndSwap(l, n) {
			break
		}
	}
	return nil
}

// onSubscribed counts the rejoins that were not recovered: the server could
// not replay everything missed since the cursor (more than a replay
// carries, say), so pushes may be missing for a reason the report should
// name.
func (m *member) onSubscribed(ev client.SubscribedEvent) {
	if !ev.Gap {
		return
	}
	m.mu.Lock()
	m.gaps++
	m.mu.Unlock()
	m.onError(fmt.Errorf("rejoin of %s not recovered (resumed %v): pushes since the cursor may be missing", ev.Doc, ev.Resumed))
}

func (m *member) onError(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.errs) < 20 {
		m.errs = append(m.errs, err.Error())
	}
}

// servedAfter says whether every client got, on every doc it joined, a push
// taken after snap (publisher.snapshot): it is connected, joined, and
// caught up at least that far.
func (f *fleet) servedAfter(snap []int64) (waiting int) {
	for _, m := range f.members {
		for i, d := range m.docs {
			if m.last[i].Load() <= snap[d] {
				waiting++
				break
			}
		}
	}
	return waiting
}

// missingIn describes, for at most max clients that miss stored pushes,
// which: "client 12 (3 sessions) doc 4: 60 missing, pushes 1200..1799".
func (f *fleet) missingIn(p *publisher, docs []string, most int) (clients int, sample []string) {
	p.mu.Lock()
	stored := append(bitset(nil), p.stored...)
	p.mu.Unlock()
	total := int(p.next.Load())
	for k, m := range f.members {
		m.mu.Lock()
		miss, first, last := map[int]int{}, map[int]int{}, map[int]int{}
		for n := range total {
			d := n % len(docs)
			if _, ok := m.slot[docs[d]]; !ok || !stored.has(n) || m.got.has(n) {
				continue
			}
			if miss[d] == 0 {
				first[d] = n
			}
			miss[d]++
			last[d] = n
		}
		m.mu.Unlock()
		if len(miss) == 0 {
			continue
		}
		clients++
		for d, c := range miss {
			if len(sample) < most {
				sample = append(sample, fmt.Sprintf("client %d (%d sessions) doc %d: %d missing, pushes %d..%d",
					k, m.c.Stats().Sessions, d, c, first[d], last[d]))
			}
		}
	}
	return clients, sample
}

// missing counts, over every client, the stored pushes of its docs it has
// not received.
func (f *fleet) missing(p *publisher) (missing, expected int) {
	p.mu.Lock()
	stored := append(bitset(nil), p.stored...)
	p.mu.Unlock()
	total := int(p.next.Load())
	for _, m := range f.members {
		m.mu.Lock()
		for n := range total {
			if !stored.has(n) {
				continue
			}
			if _, ok := m.slot[p.docs[n%len(p.docs)]]; !ok {
				continue
			}
			expected++
			if !m.got.has(n) {
				missing++
			}
		}
		m.mu.Unlock()
	}
	return missing, expected
}

func (f *fleet) close() {
	var wg sync.WaitGroup
	for _, m := range f.members {
		wg.Add(1)
		go func() { defer wg.Done(); _ = m.c.Close() }()
	}
	wg.Wait()
}

// waitServed polls until servedAfter(snap) holds, and returns how long it
// took from since; within bounds the wait.
func (f *fleet) waitServed(ctx context.Context, snap []int64, since time.Time, within time.Duration) (time.Duration, int) {
	deadline := time.Now().Add(within)
	for {
		w := f.servedAfter(snap)
		if w == 0 {
			return time.Since(since), 0
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Since(since), w
		}
		select {
		case <-time.After(10 * time.Millisecond): // polling a condition
		case <-ctx.Done():
		}
	}
}
