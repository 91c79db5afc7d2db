package node

import (
	"strconv"
	"time"
)

// publishEvent sends a connect or disconnect event for backends.
func (n *Node) publishEvent(kind string, s *session, reason Reason, at time.Time) {
	b := make([]byte, 0, 256)
	b = append(b, `{"type":`...)
	b = appendString(b, kind)
	b = append(b, `,"sid":"`...)
	b = append(b, s.sid...)
	b = append(b, `","user":`...)
	b = appendString(b, s.user)
	b = append(b, `,"node":`...)
	b = strconv.AppendInt(b, n.cfg.NodeID, 10)
	b = appendString(append(b, `,"transport":`...), s.t.name())
	b = append(b, `,"remote":`...)
	b = appendString(b, s.remote)
	b = append(b, `,"connected_at":"`...)
	b = s.since.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if kind == "disconnect" {
		b = append(b, `,"reason":`...)
		b = appendString(b, string(reason))
		b = append(b, `,"disconnected_at":"`...)
		b = at.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","duration_ms":`...)
		b = strconv.AppendInt(b, at.Sub(s.since).Milliseconds(), 10)
	}
	b = append(b, '}')
	if err := n.bus.PublishEvent(kind, b); err != nil {
		n.log.Warn("event not published", "kind", kind, "sid", s.sid, "err", err)
	}
}
