package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pushd/pushd/admin"
	"github.com/pushd/pushd/cluster"
	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/history"
	"github.com/pushd/pushd/node"
	"github.com/pushd/pushd/presence"
	"github.com/pushd/pushd/registry"
	"github.com/pushd/pushd/router"
)

// The node and the router meet here: each is the other's half of the seam.
var (
	_ node.Bus           = (*router.Router)(nil)
	_ contract.Deliverer = (*node.Node)(nil)
)

// front is the public HTTP surface. It is up before the node exists, so
// /healthz answers while pushd waits for Consul; /ws, /http/ and /readyz say
// "starting" until then.
type front struct {
	node  atomic.Pointer[node.Node]
	hist  atomic.Pointer[history.History]
	guard *numberGuard
}

func (f *front) serveWS(w http.ResponseWriter, r *http.Request) {
	n := f.node.Load()
	if n == nil {
		http.Error(w, `{"error":"starting","message":"node is starting"}`, http.StatusServiceUnavailable)
		return
	}
	n.ServeHTTP(w, r)
}

// serveHTTPSessions serves the HTTP transports (SSE, long-polling) under
// /http/.
func (f *front) serveHTTPSessions(w http.ResponseWriter, r *http.Request) {
	n := f.node.Load()
	if n == nil {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"starting","message":"node is starting"}` + "\n"))
		return
	}
	n.ServeHTTPSessions(w, r)
}

// readyz answers 200 when the node accepts sessions, else 503, with a JSON
// body saying why not, what vouches for the node's number and how history
// is doing: {"ready":true,"node":3,"guard":"consul","consul":"held",
// "history":"available"} (docs/OPERATIONS.md, "Health and readiness").
func (f *front) readyz(w http.ResponseWriter, _ *http.Request) {
	ok, why := false, "starting"
	n := f.node.Load()
	if n != nil {
		ok, why = n.Ready()
	}
	hist := "off"
	if h := f.hist.Load(); h != nil {
		hist = "unavailable"
		if h.Available() {
			hist = "available"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	status := http.StatusOK
	b := []byte(`{"ready":true`)
	if !ok {
		status = http.StatusServiceUnavailable
		b = append([]byte(`{"ready":false,"reason":`), strconv.Quote(why)...)
	}
	if n != nil {
		b = strconv.AppendInt(append(b, `,"node":`...), n.ID(), 10)
		b = append(append(append(b, `,"guard":"`...), n.NumberGuard().String()...), '"')
		b = append(append(append(b, `,"consul":"`...), f.guard.consulState()...), '"')
	}
	b = append(append(append(b, `,"history":"`...), hist...), "\"}\n"...)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// setConflict is the cluster's OnDuplicate callback.
func (f *front) setConflict(yield bool) {
	if n := f.node.Load(); n != nil {
		n.SetConflict(yield)
	}
}

// cleanups runs functions in reverse order, for the error paths of serve.
type cleanups []func()

func (c *cleanups) add(f func()) { *c = append(*c, f) }

func (c cleanups) run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// serve runs a node until ctx ends, then shuts it down gracefully.
func serve(ctx context.Context, cfg config, log *slog.Logger, onStart func(started)) (err error) {
	var undo cleanups
	defer func() {
		if err != nil {
			undo.run()
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})

	verifier, err := newVerifier(cfg)
	if err != nil {
		return err
	}
	tlsKeys, err := newTLS(cfg)
	if err != nil {
		return err
	}
	registerTokenCache(reg, verifier)
	stopReload := startReloader(log, reg, cfg.KeysReload, verifier, tlsKeys)
	defer stopReload()
	if cfg.Dev {
		log.Warn("DEV MODE: /ws?user=<id> and /http/connect?user=<id> are accepted without a token. Never run this in production.")
	}
	cfg.warnLimits(log)

	// Listeners first: health answers while the rest starts.
	fr := &front{guard: newNumberGuard(log, cfg.ConsulAddr != "")}
	public, err := listen(log, "listen", cfg.Listen, cfg.Dev && cfg.defaults["listen"])
	if err != nil {
		return err
	}
	if tlsKeys != nil {
		public = tls.NewListener(public, tlsKeys.ServerConfig())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", fr.serveWS)
	mux.HandleFunc("/http/", fr.serveHTTPSessions)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", fr.readyz)
	mux.Handle("/metrics", metricsHandler)
	dev := mountDev(mux, cfg) // devpage.go: the demo page and /dev/publish, on dev nodes
	httpSrv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    32 << 10, // a token is at most 8 KiB (auth.MaxTokenLength)
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- httpSrv.Serve(public) }()
	undo.add(func() { _ = httpSrv.Close() })

	var adminSrv *http.Server
	adminAddr := ""
	if cfg.AdminListen != "" {
		al, err := listen(log, "admin-listen", cfg.AdminListen, cfg.Dev && cfg.defaults["admin-listen"])
		if err != nil {
			return err
		}
		adminAddr = al.Addr().String()
		adminSrv = &http.Server{Handler: adminMux(metricsHandler), ReadHeaderTimeout: 5 * time.Second}
		go func() { serveErr <- adminSrv.Serve(al) }()
		undo.add(func() { _ = adminSrv.Close() })
	}

	// The node ID: leased from Consul, or given.
	nodeID := int64(max(cfg.NodeID, 0))
	var consul *registry.Registry
	if cfg.ConsulAddr != "" {
		consul, err = startRegistry(ctx, cfg, log, fr, public.Addr(), adminAddr)
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			log.Info("stopped while waiting for Consul")
			return nil
		}
		if err != nil {
			return err
		}
		undo.add(func() { _ = consul.Close(context.Background()) })
		nodeID = int64(consul.NodeID())
		fr.guard.seedConsul(consul.State(), nodeID)
	}

	natsURL, embedded := cfg.NATSURL, false
	if natsURL == "" {
		addr := cfg.NATSEmbeddedListen
		if perr := portFree(addr); perr != nil {
			if !cfg.Dev || !natsAlready(addr) {
				return fmt.Errorf("--nats-embedded-listen %s: %v (set --nats-url to use a NATS server, or another --nats-embedded-listen)", addr, perr)
			}
			natsURL = "nats://" + addr
			log.Info("dev mode: a NATS server already listens where the embedded one would; using it (another dev node's?)", "url", natsURL)
		} else {
			ns, err := startEmbeddedNATS(addr)
			if err != nil {
				return err
			}
			embedded = true
			undo.add(ns.Shutdown)
			defer ns.Shutdown()
			natsURL = ns.ClientURL()
			log.Info("embedded NATS server started", "url", natsURL)
		}
	}
	natsOpts := []nats.Option{
		nats.Name("pushd " + cfg.NodeName),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(8 << 20),
	}
	if cfg.NATSCreds != "" {
		natsOpts = append(natsOpts, nats.UserCredentials(cfg.NATSCreds))
	}
	nc, err := nats.Connect(natsURL, natsOpts...)
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", natsURL, err)
	}
	dev.use(nc)
	undo.add(nc.Close)

	// The node number must be no other live node's, wherever it came from:
	// sessions IDs minted under one number by two nodes collide.
	cl, err := cluster.New(cluster.Config{
		Conn:        nc,
		Prefix:      cfg.SubjectPrefix,
		Interval:    cfg.Presence.ClusterHeartbeat,
		Self:        cluster.Member{Address: public.Addr().String(), Version: version},
		OnDuplicate: func(_ cluster.Member, yield bool) { fr.setConflict(yield) },
		OnWatching:  fr.guard.setWatching,
		Load:        load(fr),
		Logger:      log.With("component", "cluster"),
	})
	if err != nil {
		return err
	}
	if consul == nil && cfg.NodeID < 0 { // --dev (validate checked): the lowest free number
		if nodeID, err = cl.FirstFree(ctx, maxNodeID); err != nil {
			return err
		}
		log.Info("dev mode: took the lowest node number no live node uses", "node_id", nodeID)
	} else if err := cl.Claim(ctx, nodeID); err != nil {
		return fmt.Errorf("%w; set --node-id to a number no other node uses, or lease one with --consul-addr", err)
	}

	hist, err := startHistory(ctx, cfg, nc, nodeID, embedded, log, reg)
	if err != nil {
		return err
	}
	if hist != nil {
		undo.add(func() { _ = hist.Close() })
		fr.hist.Store(hist)
	}
	rt, err := router.New(router.Config{
		Conn:       nc,
		Prefix:     cfg.SubjectPrefix,
		NodeID:     nodeID,
		History:    hist,
		Logger:     log.With("component", "router"),
		Registerer: reg,
	})
	if err != nil {
		return err
	}
	undo.add(func() { _ = rt.Close() })
	fwd, err := router.NewForwarder(router.ForwarderConfig{
		Conn:   nc,
		Prefix: cfg.SubjectPrefix,
		NodeID: nodeID,
		Logger: log.With("component", "forwarder"),
	})
	if err != nil {
		return err
	}
	undo.add(func() { _ = fwd.Close() })
	pres, presConn, err := startPresence(cfg, natsURL, natsOpts, nodeID, cl, log, reg)
	if err != nil {
		return err
	}
	if pres != nil {
		undo.add(presConn.Close)
		undo.add(func() { _ = pres.Close() })
	}
	ncfg := node.Config{
		Forwarder:        fwd,
		NodeID:           nodeID,
		Bus:              rt,
		Auth:             verifier,
		Dev:              cfg.Dev,
		PingInterval:     cfg.PingInterval,
		PingIntervalMax:  cfg.PingIntervalMax,
		PingGrace:        cfg.PingGrace,
		PingIntervalStep: cfg.PingStep,
		HealthyPings:     cfg.PingHealthy,
		SweepInterval:    cfg.HeartbeatSweep,
		MaxFrameSize:     cfg.MaxFrameSize,
		MaxQueuedBytes:   cfg.MaxQueuedBytes,
		MaxPushSize:      cfg.MaxPushSize,
		WriteTimeout:     cfg.WriteTimeout,
		WriteCoalesce:    cfg.WriteCoalesce,
		NoParking:        !cfg.ParkIdle,
		DrainTimeout:     cfg.DrainTimeout,
		AuthTimeout:      cfg.AuthTimeout,
		Logger:           log.With("component", "node"),
		Registerer:       reg,
		Version:          version,
	}
	cfg.nodeLimits(&ncfg)
	cfg.Presence.nodeConfig(&ncfg)
	if pres != nil {
		ncfg.Presence = pres
	}
	if ncfg.MaxClusterSessionsPerUser > 0 {
		ncfg.Census = cl // the other nodes' reports, once StartCensus below runs
	}
	n, err := node.New(ncfg)
	if err != nil {
		return err
	}
	n.Start()
	undo.add(func() { _ = n.Close() })
	if err := rt.Start(n); err != nil {
		return err
	}
	if pres != nil {
		if err := pres.Start(n); err != nil {
			return err
		}
	}
	if err := fwd.Serve(n.ServeForwarded, n.ForwardBusy); err != nil {
		return err
	}
	fr.guard.setNode(n) // from now on every change of guard reaches the node
	fr.node.Store(n)
	if err := cl.Start(nodeID); err != nil {
		return err
	}
	undo.add(func() { _ = cl.Close() })
	if ncfg.Census != nil {
		if err := cl.StartCensus(n.HeavyUsers, reg); err != nil {
			return err
		}
	}
	rb, err := startRebalancer(cfg.Rebalance, n, cl, cfg.Presence.ClusterHeartbeat, log.With("component", "rebalance"), reg)
	if err != nil {
		return err
	}
	undo.add(rb.Close)
	ctl, err := admin.NewServer(admin.ServerConfig{
		Rebalancer:    rb,
		Conn:          nc,
		Prefix:        cfg.SubjectPrefix,
		Node:          n,
		Cluster:       cl,
		Address:       public.Addr().String(),
		Subscriptions: rt.Subscriptions,
		Logger:        log.With("component", "admin"),
	})
	if err != nil {
		return err
	}

	log.Info("pushd started", "listen", public.Addr().String(), "admin", adminAddr, "nats", natsURL,
		"node_id", nodeID, "prefix", rt.Subjects().Prefix(), "consul", cfg.ConsulAddr != "", "version", version)
	if onStart != nil {
		onStart(started{Listen: public.Addr().String(), AdminListen: adminAddr, NATSURL: natsURL, NodeID: nodeID})
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: draining sessions", "drain_timeout", cfg.DrainTimeout)
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
		log.Error("http server failed; shutting down", "err", err)
	}
	rb.Close() // no shedding while the drain moves everyone
	shutdown(log, cfg, n, rt, fwd, hist, nc, httpSrv, adminSrv, ctl, cl, consul, pres, presConn)
	return runErr
}

