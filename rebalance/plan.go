package rebalance

import (
	"math"

	"github.com/pushd/pushd/cluster"
)

// View is the cluster's load as one node sees it.
type View struct {
	// Sessions is this node's.
	Sessions int `json:"sessions"`
	// Average is the sessions of every node that reports its load, over the
	// nodes that accept sessions (this one included): what each would hold
	// if the cluster were even. Sessions on a draining node count, since
	// they are about to land on the others.
	Average float64 `json:"average"`
	// Accepting is how many nodes accept sessions, this one included.
	Accepting int `json:"accepting"`
	// Known is false when the average cannot be trusted, and Why says why:
	// this node is not watching the cluster, does not accept sessions
	// itself, or no other node accepts them.
	Known bool   `json:"known"`
	Why   string `json:"why,omitempty"`
}

// Reasons a View is not Known.
const (
	WhyNotWatching  = "not_watching"   // not hearing the heartbeats reliably (cluster.Watching)
	WhyNotAccepting = "not_accepting"  // this node drains or is not ready
	WhyAlone        = "no_other_nodes" // no other live node accepts sessions
)

// See computes the view from the live members (self included, as
// cluster.Members returns them). Members that report no load (older
// versions) are left out.
func See(self string, members []cluster.Member, watching bool) View {
	var v View
	total := 0
	selfAccepting, others := false, 0
	for _, m := range members {
		if m.Load == nil {
			continue
		}
		total += m.Load.Sessions
		if m.Instance == self {
			v.Sessions = m.Load.Sessions
			selfAccepting = m.Load.Accepting
		}
		if m.Load.Accepting {
			v.Accepting++
			if m.Instance != self {
				others++
			}
		}
	}
	if v.Accepting > 0 {
		v.Average = float64(total) / float64(v.Accepting)
	}
	switch {
	case !watching:
		v.Why = WhyNotWatching
	case !selfAccepting:
		v.Why = WhyNotAccepting
	case others == 0:
		v.Why = WhyAlone
	default:
		v.Known = true
	}
	return v
}

// Band is when a node sheds on its own: it starts once it holds more than
// Ratio times the average and more than the average plus MinExcess, and
// goes on until it holds the average (rounded up). The gap between the two
// is the hysteresis that keeps nodes from trading sessions back and forth:
// a node never sheds below the average, so a node that stopped is pushed
// back over the start only if the others' sheds land on it far beyond its
// share.
type Band struct {
	Ratio     float64
	MinExcess int
}

// start is the count above which a node starts shedding.
func (b Band) start(avg float64) float64 {
	return math.Max(avg*b.Ratio, avg+float64(b.MinExcess))
}

// Ceiling is the most sessions a node holds once the cluster has settled
// at average avg: above it, the node sheds. It is what rebalancing
// promises (the chaos suite checks it).
func (b Band) Ceiling(avg float64) float64 { return b.start(avg) }

// stop is the count down to which a shedding node sheds: the average, so
// that the node left emptiest gets its full share however many nodes
// shed (stopping at a margin above it would leave that node short by the
// margin times the number of shedders).
func (b Band) stop(avg float64) float64 { return avg }

// Excess is how many sessions a node in view v should shed now, and
// whether it is (still) shedding: active is whether it was shedding after
// the previous step.
func (b Band) Excess(v View, active bool) (excess int, shedding bool) {
	if !v.Known {
		return 0, false
	}
	s := float64(v.Sessions)
	if !active && s <= b.start(v.Average) {
		return 0, false
	}
	stop := math.Ceil(b.stop(v.Average))
	if s <= stop {
		return 0, false
	}
	return int(s - stop), true
}

// ToAverage is how many sessions a node in view v holds above the average
// (rounded up): what `pushctl rebalance --to-average` sheds.
func ToAverage(v View) int {
	if !v.Known {
		return 0
	}
	return max(0, v.Sessions-int(math.Ceil(v.Average)))
}
