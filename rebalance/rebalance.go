package rebalance

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushd/pushd/cluster"
)

// Defaults for Config fields left at zero.
const (
	// DefaultRatio and DefaultMinExcess: a node sheds on its own once it
	// holds more than 1.2 times the average AND more than the average plus
	// 100 sessions. The ratio keeps big clusters from churning over noise
	// (a 20% imbalance is worth moving clients for, 5% is not); the
	// absolute margin keeps small ones still (40 against an average of 30
	// is not worth a reconnect).
	DefaultRatio     = 1.2
	DefaultMinExcess = 100
	// DefaultFraction and DefaultRate bound how fast: at most 1% of the
	// node's sessions a second, and at most 100 a second, whichever is
	// smaller, and never more than the excess. 100/s is about what a node
	// takes in handshakes without notice; a restarted node in a cluster of
	// three 30,000-session nodes (45,000/45,000/0) gets its share in about
	// two and a half minutes (each full node sheds 15,000 at 100/s).
	DefaultFraction = 0.01
	DefaultRate     = 100
	// DefaultInterval is how often the node looks (the heartbeat period).
	DefaultInterval = time.Second
)

// Triggers of a shed, as counted by pushd_rebalance_closed_total.
const (
	TriggerAuto  = "auto"
	TriggerAdmin = "admin"
)

// Node is what a Rebalancer needs from the node; *node.Node implements it.
type Node interface {
	// Shed closes up to count sessions with 1012 so they reconnect
	// elsewhere (none when dryRun) and returns the ones it picked.
	Shed(count int, dryRun bool) []string
}

// Cluster is what a Rebalancer needs from the cluster view;
// *cluster.Cluster implements it.
type Cluster interface {
	Self() cluster.Member
	Members() []cluster.Member
	Watching() bool
}

// Config configures a Rebalancer.
type Config struct {
	// Node sheds sessions. Required.
	Node Node
	// Cluster tells the load of every live node (heartbeats carrying
	// cluster.Load). Required.
	Cluster Cluster
	// Off turns automatic shedding off; Shed (pushctl rebalance) still
	// works.
	Off bool
	// Ratio and MinExcess are when a node sheds on its own (Band). Zero
	// means DefaultRatio (at least 1.01) and DefaultMinExcess; a negative
	// MinExcess means 0.
	Ratio     float64
	MinExcess int
	// Fraction is the largest share of the node's sessions shed a second;
	// zero means DefaultFraction. Rate is the most sessions shed a second;
	// zero means DefaultRate.
	Fraction float64
	Rate     float64
	// Interval is how often the node looks. Zero means DefaultInterval.
	Interval time.Duration
	// Logger receives the logs. Nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics. Nil means they are not registered.
	Registerer prometheus.Registerer
}

// Rebalancer sheds this node's sessions while it holds well above the
// cluster's average. Create it with New, Start it and Close it.
type Rebalancer struct {
	cfg    Config
	band   Band
	log    *slog.Logger
	closed *prometheus.CounterVec

	mu      sync.Mutex
	view    View    // the last one seen
	active  bool    // shedding on its own
	budget  float64 // sessions it may shed now (the rate bound)
	last    time.Time
	started bool

	stop chan struct{}
	done sync.WaitGroup
}

// New returns a Rebalancer for cfg.
func New(cfg Config) (*Rebalancer, error) {
	if cfg.Node == nil || cfg.Cluster == nil {
		return nil, errors.New("pushd: rebalancer needs a Node and a Cluster")
	}
	if cfg.Ratio == 0 {
		cfg.Ratio = DefaultRatio
	}
	cfg.Ratio = math.Max(cfg.Ratio, 1.01)
	switch {
	case cfg.MinExcess == 0:
		cfg.MinExcess = DefaultMinExcess
	case cfg.MinExcess < 0:
		cfg.MinExcess = 0
	}
	if cfg.Fraction <= 0 {
		cfg.Fraction = DefaultFraction
	}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Rebalancer{
		cfg:  cfg,
		band: Band{Ratio: cfg.Ratio, MinExcess: cfg.MinExcess},
		log:  cfg.Logger,
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushd_rebalance_closed_total",
			Help: "Sessions this node asked to reconnect elsewhere to even the cluster's load, by trigger (auto: on its own; admin: pushctl rebalance)."},
			[]string{"trigger"}),
		stop: make(chan struct{}),
	}
	r.closed.WithLabelValues(TriggerAuto)
	r.closed.WithLabelValues(TriggerAdmin)
	if reg := cfg.Registerer; reg != nil {
		for _, c := range []prometheus.Collector{
			r.closed,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushd_cluster_average_sessions",
				Help: "Sessions per node that accepts them, from the live nodes' heartbeats: what each would hold if the cluster were even."},
				func() float64 { return r.look().Average }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushd_rebalance_shedding",
				Help: "1 while this node sheds sessions on its own: it holds well above the cluster's average."},
				func() float64 {
					r.mu.Lock()
					defer r.mu.Unlock()
					if r.active {
						return 1
					}
					return 0
				}),
		} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("pushd: rebalance metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Start runs the automatic shedding until Close (nothing with Config.Off).
func (r *Rebalancer) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.cfg.Off {
		return
	}
	r.started = true
	r.done.Add(1)
	go r.run()
}

