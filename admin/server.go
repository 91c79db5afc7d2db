package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/cluster"
	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/rebalance"
)

// Node is what a Server asks the node it runs in; *node.Node implements it.
type Node interface {
	// ID is the node's number.
	ID() int64
	// Version is the node's pushd version.
	Version() string
	// Ready reports whether the node accepts new sessions, and why not.
	Ready() (bool, string)
	// Sessions, Users and Docs count what the node holds now.
	Sessions() int
	Users() int
	Docs() int
	// SessionInfos returns one page of the sessions matching f, ordered by
	// session ID, with the cursor of the next page and how many match in
	// all, from the node's indexes for user and doc filters.
	SessionInfos(f contract.SessionFilter) (sessions []contract.SessionInfo, next string, total int)
	// SessionInfo returns the session sid if the node holds it.
	SessionInfo(sid string) (contract.SessionInfo, bool)
	// Kick closes session sid, or every session of user, with close code
	// 4010 and reason, and returns the session IDs closed.
	Kick(sid, user, reason string) []string
	// Stats samples the node's counters.
	Stats() contract.Stats
}

// Cluster is what a Server asks about the other live nodes;
// *cluster.Cluster implements it.
type Cluster interface {
	// Nodes are the live node numbers this node knows of, itself included;
	// nil while it cannot tell yet.
	Nodes() []int64
	// Self is this node as the others see it.
	Self() cluster.Member
	// Duplicate returns another live node using this node's number, if any.
	Duplicate() (cluster.Member, bool)
}

// Rebalancer sheds the node's sessions on request; *rebalance.Rebalancer
// implements it.
type Rebalancer interface {
	Shed(req rebalance.Request) (rebalance.Result, error)
}

// ServerConfig configures a Server.
type ServerConfig struct {
	// Conn is the node's NATS connection. Required.
	Conn *nats.Conn
	// Prefix is the subject prefix; empty means "push".
	Prefix string
	// Node answers the requests. Required.
	Node Node
	// Cluster names the live peers and this node's instance. Required.
	Cluster Cluster
	// Address is the node's public listener, reported in "nodes".
	Address string
	// Rebalancer answers "rebalance". Nil answers it with an error.
	Rebalancer Rebalancer
	// Subscriptions counts the node's push subscriptions on NATS; nil
	// reports 0.
	Subscriptions func() int
	// Logger receives the server's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Server answers admin requests for one node.
type Server struct {
	cfg    ServerConfig
	log    *slog.Logger
	mu     sync.Mutex // guards subs and closed, and busy.Add against busy.Wait
	subs   []*nats.Subscription
	closed bool
	busy   sync.WaitGroup
}

// NewServer subscribes to every admin verb and returns once the
// subscriptions are confirmed by the NATS server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Conn == nil || cfg.Node == nil || cfg.Cluster == nil {
		return nil, errors.New("pushd: admin server needs a NATS connection, a Node and a Cluster")
	}
	if cfg.Subscriptions == nil {
		cfg.Subscriptions = func() int { return 0 }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	subjects := contract.NewSubjects(cfg.Prefix)
	for _, verb := range Verbs() {
		sub, err := cfg.Conn.Subscribe(subjects.Admin(verb), func(m *nats.Msg) { s.handle(verb, m) })
		if err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("pushd: admin subscribe %s: %w", subjects.Admin(verb), err)
		}
		s.subs = append(s.subs, sub)
	}
	if err := cfg.Conn.Flush(); err != nil {
		s.log.Warn("admin subscriptions not confirmed", "err", err)
	}
	return s, nil
}