// startRegistry registers the node in Consul and leases its node ID,
// retrying with backoff while Consul is unreachable.
func startRegistry(ctx context.Context, cfg config, log *slog.Logger, fr *front, public net.Addr, adminAddr string) (*registry.Registry, error) {
	port := 0
	if ta, ok := public.(*net.TCPAddr); ok {
		port = ta.Port
	}
	meta := map[string]string{"version": version, "ws_path": "/ws"}
	if adminAddr != "" {
		meta["admin_addr"] = adminAddr
	}
	r, err := registry.New(registry.Config{
		Addr:        cfg.ConsulAddr,
		Token:       cfg.ConsulToken,
		Datacenter:  cfg.ConsulDatacenter,
		ServiceName: cfg.ConsulService,
		NodeName:    cfg.NodeName,
		NodeID:      cfg.NodeID, // -1 leases automatically
		Address:     cfg.AdvertiseAddress,
		Port:        port,
		Meta:        meta,
		SessionTTL:  cfg.ConsulSessionTTL,
		LockDelay:   cfg.ConsulLockDelay,
		Logger:      log.With("component", "registry"),
		OnState:     fr.guard.setConsul,
	})
	if err != nil {
		return nil, err
	}
	if _, err := r.Start(ctx); err != nil {
		_ = r.Close(context.Background())
		return nil, err
	}
	return r, nil
}

