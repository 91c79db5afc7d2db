package registry_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/registry"
)

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	bad := []registry.Config{
		{NodeName: "n", NodeID: -2},
		{NodeName: "n", NodeID: 1024},
		{NodeName: "n", NodeID: 10, MaxNodeID: 5},
		{NodeName: "n", MaxNodeID: 1024},
		{NodeName: "n", SessionTTL: 5 * time.Second},
		{NodeName: "n", LockDelay: -time.Second},
		{NodeName: "n", Port: 70000},
	}
	for _, cfg := range bad {
		if r, err := registry.New(cfg); err == nil {
			_ = r.Close(context.Background())
			t.Errorf("New(%+v) succeeded, want error", cfg)
		}
	}
	r, err := registry.New(registry.Config{NodeID: registry.AutoNodeID})
	if err != nil {
		t.Fatalf("New with defaults: %v", err)
	}
	if got := r.NodeID(); got != -1 {
		t.Errorf("NodeID before Start = %d, want -1", got)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Errorf("Close before Start: %v", err)
	}
	if _, err := r.Start(context.Background()); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
}

// Twenty nodes starting at once get distinct IDs; a restarted node gets its
// previous ID back; an explicit taken ID is refused; Nodes and Watch follow.
func TestConcurrentStartReclaimAndExplicit(t *testing.T) {
	t.Parallel()
	c := pushtest.RunConsul(t)
	const n = 20

	regs := make([]*registry.Registry, n)
	ids := make([]int, n)
	errs := make([]error, n)
	for i := range regs {
		regs[i] = newRegistry(t, testConfig(t, c, fmt.Sprintf("node-%02d", i)))
	}
	var wg sync.WaitGroup
	for i, r := range regs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ids[i], errs[i] = r.Start(ctx)
		})
	}
	wg.Wait()
	seen := map[int]string{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node-%02d Start: %v", i, err)
		}
		if other, dup := seen[ids[i]]; dup {
			t.Fatalf("node-%02d and %s both got node ID %d", i, other, ids[i])
		}
		seen[ids[i]] = fmt.Sprintf("node-%02d", i)
		if ids[i] < 0 || ids[i] >= n || regs[i].NodeID() != ids[i] || !regs[i].Leased() {
			t.Fatalf("node-%02d: id %d, NodeID() %d, Leased() %v", i, ids[i], regs[i].NodeID(), regs[i].Leased())
		}
	}

	ctx := context.Background()
	pushtest.Eventually(t, 10*time.Second, func() error {
		nodes, err := regs[0].Nodes(ctx)
		if err != nil {
			return err
		}
		if len(nodes) != n {
			return fmt.Errorf("Nodes: %d live, want %d", len(nodes), n)
		}
		for _, nd := range nodes {
			if !nd.Healthy || nd.Meta["version"] != "test" || nd.Meta[registry.MetaNodeName] != seen[nd.ID] ||
				nd.ServiceID != "pushd-"+itoa(nd.ID) || nd.Address != "127.0.0.1" || nd.Port != 8080 {
				return fmt.Errorf("unexpected node %+v", nd)
			}
		}
		return nil
	})
	listed, err := registry.ListNodes(ctx, registry.Config{Addr: c.Addr()})
	if err != nil || len(listed) != n {
		t.Fatalf("ListNodes: %d nodes, err %v", len(listed), err)
	}

	// Watch sees the full list, then the shrink when a node closes.
	watchCtx, stopWatch := context.WithCancel(ctx)
	updates := make(chan []registry.Node, 16)
	watchErr := make(chan error, 1)
	// Watch from a node that stays up: the holders of IDs 3 and 7 are closed
	// below, and a closed registry's Watch ends.
	watcher := slices.IndexFunc(ids, func(id int) bool { return id != 3 && id != 7 })
	go func() {
		watchErr <- regs[watcher].Watch(watchCtx, func(nodes []registry.Node) {
			// Keep the newest list: when the buffer is full, drop the oldest
			// entry, never the update being delivered.
			for {
				select {
				case updates <- nodes:
					return
				default:
					select {
					case <-updates:
					default:
					}
				}
			}
		})
	}()
	waitWatch := func(want int) {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case nodes := <-updates:
				if len(nodes) == want {
					return
				}
			case <-timeout:
				t.Fatalf("Watch never reported %d nodes", want)
			}
		}
	}
	waitWatch(n)

	// Close the holders of IDs 3 and 7. Restarting 7's owner first must give
	// it 7 back although 3 is the lowest free ID.
	byID := func(id int) int { return slices.Index(ids, id) }
	a, b := byID(3), byID(7)
	for _, i := range []int{a, b} {
		if err := regs[i].Close(ctx); err != nil {
			t.Fatalf("Close node-%02d: %v", i, err)
		}
		if regs[i].Leased() {
			t.Fatalf("node-%02d still leased after Close", i)
		}
	}
	waitWatch(n - 2)
	rb := newRegistry(t, testConfig(t, c, fmt.Sprintf("node-%02d", b)))
	if got := start(t, rb); got != 7 {
		t.Fatalf("restarted node-%02d got ID %d, want its previous ID 7", b, got)
	}
	ra := newRegistry(t, testConfig(t, c, fmt.Sprintf("node-%02d", a)))
	if got := start(t, ra); got != 3 {
		t.Fatalf("restarted node-%02d got ID %d, want its previous ID 3", a, got)
	}
	waitWatch(n)

	// An explicit ID held by a live node is refused at once, naming the holder.
	cfg := testConfig(t, c, "intruder")
	cfg.NodeID = 5
	r := newRegistry(t, cfg)
	t0 := time.Now()
	_, err = r.Start(ctx)
	if !errors.Is(err, registry.ErrNodeIDTaken) {
		t.Fatalf("explicit taken ID: Start = %v, want ErrNodeIDTaken", err)
	}
	if !strings.Contains(err.Error(), seen[5]) {
		t.Errorf("error %q does not name the holder %s", err, seen[5])
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("explicit taken ID took %s to refuse", d)
	}
	// A free explicit ID works.
	cfg.NodeName, cfg.NodeID = "explicit", 500
	if got := start(t, newRegistry(t, cfg)); got != 500 {
		t.Fatalf("explicit free ID: got %d", got)
	}

	stopWatch()
	if err := <-watchErr; err != nil {
		t.Fatalf("Watch returned %v after cancel", err)
	}
}

