package contract

import "time"

// What a node says about itself, to admins (pushctl over the admin protocol)
// and to anything else that asks: one vocabulary, used by the node that
// fills it in and by the admin protocol that carries it.

// DefaultPageSize is how many sessions one page lists when the caller sets
// no limit, and MaxPageSize the most one page lists, so a node's answer
// stays far under NATS's 1 MiB payload limit.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// SessionFilter selects sessions. User and Doc filters are answered from a
// node's indexes; with neither set every session is scanned, a page at a
// time.
type SessionFilter struct {
	// User selects a user's sessions.
	User string
	// Doc selects the sessions that joined a doc.
	Doc string
	// Limit is the page size; zero means DefaultPageSize, more than
	// MaxPageSize means MaxPageSize.
	Limit int
	// Cursor selects sessions with an ID greater than it.
	Cursor string
}

// PageSize is the page size a filter asks for, within the bounds.
func (f SessionFilter) PageSize() int {
	switch {
	case f.Limit <= 0:
		return DefaultPageSize
	case f.Limit > MaxPageSize:
		return MaxPageSize
	}
	return f.Limit
}

// SessionInfo describes one session.
type SessionInfo struct {
	// SID is the session ID.
	SID string `json:"sid"`
	// User is the authenticated user.
	User string `json:"user"`
	// Node is the node holding the session.
	Node int64 `json:"node"`
	// Transport is how the client is connected: "ws".
	Transport string `json:"transport"`
	// Remote is the client's address as the node sees it.
	Remote string `json:"remote"`
	// Docs are the docs joined, never null.
	Docs []string `json:"docs"`
	// ConnectedAt is when the session opened.
	ConnectedAt time.Time `json:"connected_at"`
	// LastHeartbeat is the last heartbeat (ping); absent if none yet.
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`
	// LastSeen is the last frame of any kind from the client.
	LastSeen time.Time `json:"last_seen"`
	// MsgsIn and BytesIn count frames read from the client.
	MsgsIn  uint64 `json:"msgs_in"`
	BytesIn uint64 `json:"bytes_in"`
	// MsgsOut and BytesOut count frames written to the client.
	MsgsOut  uint64 `json:"msgs_out"`
	BytesOut uint64 `json:"bytes_out"`
	// QueueDepth and QueueBytes are what is queued and not yet written.
	QueueDepth int `json:"queue_depth"`
	QueueBytes int `json:"queue_bytes"`
}

// Stats are a node's counters and gauges at one instant. Counters only grow
// while the node runs; rates come from two samples.
type Stats struct {
	// At is when the sample was taken.
	At time.Time `json:"at"`
	// Connections, Users and Docs are gauges.
	Connections int `json:"connections"`
	Users       int `json:"users"`
	Docs        int `json:"docs"`
	// Accepted counts sessions that completed the handshake.
	Accepted uint64 `json:"accepted"`
	// Closed counts sessions closed for any reason; Kicked those an admin
	// closed.
	Closed uint64 `json:"closed"`
	Kicked uint64 `json:"kicked"`
	// PushesReceived counts NATS messages received for delivery.
	PushesReceived uint64 `json:"pushes_received"`
	// FramesWritten and BytesWritten count push frames written to clients.
	FramesWritten uint64 `json:"frames_written"`
	BytesWritten  uint64 `json:"bytes_written"`
	// SlowConsumers counts sessions cut off because they did not keep up.
	SlowConsumers uint64 `json:"slow_consumers"`
	// Upstream counts client publish frames forwarded to NATS.
	Upstream uint64 `json:"upstream"`
}