func adminMux(metrics http.Handler) *http.ServeMux {
	am := http.NewServeMux()
	am.HandleFunc("/debug/pprof/", pprof.Index)
	am.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	am.HandleFunc("/debug/pprof/profile", pprof.Profile)
	am.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	am.HandleFunc("/debug/pprof/trace", pprof.Trace)
	am.Handle("/metrics", metrics)
	return am
}

// shutdown drains in the order that loses nothing: stop accepting and close
// sessions (1012, spread over the drain timeout), stop answering admin
// requests and receiving from NATS, flush what we published, stop the HTTP
// servers and the node's goroutines, and only then give up the node-ID lease
// (no session ID can be minted any more).
func shutdown(log *slog.Logger, cfg config, n *node.Node, rt *router.Router, fwd *router.Forwarder, hist *history.History, nc *nats.Conn, httpSrv, adminSrv *http.Server, ctl *admin.Server, cl *cluster.Cluster, consul *registry.Registry, pres *presence.Tracker, presConn *nats.Conn) {
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout+5*time.Second)
	defer cancel()
	if err := n.Drain(drainCtx); err != nil {
		log.Warn("drain did not finish in time; remaining sessions cut off", "err", err)
	}
	// Forwarded HTTP-session requests were answered by the drain (every
	// session got its close frame); stop taking more.
	if err := fwd.Close(); err != nil {
		log.Warn("forwarder close", "err", err)
	}
	if err := ctl.Close(); err != nil {
		log.Warn("admin close", "err", err)
	}
	if pres != nil { // after the drain: its sessions' leaves are published
		if err := pres.Close(); err != nil {
			log.Warn("presence close", "err", err)
		}
		presConn.Close()
	}
	// Stop answering for the number only once no session of ours is left.
	if err := cl.Close(); err != nil {
		log.Warn("cluster close", "err", err)
	}
	if err := rt.Close(); err != nil {
		log.Warn("router close", "err", err)
	}
	if hist != nil {
		if err := hist.Close(); err != nil {
			log.Warn("history close", "err", err)
		}
	}
	if err := nc.FlushTimeout(2 * time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		log.Warn("NATS flush", "err", err)
	}
	nc.Close()
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelHTTP()
	_ = httpSrv.Shutdown(httpCtx)
	if adminSrv != nil {
		_ = adminSrv.Shutdown(httpCtx)
	}
	_ = n.Close()
	if consul != nil {
		regCtx, cancelReg := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancelReg()
		if err := consul.Close(regCtx); err != nil {
			log.Warn("consul deregistration", "err", err)
		}
	}
	log.Info("pushd stopped")
}

