package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/contract"
)

// Source is what a Server asks the node it runs in. cmd/pushd adapts
// *node.Node to it.
type Source interface {
	// NodeInfo describes the node; the Server sets Reply.Node.
	NodeInfo() NodeInfo
	// Sessions returns one page of the sessions matching req.User, req.Doc,
	// req.Limit and req.Cursor, ordered by session ID, with the cursor of the
	// next page and how many match in all. It must use the node's indexes for
	// user and doc filters.
	Sessions(req Request) (sessions []SessionInfo, next string, total int)
	// Session returns the session sid if the node holds it.
	Session(sid string) (SessionInfo, bool)
	// Kick closes session sid, or every session of user, with close code
	// 4010 and reason, and returns the session IDs closed.
	Kick(sid, user, reason string) []string
	// Stats samples the node's counters.
	Stats() Stats
	// Peers are the live node numbers the node knows of, itself included.
	Peers() []int64
}

// ServerConfig configures a Server.
type ServerConfig struct {
	// Conn is the node's NATS connection. Required.
	Conn *nats.Conn
	// Prefix is the subject prefix; empty means "push".
	Prefix string
	// NodeID is the node's ID, put in every reply.
	NodeID int64
	// Source answers the requests. Required.
	Source Source
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
	if cfg.Conn == nil || cfg.Source == nil {
		return nil, errors.New("pushd: admin server needs a NATS connection and a Source")
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
			s.respond(m, Reply{Node: s.cfg.NodeID, Error: "bad request: " + err.Error()})
			return
		}
	}
	if req.Node != nil && *req.Node != s.cfg.NodeID {
		return
	}
	me := Reply{Node: s.cfg.NodeID, Peers: s.cfg.Source.Peers()}
	src := s.cfg.Source
	switch verb {
	case VerbNodes:
		info := src.NodeInfo()
		info.Reply = me
		s.respond(m, info)
	case VerbSessions:
		if req.Limit <= 0 {
			req.Limit = DefaultLimit
		}
		req.Limit = min(req.Limit, MaxLimit)
		list, next, total := src.Sessions(req)
		if list == nil {
			list = []SessionInfo{}
		}
		s.respond(m, SessionsReply{Reply: me, Sessions: list, Next: next, Total: total})
	case VerbSession:
		info, ok := src.Session(req.SID)
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
		st := src.Stats()
		st.Reply = me
		s.respond(m, st)
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
