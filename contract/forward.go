package contract

import (
	"errors"
	"strconv"
)

// HTTP sessions (SSE and long-polling) need no sticky load balancing: a
// request for a session may reach any node, which forwards it over NATS
// request/reply to the node holding the session. The session ID names that
// node (SessionNode), so each node takes its sessions' requests with one
// subscription. Only nodes publish and subscribe here; the request and reply
// bodies are the nodes' own business (node/forward.go).

// SessionRequests is the subject the requests for node's HTTP sessions go
// to: <prefix>.http.<node>.
func (s Subjects) SessionRequests(node int64) string {
	return s.prefix + ".http." + strconv.FormatInt(node, 10)
}

// ErrNoNode means no node answered for a session's node number: the node
// that held the session is gone, so the session is too.
var ErrNoNode = errors.New("pushd: no node holds this session")