// Close stops the automatic shedding and waits for it.
func (r *Rebalancer) Close() {
	r.mu.Lock()
	started := r.started
	r.started = false
	r.mu.Unlock()
	if started {
		close(r.stop)
		r.done.Wait()
	}
}

func (r *Rebalancer) run() {
	defer r.done.Done()
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			r.step(now)
		}
	}
}

// look computes the view now and remembers it.
func (r *Rebalancer) look() View {
	c := r.cfg.Cluster
	v := See(c.Self().Instance, c.Members(), c.Watching())
	r.mu.Lock()
	r.view = v
	r.mu.Unlock()
	return v
}

// View is the cluster's load as this node last saw it.
func (r *Rebalancer) View() View {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.view
}

// step sheds what the band and the rate allow at now.
func (r *Rebalancer) step(now time.Time) {
	v := r.look()
	r.mu.Lock()
	excess, shedding := r.band.Excess(v, r.active)
	if shedding != r.active {
		if shedding {
			r.log.Info("rebalancing: this node holds well above the cluster's average; asking sessions to reconnect elsewhere",
				"sessions", v.Sessions, "average", math.Round(v.Average), "nodes_accepting", v.Accepting)
		} else {
			r.log.Info("rebalancing: this node is within the band; no more sessions are asked to move",
				"sessions", v.Sessions, "average", math.Round(v.Average), "why", v.Why)
		}
		r.active = shedding
	}
	if !shedding {
		r.budget, r.last = 0, time.Time{}
		r.mu.Unlock()
		return
	}
	perSec := math.Min(r.cfg.Fraction*float64(v.Sessions), r.cfg.Rate)
	dt := r.cfg.Interval
	if !r.last.IsZero() {
		dt = now.Sub(r.last)
	}
	r.last = now
	// At most a second's worth saved up, and at least one session a
	// second: 1% of a small node would otherwise never round up.
	r.budget = math.Min(r.budget+perSec*dt.Seconds(), math.Max(perSec, 1))
	k := min(excess, int(r.budget))
	r.budget -= float64(k)
	r.mu.Unlock()
	if k > 0 {
		shed := r.cfg.Node.Shed(k, false)
		r.closed.WithLabelValues(TriggerAuto).Add(float64(len(shed)))
	}
}

// Request is an operator's request to shed now: Count sessions, or with
// ToAverage what the node holds above the cluster's average.
type Request struct {
	Count     int
	ToAverage bool
	DryRun    bool
}

// Result is what a node shed (or, with DryRun, would shed).
type Result struct {
	// View is the cluster's load as the node saw it before shedding.
	View View
	// SIDs are the sessions shed (or picked, with DryRun).
	SIDs []string
}

// ErrUnknownAverage is returned for ToAverage while the node cannot tell
// the cluster's average (View.Why says why).
var ErrUnknownAverage = errors.New("cannot tell the cluster's average")

// Shed sheds now, at once, whatever the band and the rate say (a large
// batch is still spread by the node at 1,000 a second).
func (r *Rebalancer) Shed(req Request) (Result, error) {
	v := r.look()
	res := Result{View: v, SIDs: []string{}}
	count := req.Count
	if req.ToAverage {
		if !v.Known {
			return res, fmt.Errorf("%w: %s", ErrUnknownAverage, v.Why)
		}
		count = ToAverage(v)
	}
	if count <= 0 {
		return res, nil
	}
	res.SIDs = r.cfg.Node.Shed(count, req.DryRun)
	if !req.DryRun {
		r.closed.WithLabelValues(TriggerAdmin).Add(float64(len(res.SIDs)))
		r.log.Info("rebalancing: asked by an admin", "shed", len(res.SIDs), "sessions", v.Sessions, "average", math.Round(v.Average))
	}
	return res, nil
}
