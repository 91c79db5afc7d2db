// Package pushtest starts the real servers pushd's tests run against: NATS
// (in process, on random loopback ports) and Consul (the agent binary).
package pushtest

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NATS is an in-process NATS server on a random loopback port.
type NATS struct {
	*server.Server
	opts *server.Options
	port int // the client port, kept for Restart after Kill
}

// RunNATS starts a NATS server on a random loopback port and shuts it down
// when the test ends.
func RunNATS(t testing.TB) *NATS {
	t.Helper()
	return runNATS(t, &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true, Cluster: server.ClusterOpts{Port: 0}})
}

// RunJetStream starts a NATS server with JetStream (files in a temp dir) on
// a random loopback port, shut down when the test ends.
func RunJetStream(t testing.TB) *NATS {
	t.Helper()
	return runNATS(t, &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: t.TempDir(), ServerName: "js"})
}

// RunNATSWith starts a NATS server as RunNATS does, with its options
// changed by set first.
func RunNATSWith(t testing.TB, set func(*server.Options)) *NATS {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true, Cluster: server.ClusterOpts{Port: 0}}
	set(o)
	return runNATS(t, o)
}

// RunJetStreamCluster starts size NATS servers with JetStream, routed into
// one cluster, and waits until JetStream has a meta leader.
func RunJetStreamCluster(t testing.TB, size int) []*NATS {
	t.Helper()
	return RunJetStreamClusterWith(t, size, nil)
}

// RunJetStreamClusterWith starts a JetStream cluster as RunJetStreamCluster
// does, with each server's options changed by set (when not nil) first;
// for example Cluster.NoAdvertise, so that clients use only the URLs they
// were given (a proxy's) and never learn the servers' own.
func RunJetStreamClusterWith(t testing.TB, size int, set func(*server.Options)) []*NATS {
	t.Helper()
	// The route ports are picked free and then bound by the servers: another
	// test may take one in between, and that server never becomes ready.
	// Start again on fresh ports then (three tries).
	var servers []*NATS
	var err error
	for range 3 {
		if servers, err = startJetStreamCluster(t, size, set); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	Eventually(t, 30*time.Second, func() error {
		if !anyLeader(servers) {
			return fmt.Errorf("no JetStream meta leader yet")
		}
		return nil
	})
	return servers
}

// startJetStreamCluster starts size clustered servers on fresh ports and
// waits until each accepts connections; on failure it shuts them down.
func startJetStreamCluster(t testing.TB, size int, set func(*server.Options)) ([]*NATS, error) {
	ports, err := freePorts(size)
	if err != nil {
		return nil, err
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	var servers []*NATS
	stop := func() {
		for _, n := range servers {
			n.Shutdown()
		}
	}
	for i := range size {
		o := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
			ServerName: fmt.Sprintf("js%d", i), JetStream: true, StoreDir: t.TempDir(),
			Cluster: server.ClusterOpts{Name: "pushtest-js", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ","))}
		if set != nil {
			set(o)
		}
		ns, err := server.NewServer(o)
		if err != nil {
			stop()
			return nil, fmt.Errorf("pushtest: start NATS: %w", err)
		}
		go ns.Start()
		n := &NATS{Server: ns, opts: o}
		t.Cleanup(n.Shutdown)
		servers = append(servers, n)
	}
	for _, n := range servers {
		if !n.ReadyForConnections(20 * time.Second) {
			stop()
			return nil, fmt.Errorf("pushtest: JetStream cluster server %s did not become ready", n.opts.ServerName)
		}
		n.port = n.Port() // Restart binds it again
	}
	return servers, nil
}

func anyLeader(servers []*NATS) bool {
	for _, n := range servers {
		if n.Running() && n.JetStreamIsLeader() {
			return true
		}
	}
	return false
}

// Kill stops this server abruptly, as a crash would; the others carry on.
func (n *NATS) Kill() { n.Shutdown(); n.WaitForShutdown() }

func runNATS(t testing.TB, opts *server.Options) *NATS {
	t.Helper()
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("pushtest: start NATS: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("pushtest: NATS did not become ready")
	}
	n := &NATS{Server: ns, opts: opts}
	n.port = n.Port()
	t.Cleanup(n.Shutdown)
	return n
}

// URL is the client URL.
func (n *NATS) URL() string { return n.ClientURL() }

// Connect opens a client connection closed when the test ends.
func (n *NATS) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatalf("pushtest: connect to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Restart shuts the server down (unless Kill did) and starts a new one on
// the same port, with the same options; clients see a disconnect and
// reconnect.
func (n *NATS) Restart(t testing.TB) {
	t.Helper()
	opts := *n.opts
	opts.Port = n.port
	n.Shutdown()
	n.WaitForShutdown()
	ns, err := server.NewServer(&opts)
	if err != nil {
		t.Fatalf("pushtest: restart NATS: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("pushtest: restarted NATS did not become ready")
	}
	n.Server = ns
	t.Cleanup(ns.Shutdown)
}

// Port is the client port the server bound.
func (n *NATS) Port() int { return n.Addr().(*net.TCPAddr).Port }

// RunNATSCluster starts size NATS servers routed to each other on loopback
// and waits until every route is up.
func RunNATSCluster(t testing.TB, size int) []*NATS {
	t.Helper()
	first := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		ServerName: "n0",
		Cluster:    server.ClusterOpts{Name: "pushtest", Host: "127.0.0.1", Port: server.RANDOM_PORT}}
	servers := []*NATS{runNATS(t, first)}
	seed := servers[0].ClusterAddr()
	for i := 1; i < size; i++ {
		routes := server.RoutesFromStr(fmt.Sprintf("nats://%s", seed.String()))
		o := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
			ServerName: fmt.Sprintf("n%d", i),
			Cluster:    server.ClusterOpts{Name: "pushtest", Host: "127.0.0.1", Port: server.RANDOM_PORT},
			Routes:     routes}
		servers = append(servers, runNATS(t, o))
	}
	Eventually(t, 10*time.Second, func() error {
		for _, s := range servers {
			if got := s.NumRoutes(); got < size-1 {
				return fmt.Errorf("%s has %d routes, want %d", s.Name(), got, size-1)
			}
		}
		return nil
	})
	return servers
}

// RunNATSSplit starts two NATS servers with cluster listeners that are not
// routed to each other: a partitioned pair. Heal routes them.
func RunNATSSplit(t testing.TB) (a, b *NATS) {
	t.Helper()
	opts := func(name string) *server.Options {
		return &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true, ServerName: name,
			Cluster: server.ClusterOpts{Name: "pushtest-split", Host: "127.0.0.1", Port: server.RANDOM_PORT}}
	}
	return runNATS(t, opts("split-a")), runNATS(t, opts("split-b"))
}

// Heal routes b to a (a config reload of b, as an operator would do) and
// waits until the route is up: the partition between them ends.
func Heal(t testing.TB, a, b *NATS) {
	t.Helper()
	o := b.opts.Clone()
	o.Port = b.Port()
	o.Cluster.Port = b.ClusterAddr().Port
	o.Routes = server.RoutesFromStr("nats://" + a.ClusterAddr().String())
	if err := b.ReloadOptions(o); err != nil {
		t.Fatalf("pushtest: route %s to %s: %v", b.Name(), a.Name(), err)
	}
	Eventually(t, 10*time.Second, func() error {
		if a.NumRoutes() == 0 || b.NumRoutes() == 0 {
			return fmt.Errorf("routes: %s has %d, %s has %d", a.Name(), a.NumRoutes(), b.Name(), b.NumRoutes())
		}
		return nil
	})
}