// A node killed with SIGKILL: its check goes critical and the service is
// deregistered after DeregisterCriticalAfter; its ID is refused until the
// session is invalidated and the lock delay has passed, never earlier.
func TestKilledNodeReleasesIDOnlyAfterSessionAndLockDelay(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("takes ~90s: waits for Consul's critical-service reaper")
	}
	c := pushtest.RunConsul(t)
	const lockDelay = 3 * time.Second

	id, kill := startHelper(t, c, "victim", lockDelay)
	victimID := itoa(id)
	serviceID := "pushd-" + victimID
	key := registry.DefaultKeyPrefix + victimID

	ctx := context.Background()
	client := c.Client()
	kv, _, err := client.KV().Get(key, nil)
	if err != nil || kv == nil || kv.Session == "" {
		t.Fatalf("victim's key %s: %+v, %v", key, kv, err)
	}
	session := kv.Session

	observer := newRegistry(t, testConfig(t, c, "observer"))
	pushtest.Eventually(t, 10*time.Second, func() error {
		nodes, err := observer.Nodes(ctx)
		if err != nil || len(nodes) != 1 || nodes[0].ID != id {
			return fmt.Errorf("Nodes = %v, %v; want the victim", nodes, err)
		}
		return nil
	})

	kill()
	killed := time.Now()

	// The TTL check goes critical; the node drops out of the live list but
	// stays registered until the reaper runs.
	pushtest.Eventually(t, 10*time.Second, func() error {
		nodes, err := observer.Nodes(ctx)
		if err != nil || len(nodes) != 0 {
			return fmt.Errorf("Nodes = %v, %v; want none live", nodes, err)
		}
		return nil
	})
	if svcs, err := client.Agent().Services(); err != nil || svcs[serviceID] == nil {
		t.Fatalf("service %s gone before DeregisterCriticalAfter: %v", serviceID, err)
	}

	// Claimants use another service name so their registration does not
	// replace the victim's (same service ID) before we see it reaped.
	claim := func() error {
		cfg := testConfig(t, c, "claimant")
		cfg.NodeID, cfg.ServiceName = id, "pushd-claimant"
		r, err := registry.New(cfg)
		if err != nil {
			return err
		}
		_, err = r.Start(ctx)
		if err != nil {
			_ = r.Close(ctx)
			return err
		}
		t.Cleanup(func() { _ = r.Close(context.Background()) })
		return nil
	}
	var lastAlive time.Time
	for {
		probe := time.Now()
		se, _, err := client.Session().Info(session, nil)
		if err != nil {
			t.Fatal(err)
		}
		if se == nil {
			break
		}
		lastAlive = probe
		if err := claim(); !errors.Is(err, registry.ErrNodeIDTaken) {
			t.Fatalf("claiming ID %d while the victim's session lives: %v, want ErrNodeIDTaken", id, err)
		}
		if time.Since(killed) > 40*time.Second {
			t.Fatalf("session %s still alive %s after the kill", session, time.Since(killed))
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
	if lastAlive.IsZero() {
		t.Fatal("victim's session was gone at the first probe; the test proved nothing")
	}
	t.Logf("session invalidated %s after the kill", time.Since(killed).Round(time.Millisecond))
	if err := claim(); !errors.Is(err, registry.ErrNodeIDTaken) {
		t.Fatalf("claiming ID %d right after session invalidation (in lock delay): %v, want ErrNodeIDTaken", id, err)
	}
	var won time.Time
	pushtest.Eventually(t, lockDelay+10*time.Second, func() error {
		err := claim()
		if err == nil {
			won = time.Now()
			return nil
		}
		if !errors.Is(err, registry.ErrNodeIDTaken) {
			t.Fatalf("claim: %v", err)
		}
		return err
	})
	if d := won.Sub(lastAlive); d < lockDelay {
		t.Fatalf("ID %d re-leased %s after the session was last seen alive, before the %s lock delay", id, d, lockDelay)
	}

	// Consul reaps the critical service after DeregisterCriticalAfter (1m)
	// plus up to one 30s reaper interval.
	pushtest.Eventually(t, 100*time.Second, func() error {
		svcs, err := client.Agent().Services()
		if err != nil {
			return err
		}
		if svcs[serviceID] != nil {
			return fmt.Errorf("service %s still registered %s after the kill", serviceID, time.Since(killed).Round(time.Second))
		}
		return nil
	})
	if d := time.Since(killed); d < time.Minute {
		t.Fatalf("service deregistered %s after the kill, before DeregisterCriticalAfter", d)
	}
}

// Stopping Consul under a running node loses the lease after SessionTTL
// (tracked locally); restarting Consul gives the same ID back.
func TestLeaseLossAndReturn(t *testing.T) {
	t.Parallel()
	c := pushtest.RunConsul(t)
	var evs leaseEvents
	cfg := testConfig(t, c, "lossy")
	cfg.OnLease = evs.record
	r := newRegistry(t, cfg)
	id := start(t, r)
	if ev := evs.wait(t, 0, 5*time.Second); !ev.held {
		t.Fatalf("first OnLease(%v), want true", ev.held)
	}

	stopped := time.Now()
	c.Stop()
	ev := evs.wait(t, 1, cfg.SessionTTL+5*time.Second)
	lostAfter := ev.at.Sub(stopped)
	if ev.held || r.Leased() {
		t.Fatalf("after Consul stopped: OnLease(%v), Leased() %v; want false", ev.held, r.Leased())
	}
	// The last renew was at most SessionTTL/3 before the stop.
	if lostAfter < cfg.SessionTTL*2/3-time.Second || lostAfter > cfg.SessionTTL+2*time.Second {
		t.Fatalf("lease lost %s after Consul stopped; want about SessionTTL (%s)", lostAfter, cfg.SessionTTL)
	}
	t.Logf("lease lost %s after Consul stopped", lostAfter.Round(time.Millisecond))

	c.Restart()
	ev = evs.wait(t, 2, 20*time.Second)
	if !ev.held || !r.Leased() || r.NodeID() != id {
		t.Fatalf("after Consul restart: OnLease(%v), Leased() %v, NodeID() %d; want true, true, %d", ev.held, r.Leased(), r.NodeID(), id)
	}
	kv, _, err := c.Client().KV().Get(registry.DefaultKeyPrefix+itoa(id), nil)
	if err != nil || kv == nil || kv.Session == "" {
		t.Fatalf("key for ID %d after re-acquire: %+v, %v", id, kv, err)
	}
	pushtest.Eventually(t, 10*time.Second, func() error {
		nodes, err := r.Nodes(context.Background())
		if err != nil || len(nodes) != 1 || nodes[0].ID != id {
			return fmt.Errorf("Nodes = %v, %v; want the node re-registered", nodes, err)
		}
		return nil
	})
	if err := r.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := evs.len(); n != 3 {
		t.Fatalf("OnLease called %d times, want 3", n)
	}
}

// Start retries until Consul comes up; ctx cancellation and Close end it.
func TestStartWaitsForConsul(t *testing.T) {
	t.Parallel()
	c := pushtest.RunConsul(t)
	c.Stop()

	cfg := testConfig(t, c, "early")
	var retries *atomic.Int64
	cfg.Logger, retries = countingLogger(t, "retrying")
	r := newRegistry(t, cfg)
	type result struct {
		id  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		id, err := r.Start(ctx)
		done <- result{id, err}
	}()
	// Let it fail a few attempts first.
	pushtest.Eventually(t, 10*time.Second, func() error {
		select {
		case res := <-done:
			t.Fatalf("Start returned while Consul is down: %d, %v", res.id, res.err)
		default:
		}
		if n := retries.Load(); n < 3 {
			return fmt.Errorf("%d retries logged, want 3", n)
		}
		return nil
	})
	c.Restart()
	select {
	case res := <-done:
		if res.err != nil || res.id != 0 {
			t.Fatalf("Start = %d, %v; want 0, nil", res.id, res.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Start did not succeed after Consul came up")
	}

	// Against an address where nothing listens, ctx bounds Start.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	cfg.Addr = dead
	r2 := newRegistry(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	t0 := time.Now()
	if _, err := r2.Start(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start with dead Consul = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("Start took %s to honour a 1s ctx", d)
	}

	// Close ends a Start in progress.
	cfg.Logger, retries = countingLogger(t, "retrying")
	r3 := newRegistry(t, cfg)
	errc := make(chan error, 1)
	go func() {
		_, err := r3.Start(context.Background())
		errc <- err
	}()
	pushtest.Eventually(t, 5*time.Second, func() error {
		if retries.Load() == 0 {
			return errors.New("Start has not retried yet")
		}
		return nil
	})
	if err := r3.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-errc; !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
}

// A session invalidated behind the node's back (operator, Consul health)
// ends the lease at the next renew, not at the local deadline, and the node
// gets the same ID back with a new session once the lock delay has passed.
func TestSessionInvalidatedReacquiresSameID(t *testing.T) {
	t.Parallel()
	c := pushtest.RunConsul(t)
	var evs leaseEvents
	cfg := testConfig(t, c, "invalidated")
	cfg.OnLease = evs.record
	r := newRegistry(t, cfg)
	id := start(t, r)
	evs.wait(t, 0, 5*time.Second)

	key := registry.DefaultKeyPrefix + itoa(id)
	kv, _, err := c.Client().KV().Get(key, nil)
	if err != nil || kv == nil || kv.Session == "" {
		t.Fatalf("key %s: %+v, %v", key, kv, err)
	}
	destroyed := time.Now()
	if _, err := c.Client().Session().Destroy(kv.Session, nil); err != nil {
		t.Fatal(err)
	}
	// Detected at the next renew (every SessionTTL/3).
	ev := evs.wait(t, 1, cfg.SessionTTL/3+3*time.Second)
	if ev.held {
		t.Fatalf("OnLease(true) after the session was destroyed")
	}
	t.Logf("loss detected %s after the session was destroyed", ev.at.Sub(destroyed).Round(time.Millisecond))
	ev = evs.wait(t, 2, cfg.LockDelay+10*time.Second)
	if !ev.held || r.NodeID() != id {
		t.Fatalf("OnLease(%v), NodeID() %d; want true, %d", ev.held, r.NodeID(), id)
	}
	if d := ev.at.Sub(destroyed); d < cfg.LockDelay {
		t.Fatalf("re-acquired %s after invalidation, inside the %s lock delay", d, cfg.LockDelay)
	}
	kv2, _, err := c.Client().KV().Get(key, nil)
	if err != nil || kv2 == nil || kv2.Session == "" || kv2.Session == kv.Session {
		t.Fatalf("key %s after re-acquire: %+v, %v; want held by a new session", key, kv2, err)
	}
}

// TestQuickRestartKeepsTheUsualID: a node restarted faster than its dead
// run's session expires gets another ID for that run, and its usual ID back
// on the restart after, as docs/OPERATIONS.md promises. ID 0 is held by
// another node throughout, so "lowest free" and "usual" differ.
func TestQuickRestartKeepsTheUsualID(t *testing.T) {
	t.Parallel()
	c := pushtest.RunConsul(t)
	holder := newRegistry(t, testConfig(t, c, "holder"))
	if id := start(t, holder); id != 0 {
		t.Fatalf("holder got ID %d, want 0", id)
	}
	const lockDelay = time.Second
	usual, kill := startHelper(t, c, "phoenix", lockDelay)
	if usual != 1 {
		t.Fatalf("phoenix got ID %d, want 1", usual)
	}
	kill()

	quick := newRegistry(t, testConfig(t, c, "phoenix"))
	other := start(t, quick)
	if other == usual {
		t.Fatalf("restart while the dead run's session lives got ID %d, the held one", other)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := quick.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Once the dead run's key is free and out of its lock delay, the name
	// gets its usual ID again (not the one the quick restart used, which is
	// free too and would be taken if the name record had been overwritten).
	pushtest.Eventually(t, 40*time.Second, func() error {
		kv, _, err := c.Client().KV().Get(registry.DefaultKeyPrefix+itoa(usual), nil)
		if err != nil || (kv != nil && kv.Session != "") {
			return fmt.Errorf("ID %d still held: %+v %v", usual, kv, err)
		}
		return nil
	})
	var got int
	pushtest.Eventually(t, lockDelay+10*time.Second, func() error {
		r, err := registry.New(testConfig(t, c, "phoenix"))
		if err != nil {
			return err
		}
		defer func() { _ = r.Close(context.Background()) }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if got, err = r.Start(ctx); err != nil {
			return err
		}
		if got != usual {
			return fmt.Errorf("got ID %d, want the usual %d (still in lock delay?)", got, usual)
		}
		return nil
	})
}
