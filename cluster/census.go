package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// The census: how many sessions users hold on the other nodes, for the
// cluster-wide per-user session limit (docs/SECURITY.md). Best effort, and
// cheap at any number of sessions:
//
//   - every Interval, a node publishes on <prefix>.nodes.census.<node> the
//     users holding at least a threshold of sessions on it (the node's
//     source decides; an eighth of the limit), heaviest first, at most
//     maxCensusUsers of them; normally nobody, and then nothing is sent
//     (one empty report clears what the last one said);
//   - every node keeps the latest report of each other instance and
//     forgets it missedBeats intervals after it arrived;
//   - Elsewhere sums a user over those reports: it lags by at most one
//     interval, a node gone is counted for at most three, and a user with
//     fewer than the threshold on a node is not counted there at all.

// maxCensusUsers bounds one report (at 128-byte IDs, about 550 KB).
const maxCensusUsers = 4000

// censusReport is one node's report.
type censusReport struct {
	Instance string         `json:"instance"`
	Node     int64          `json:"node"`
	Users    map[string]int `json:"users"`
}

// census is the Cluster's census state.
type census struct {
	source func() map[string]int // nil until StartCensus

	mu      sync.RWMutex
	reports map[string]censusEntry // by instance, others only
	count   atomic.Int32           // len(reports), read without the lock
	sent    bool                   // the last report sent was not empty; run goroutine only
	// reported is how many users the last report named.
	reported atomic.Int64
}

type censusEntry struct {
	at    time.Time
	users map[string]int
}

// StartCensus starts reporting source's users every Interval and taking
// the other nodes' reports; Elsewhere answers from them. source returns the
// users with many sessions here and their counts (nil when none) and must
// be quick. Call it once, after Start; Close stops it. reg, when not nil,
// gets the census's metrics.
func (c *Cluster) StartCensus(source func() map[string]int, reg prometheus.Registerer) error {
	if source == nil {
		return errors.New("pushd: cluster census needs a source")
	}
	c.mu.Lock()
	if c.subs == nil {
		c.mu.Unlock()
		return errors.New("pushd: cluster census: Start the cluster first")
	}
	if c.census.source != nil {
		c.mu.Unlock()
		return errors.New("pushd: cluster census already started")
	}
	c.census.reports = make(map[string]censusEntry)
	c.mu.Unlock()
	sub, err := c.nc.Subscribe(c.subjects.NodeCensuses(), c.censusReport)
	if err != nil {
		return fmt.Errorf("pushd: cluster census: %w", err)
	}
	if reg != nil {
		for _, g := range []prometheus.Collector{
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushd_census_users_reported",
				Help: "Users this node named in its last census report: those holding many sessions here."},
				func() float64 { return float64(c.census.reported.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushd_census_users_elsewhere",
				Help: "Users the other nodes' census reports name (counted once per node)."},
				func() float64 { return float64(c.censusUsers()) }),
		} {
			if err := reg.Register(g); err != nil {
				_ = sub.Unsubscribe()
				return fmt.Errorf("pushd: cluster census metrics: %w", err)
			}
		}
	}
	c.mu.Lock()
	c.subs = append(c.subs, sub)
	c.census.source = source
	c.mu.Unlock()
	return nil
}

// Elsewhere is how many sessions user holds on the other live nodes, as
// their census reports last said; 0 before StartCensus.
func (c *Cluster) Elsewhere(user string) int {
	if c.census.count.Load() == 0 {
		return 0 // the usual case: nobody is heavy anywhere
	}
	limit := time.Now().Add(-missedBeats * c.cfg.Interval)
	c.census.mu.RLock()
	defer c.census.mu.RUnlock()
	n := 0
	for _, e := range c.census.reports {
		if e.at.After(limit) {
			n += e.users[user]
		}
	}
	return n
}

func (c *Cluster) censusUsers() int {
	c.census.mu.RLock()
	defer c.census.mu.RUnlock()
	n := 0
	for _, e := range c.census.reports {
		n += len(e.users)
	}
	return n
}

// censusReport takes another node's report.
func (c *Cluster) censusReport(m *nats.Msg) {
	var r censusReport
	if err := json.Unmarshal(m.Data, &r); err != nil || r.Instance == "" || r.Instance == c.cfg.Self.Instance {
		return
	}
	c.census.mu.Lock()
	if len(r.Users) == 0 {
		delete(c.census.reports, r.Instance)
	} else {
		c.census.reports[r.Instance] = censusEntry{at: time.Now(), users: r.Users}
	}
	c.census.count.Store(int32(len(c.census.reports)))
	c.census.mu.Unlock()
}

// tickCensus publishes this node's report and forgets stale ones; the run
// goroutine calls it every Interval.
func (c *Cluster) tickCensus(now time.Time) {
	c.mu.Lock()
	source := c.census.source
	c.mu.Unlock()
	if source == nil {
		return
	}
	c.census.mu.Lock()
	limit := now.Add(-missedBeats * c.cfg.Interval)
	for k, e := range c.census.reports {
		if !e.at.After(limit) {
			delete(c.census.reports, k)
		}
	}
	c.census.count.Store(int32(len(c.census.reports)))
	c.census.mu.Unlock()

	users := heaviest(source(), maxCensusUsers)
	c.census.reported.Store(int64(len(users)))
	if len(users) == 0 && !c.census.sent {
		return
	}
	c.census.sent = len(users) > 0
	body, err := json.Marshal(censusReport{Instance: c.cfg.Self.Instance, Node: c.cfg.Self.Node, Users: users})
	if err != nil {
		return
	}
	if err := c.nc.Publish(c.subjects.NodeCensus(c.cfg.Self.Node), body); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		c.log.Debug("census report not published", "err", err)
	}
}

// heaviest keeps the max users with the most sessions.
func heaviest(users map[string]int, max int) map[string]int {
	if len(users) <= max {
		return users
	}
	type uc struct {
		user string
		n    int
	}
	all := make([]uc, 0, len(users))
	for u, n := range users {
		all = append(all, uc{u, n})
	}
	slices.SortFunc(all, func(a, b uc) int { return b.n - a.n })
	out := make(map[string]int, max)
	for _, e := range all[:max] {
		out[e.user] = e.n
	}
	return out
}
