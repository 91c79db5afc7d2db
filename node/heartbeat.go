package node

import "time"

// heartbeat records a heartbeat (a JSON ping or a WebSocket ping) at now and
// returns the interval the client should use next. It runs on the session's
// read goroutine.
//
// The rule (docs/PROTOCOL.md): a heartbeat no later than interval+grace/2
// after the previous one is on time; HealthyPings on-time heartbeats in a row
// raise the interval by PingIntervalStep, up to PingIntervalMax. A late one is
// a miss and drops the interval back to PingInterval. Idle load on a big node
// falls by PingIntervalMax/PingInterval.
func (n *Node) heartbeat(s *session, now int64) time.Duration {
	cfg := &n.cfg
	cur := time.Duration(s.interval.Load())
	gap := time.Duration(now - s.lastBeat)
	s.lastBeat = now
	if gap > cur+cfg.PingGrace/2 {
		cur = cfg.PingInterval
		s.healthy = 0
	} else if s.healthy++; s.healthy >= cfg.HealthyPings && cur < cfg.PingIntervalMax {
		cur = min(cur+cfg.PingIntervalStep, cfg.PingIntervalMax)
		s.healthy = 0
	}
	s.interval.Store(int64(cur))
	s.lastBeatAt.Store(now)
	n.metrics.heartbeat.Observe(cur.Seconds())
	return cur
}

// sweep is the node's one heartbeat sweeper: it closes sessions silent for
// longer than their interval plus grace (4002), and sessions whose token
// expired without a refresh (4001). One scan per SweepInterval is far cheaper
// than a timer per connection.
func (n *Node) sweep() {
	t := time.NewTicker(n.cfg.SweepInterval)
	defer t.Stop()
	grace := int64(n.cfg.PingGrace)
	var expired, tokenExpired, stuck []*session
	writeTimeout := int64(n.cfg.WriteTimeout)
	for {
		select {
		case <-n.stop:
			return
		case now := <-t.C:
			ns := now.UnixNano()
			expired, tokenExpired, stuck = expired[:0], tokenExpired[:0], stuck[:0]
			n.hub.each(func(s *session) bool {
				if ws := s.writeStarted.Load(); ws != 0 && ns-ws > writeTimeout {
					stuck = append(stuck, s)
				}
				if ns-s.lastSeen.Load() > s.interval.Load()+grace {
					expired = append(expired, s)
				} else if exp := s.expires.Load(); exp != 0 && ns >= exp {
					tokenExpired = append(tokenExpired, s)
				}
				return true
			})
			for _, s := range tokenExpired {
				n.log.Debug("token expired", "sid", s.sid, "user", s.user)
				s.closeWith(CloseTokenExpired, "token expired: reconnect with a fresh token", ReasonTokenExpired)
			}
			clear(tokenExpired)
			for _, s := range stuck {
				n.slowConsumer(s, ReasonWriteTimeout) // a write blocked past WriteTimeout: the peer stopped reading
			}
			clear(stuck)
			n.ipLimiter.prune(ns)
			n.http.prune(ns, n.cfg.PingInterval+n.cfg.PingGrace)
			n.expirePending(ns)
			for _, s := range expired {
				n.log.Debug("heartbeat timeout", "sid", s.sid, "user", s.user)
				s.closeWith(CloseHeartbeatTimeout, "heartbeat timeout", ReasonHeartbeatTimeout)
			}
			clear(expired)
		}
	}
}