// Close unsubscribes and waits for requests being answered.
func (s *Server) Close() error {
	s.mu.Lock()
	subs := s.subs
	s.subs = nil
	s.closed = true
	s.mu.Unlock()
	var errs []error
	for _, sub := range subs {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	s.busy.Wait()
	return errors.Join(errs...)
}

func (s *Server) handle(verb string, m *nats.Msg) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.busy.Add(1)
	s.mu.Unlock()
	defer s.busy.Done()
	if m.Reply == "" {
		return
	}
	var req Request
	if len(m.Data) > 0 {
		if err := json.Unmarshal(m.Data, &req); err != nil {
			s.respond(m, Reply{Node: s.cfg.Node.ID(), Error: "bad request: " + err.Error()})
			return
		}
	}
	src := s.cfg.Node
	if req.Node != nil && *req.Node != src.ID() {
		return
	}
	_, shared := s.cfg.Cluster.Duplicate()
	me := Reply{Node: src.ID(), Peers: s.cfg.Cluster.Nodes(), Shared: shared}
	switch verb {
	case VerbNodes:
		info := s.nodeInfo()
		info.Reply = me
		s.respond(m, info)
	case VerbSessions:
		f := contract.SessionFilter{User: req.User, Doc: req.Doc, Limit: req.Limit, Cursor: req.Cursor}
		list, next, total := src.SessionInfos(f)
		if list == nil {
			list = []SessionInfo{}
		}
		s.respond(m, SessionsReply{Reply: me, Sessions: list, Next: next, Total: total})
	case VerbSession:
		info, ok := src.SessionInfo(req.SID)
		s.respond(m, SessionReply{Reply: me, Found: ok, Session: info})
	case VerbKick:
		if req.SID == "" && req.User == "" {
			me.Error = "kick needs a sid or a user"
			s.respond(m, KickReply{Reply: me, SIDs: []string{}})
			return
		}
		sids := src.Kick(req.SID, req.User, req.Reason)
		if sids == nil {
			sids = []string{}
		}
		if len(sids) > 0 {
			s.log.Info("admin kick", "sid", req.SID, "user", req.User, "reason", req.Reason, "closed", len(sids))
		}
		s.respond(m, KickReply{Reply: me, Closed: len(sids), SIDs: sids})
	case VerbStats:
		s.respond(m, Stats{Reply: me, Stats: src.Stats()})
	case VerbRebalance:
		s.respond(m, s.rebalance(me, req))
	}
}

// rebalance sheds sessions as req asks.
func (s *Server) rebalance(me Reply, req Request) RebalanceReply {
	r := RebalanceReply{SIDs: []string{}, DryRun: req.DryRun}
	switch {
	case s.cfg.Rebalancer == nil:
		me.Error = "rebalancing is not available on this node"
	case req.Count < 0 || (req.Count > 0) == req.ToAverage:
		me.Error = "rebalance needs a positive count or to_average, not both"
	default:
		res, err := s.cfg.Rebalancer.Shed(rebalance.Request{Count: req.Count, ToAverage: req.ToAverage, DryRun: req.DryRun})
		v := res.View
		r.Sessions, r.Average, r.Accepting, r.Known, r.Why = v.Sessions, v.Average, v.Accepting, v.Known, v.Why
		if err != nil {
			me.Error = err.Error()
		}
		if res.SIDs != nil {
			r.SIDs = res.SIDs
		}
		r.Shed = len(r.SIDs)
		if r.Shed > 0 && !req.DryRun {
			s.log.Info("admin rebalance", "shed", r.Shed, "count", req.Count, "to_average", req.ToAverage)
		}
	}
	r.Reply = me
	return r
}

// nodeInfo describes the node: what it holds, whether it is ready, its
// NATS connection and its place among the live nodes.
func (s *Server) nodeInfo() NodeInfo {
	n, self, nc := s.cfg.Node, s.cfg.Cluster.Self(), s.cfg.Conn
	ready, health := n.Ready()
	if ready {
		health = "ready"
	}
	_, dup := s.cfg.Cluster.Duplicate()
	return NodeInfo{
		Address:       s.cfg.Address,
		Version:       n.Version(),
		StartedAt:     self.StartedAt,
		UptimeSeconds: time.Since(self.StartedAt).Seconds(),
		Sessions:      n.Sessions(),
		Users:         n.Users(),
		Docs:          n.Docs(),
		Ready:         ready,
		Health:        health,
		NATS: NATSInfo{
			Status:        nc.Status().String(),
			Server:        nc.ConnectedUrlRedacted(),
			Subscriptions: s.cfg.Subscriptions(),
			Reconnects:    nc.Stats().Reconnects,
		},
		Instance:  self.Instance,
		Duplicate: dup,
	}
}

func (s *Server) respond(m *nats.Msg, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("admin reply not encoded", "err", err)
		return
	}
	if err := m.Respond(b); err != nil {
		s.log.Debug("admin reply not sent", "err", err)
	}
}