// startEmbeddedNATS runs an in-process NATS server on addr (port 0 picks a
// free one).
func startEmbeddedNATS(addr string) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--nats-embedded-listen %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("--nats-embedded-listen %q: bad port", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	// JetStream keeps the dev node's history in memory; the store directory
	// only holds JetStream's bookkeeping and goes with the process.
	dir, err := os.MkdirTemp("", "pushd-jetstream-")
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	ns, err := server.NewServer(&server.Options{Host: host, Port: port, NoSigs: true, MaxPayload: 8 << 20,
		JetStream: true, StoreDir: dir, JetStreamMaxMemory: 256 << 20})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go func() { ns.WaitForShutdown(); _ = os.RemoveAll(dir) }()
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start on %s (port in use? set --nats-embedded-listen or --nats-url)", addr)
	}
	return ns, nil
}

// startHistory starts the history streams' client (nil with --history=false).
// JetStream being unavailable is not an error: live delivery goes on, and
// /readyz and pushd_history_available say so.
func startHistory(ctx context.Context, cfg config, nc *nats.Conn, nodeID int64, embedded bool, log *slog.Logger, reg prometheus.Registerer) (*history.History, error) {
	if !cfg.History {
		return nil, nil
	}
	h, err := history.New(history.Config{
		Conn:            nc,
		Prefix:          cfg.SubjectPrefix,
		NodeID:          nodeID,
		Replicas:        cfg.HistoryReplicas,
		Memory:          cfg.HistoryStorage == "memory" || embedded,
		MaxBytes:        historyMaxBytes(cfg, embedded),
		User:            history.Limits{MaxMsgsPerSubject: cfg.HistoryUserMaxMsgs, MaxAge: cfg.HistoryUserMaxAge},
		Doc:             history.Limits{MaxMsgsPerSubject: cfg.HistoryDocMaxMsgs, MaxAge: cfg.HistoryDocMaxAge},
		DuplicateWindow: cfg.HistoryDuplicateWindow,
		ReplayMaxMsgs:   cfg.ReplayMaxMsgs,
		ReplayMaxBytes:  cfg.ReplayMaxBytes,
		Logger:          log.With("component", "history"),
		Registerer:      reg,
	})
	if err != nil {
		return nil, err
	}
	if err := h.Start(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

// historyMaxBytes bounds the streams; the embedded dev server keeps them in
// a 256 MiB memory budget, so each gets 64 MiB there.
func historyMaxBytes(cfg config, embedded bool) int64 {
	if embedded && cfg.HistoryMaxBytes == history.DefaultMaxBytes {
		return 64 << 20
	}
	return cfg.HistoryMaxBytes
}
