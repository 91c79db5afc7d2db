package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pushd/pushd/admin"
	"github.com/pushd/pushd/auth"
	"github.com/pushd/pushd/node"
	"github.com/pushd/pushd/router"
)

// The node and the router meet only here.
var (
	_ node.Bus         = (*router.Router)(nil)
	_ router.Deliverer = deliverer{}
)

// deliverer adapts the node to the router's Deliverer.
type deliverer struct{ n *node.Node }

func (d deliverer) Deliver(m *router.Delivery) int {
	return d.n.Deliver(&node.Push{
		Target:         node.Target(m.Kind),
		Key:            m.Key,
		Event:          m.Event,
		ID:             m.ID,
		ExcludeSession: m.ExcludeSession,
		SentUnixNano:   m.SentUnixNano,
		TraceID:        m.TraceID,
		Data:           m.Data,
	})
}

// lateDeliverer lets the router start before the node exists.
type lateDeliverer struct{ d *deliverer }

func (l *lateDeliverer) Deliver(m *router.Delivery) int {
	if l.d == nil {
		return 0
	}
	return l.d.Deliver(m)
}

// serve runs a node until ctx ends, then shuts it down gracefully.
func serve(ctx context.Context, cfg config, log *slog.Logger, onStart func(started)) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var verifier *auth.Verifier
	if cfg.JWTSecret != "" || len(cfg.JWTPublicKeys) > 0 {
		v, err := auth.New(auth.Config{Secret: []byte(cfg.JWTSecret), PublicKeyFiles: cfg.JWTPublicKeys})
		if err != nil {
			return err
		}
		verifier = v
	}
	if cfg.Dev {
		log.Warn("DEV MODE: /ws?user=<id> is accepted without a token. Never run this in production.")
	}

	natsURL := cfg.NATSURL
	var embedded *server.Server
	if natsURL == "" {
		ns, err := startEmbeddedNATS(cfg.NATSEmbeddedListen)
		if err != nil {
			return err
		}
		embedded = ns
		defer embedded.Shutdown()
		natsURL = ns.ClientURL()
		log.Info("embedded NATS server started", "url", natsURL)
	}

	nodeID := int64(cfg.NodeID)
	natsOpts := []nats.Option{
		nats.Name(fmt.Sprintf("pushd-%d", nodeID)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(8 << 20),
		nats.RetryOnFailedConnect(false),
	}
	if cfg.NATSCreds != "" {
		natsOpts = append(natsOpts, nats.UserCredentials(cfg.NATSCreds))
	}
	nc, err := nats.Connect(natsURL, natsOpts...)
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", natsURL, err)
	}
	defer nc.Close()

	late := &lateDeliverer{}
	rt, err := router.New(router.Config{
		Conn:       nc,
		Deliverer:  late,
		Prefix:     cfg.SubjectPrefix,
		NodeID:     nodeID,
		Logger:     log.With("component", "router"),
		Registerer: reg,
	})
	if err != nil {
		return err
	}
	n, err := node.New(node.Config{
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
		WriteTimeout:     cfg.WriteTimeout,
		DrainTimeout:     cfg.DrainTimeout,
		Logger:           log.With("component", "node"),
		Registerer:       reg,
		Version:          version,
	})
	if err != nil {
		_ = rt.Close()
		return err
	}
	late.d = &deliverer{n}
	n.Start()

	public, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		_ = rt.Close()
		_ = n.Close()
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	mux := http.NewServeMux()
	mux.Handle("/ws", n)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := n.Ready()
		if ok && !nc.IsConnected() {
			ok, why = false, "nats_disconnected"
		}
		if !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("/metrics", metricsHandler)
	httpSrv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- httpSrv.Serve(public) }()

	var adminSrv *http.Server
	adminAddr := ""
	if cfg.AdminListen != "" {
		al, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			_ = httpSrv.Close()
			_ = rt.Close()
			_ = n.Close()
			return fmt.Errorf("admin listen %s: %w", cfg.AdminListen, err)
		}
		adminAddr = al.Addr().String()
		am := http.NewServeMux()
		am.HandleFunc("/debug/pprof/", pprof.Index)
		am.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		am.HandleFunc("/debug/pprof/profile", pprof.Profile)
		am.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		am.HandleFunc("/debug/pprof/trace", pprof.Trace)
		am.Handle("/metrics", metricsHandler)
		adminSrv = &http.Server{Handler: am, ReadHeaderTimeout: 5 * time.Second}
		go func() { serveErr <- adminSrv.Serve(al) }()
	}

	ctl, err := startAdmin(log, cfg.SubjectPrefix, n, rt, nc, public.Addr().String())
	if err != nil {
		_ = httpSrv.Close()
		if adminSrv != nil {
			_ = adminSrv.Close()
		}
		_ = rt.Close()
		_ = n.Close()
		return err
	}

	log.Info("pushd started", "listen", public.Addr().String(), "admin", adminAddr, "nats", natsURL,
		"node_id", nodeID, "prefix", rt.Subjects().Prefix(), "version", version)
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
	shutdown(log, cfg, n, rt, nc, httpSrv, adminSrv, ctl)
	return runErr
}

// shutdown drains in the order that loses nothing: stop accepting and close
// sessions (1012, spread over the drain timeout), stop receiving from NATS and
// flush what we published, stop the HTTP servers, then the node's goroutines.
func shutdown(log *slog.Logger, cfg config, n *node.Node, rt *router.Router, nc *nats.Conn, httpSrv, adminSrv *http.Server, ctl *admin.Server) {
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout+5*time.Second)
	defer cancel()
	if err := n.Drain(drainCtx); err != nil {
		log.Warn("drain did not finish in time; remaining sessions cut off", "err", err)
	}
	if err := ctl.Close(); err != nil {
		log.Warn("admin close", "err", err)
	}
	if err := rt.Close(); err != nil {
		log.Warn("router close", "err", err)
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
	ns, err := server.NewServer(&server.Options{Host: host, Port: port, NoSigs: true, MaxPayload: 8 << 20})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start on %s (port in use? set --nats-embedded-listen or --nats-url)", addr)
	}
	return ns, nil
}
