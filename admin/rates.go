package admin

import "time"

// Rate is a node's activity between two Stats samples.
type Rate struct {
	// Node is the node ID; -1 for cluster totals.
	Node int64 `json:"node"`
	// Seconds is the time between the samples.
	Seconds float64 `json:"seconds"`
	// Connections, Users and Docs are the gauges at the second sample.
	Connections int `json:"connections"`
	Users       int `json:"users"`
	Docs        int `json:"docs"`
	// ConnectsPerSec is sessions accepted per second.
	ConnectsPerSec float64 `json:"connects_per_sec"`
	// DisconnectsPerSec is sessions closed per second.
	DisconnectsPerSec float64 `json:"disconnects_per_sec"`
	// PushesInPerSec is NATS pushes received per second.
	PushesInPerSec float64 `json:"pushes_in_per_sec"`
	// FramesOutPerSec and BytesOutPerSec are push frames written per second.
	FramesOutPerSec float64 `json:"frames_out_per_sec"`
	BytesOutPerSec  float64 `json:"bytes_out_per_sec"`
	// SlowConsumers is how many sessions were cut off as slow consumers
	// between the samples.
	SlowConsumers uint64 `json:"slow_consumers"`
}

// Rates computes each node's rates from two samples, matching nodes by ID;
// a node missing from prev is left out (it has no baseline yet). A counter
// that went down (the node restarted) counts from zero.
func Rates(prev, cur []Stats) []Rate {
	base := make(map[int64]Stats, len(prev))
	for _, s := range prev {
		base[s.Node] = s
	}
	out := make([]Rate, 0, len(cur))
	for _, s := range cur {
		p, ok := base[s.Node]
		if !ok {
			continue
		}
		secs := s.At.Sub(p.At).Seconds()
		if secs <= 0 {
			secs = time.Second.Seconds()
		}
		out = append(out, Rate{
			Node:              s.Node,
			Seconds:           secs,
			Connections:       s.Connections,
			Users:             s.Users,
			Docs:              s.Docs,
			ConnectsPerSec:    float64(delta(p.Accepted, s.Accepted)) / secs,
			DisconnectsPerSec: float64(delta(p.Closed, s.Closed)) / secs,
			PushesInPerSec:    float64(delta(p.PushesReceived, s.PushesReceived)) / secs,
			FramesOutPerSec:   float64(delta(p.FramesWritten, s.FramesWritten)) / secs,
			BytesOutPerSec:    float64(delta(p.BytesWritten, s.BytesWritten)) / secs,
			SlowConsumers:     delta(p.SlowConsumers, s.SlowConsumers),
		})
	}
	return out
}

// Total sums per-node rates into cluster totals (Node -1).
func Total(rates []Rate) Rate {
	t := Rate{Node: -1}
	for _, r := range rates {
		t.Seconds = max(t.Seconds, r.Seconds)
		t.Connections += r.Connections
		t.Users += r.Users
		t.Docs += r.Docs
		t.ConnectsPerSec += r.ConnectsPerSec
		t.DisconnectsPerSec += r.DisconnectsPerSec
		t.PushesInPerSec += r.PushesInPerSec
		t.FramesOutPerSec += r.FramesOutPerSec
		t.BytesOutPerSec += r.BytesOutPerSec
		t.SlowConsumers += r.SlowConsumers
	}
	return t
}

func delta(a, b uint64) uint64 {
	if b < a {
		return b
	}
	return b - a
}
