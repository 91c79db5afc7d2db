package main

import (
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/admin"
	"github.com/pushd/pushd/cluster"
	"github.com/pushd/pushd/node"
	"github.com/pushd/pushd/router"
)

var _ admin.Source = adminSource{}

// adminSource adapts the node (and the NATS side of it) to admin.Source; the
// node itself knows nothing about the admin protocol.
type adminSource struct {
	n       *node.Node
	rt      *router.Router
	nc      *nats.Conn
	cl      *cluster.Cluster
	address string
	started time.Time
}

// startAdmin answers admin requests (pushctl) for n on its NATS connection.
func startAdmin(log *slog.Logger, prefix string, n *node.Node, rt *router.Router, nc *nats.Conn, cl *cluster.Cluster, address string) (*admin.Server, error) {
	return admin.NewServer(admin.ServerConfig{
		Conn:   nc,
		Prefix: prefix,
		NodeID: n.ID(),
		Source: adminSource{n: n, rt: rt, nc: nc, cl: cl, address: address, started: time.Now()},
		Logger: log.With("component", "admin"),
	})
}

func (a adminSource) NodeInfo() admin.NodeInfo {
	ready, why := a.n.Ready()
	if ready && !a.nc.IsConnected() {
		ready, why = false, "nats_disconnected"
	}
	health := "ready"
	if !ready {
		health = why
	}
	_, dup := a.cl.Duplicate()
	return admin.NodeInfo{
		Instance:      a.cl.Self().Instance,
		Duplicate:     dup,
		Address:       a.address,
		Version:       a.n.Version(),
		StartedAt:     a.started.UTC(),
		UptimeSeconds: time.Since(a.started).Seconds(),
		Sessions:      a.n.Sessions(),
		Users:         a.n.Users(),
		Docs:          a.n.Docs(),
		Ready:         ready,
		Health:        health,
		NATS: admin.NATSInfo{
			Status:        a.nc.Status().String(),
			Server:        a.nc.ConnectedUrlRedacted(),
			Subscriptions: a.rt.Subscriptions(),
			Reconnects:    a.nc.Stats().Reconnects,
		},
	}
}

func (a adminSource) Sessions(req admin.Request) ([]admin.SessionInfo, string, int) {
	infos, next, total := a.n.SessionInfos(node.SessionFilter{User: req.User, Doc: req.Doc, Limit: req.Limit, Cursor: req.Cursor})
	out := make([]admin.SessionInfo, len(infos))
	for i := range infos {
		out[i] = sessionInfo(infos[i])
	}
	return out, next, total
}

func (a adminSource) Session(sid string) (admin.SessionInfo, bool) {
	info, ok := a.n.SessionInfo(sid)
	if !ok {
		return admin.SessionInfo{}, false
	}
	return sessionInfo(info), true
}

func (a adminSource) Peers() []int64 { return a.cl.Nodes() }

func (a adminSource) Kick(sid, user, reason string) []string { return a.n.Kick(sid, user, reason) }

func (a adminSource) Stats() admin.Stats {
	s := a.n.Stats()
	return admin.Stats{
		At:             s.At.UTC(),
		Connections:    s.Connections,
		Users:          s.Users,
		Docs:           s.Docs,
		Accepted:       s.Accepted,
		Closed:         s.Closed,
		Kicked:         s.Kicked,
		PushesReceived: s.PushesReceived,
		FramesWritten:  s.FramesWritten,
		BytesWritten:   s.BytesWritten,
		SlowConsumers:  s.SlowConsumers,
		Upstream:       s.Upstream,
	}
}

func sessionInfo(in node.SessionInfo) admin.SessionInfo {
	out := admin.SessionInfo{
		SID:         in.SID,
		User:        in.User,
		Node:        in.Node,
		Remote:      in.Remote,
		Docs:        in.Docs,
		ConnectedAt: in.ConnectedAt.UTC(),
		LastSeen:    in.LastSeen.UTC(),
		MsgsIn:      in.MsgsIn,
		BytesIn:     in.BytesIn,
		MsgsOut:     in.MsgsOut,
		BytesOut:    in.BytesOut,
		QueueDepth:  in.QueueDepth,
		QueueBytes:  in.QueueBytes,
	}
	if !in.LastHeartbeat.IsZero() {
		t := in.LastHeartbeat.UTC()
		out.LastHeartbeat = &t
	}
	return out
}
