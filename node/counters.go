package node

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Counters first, metrics read them: the node counts in plain atomics, which
// Stats (the admin protocol) reads directly and the Prometheus collector
// exports at scrape time.

// counter is one counter, exported as a Prometheus counter.
type counter struct {
	desc *prometheus.Desc
	v    atomic.Uint64
}

func newCounter(name, help string) *counter {
	return &counter{desc: prometheus.NewDesc(name, help, nil, nil)}
}

func (c *counter) inc()                                { c.v.Add(1) }
func (c *counter) add(n uint64)                        { c.v.Add(n) }
func (c *counter) load() uint64                        { return c.v.Load() }
func (c *counter) describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *counter) collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.v.Load()))
}

// counterSet is a counter with one label whose values are known up front:
// one atomic per value, picked by index on hot paths and by name elsewhere.
// Every value is exported from the start, so dashboards see zeros rather
// than missing series.
type counterSet struct {
	desc   *prometheus.Desc
	values []string
	vals   []atomic.Uint64
}

func newCounterSet(name, help, label string, values ...string) *counterSet {
	return &counterSet{
		desc:   prometheus.NewDesc(name, help, []string{label}, nil),
		values: values,
		vals:   make([]atomic.Uint64, len(values)),
	}
}

// incAt counts one for the value at index i.
func (c *counterSet) incAt(i int) { c.vals[i].Add(1) }

// inc counts one for value v. Values are the code's own constants; an
// unknown one is not counted (TestCounterValues checks there are none).
func (c *counterSet) inc(v string) {
	for i, x := range c.values {
		if x == v {
			c.vals[i].Add(1)
			return
		}
	}
}

// get is the count of value v.
func (c *counterSet) get(v string) uint64 {
	for i, x := range c.values {
		if x == v {
			return c.vals[i].Load()
		}
	}
	return 0
}

// sum is the count over every value.
func (c *counterSet) sum() uint64 {
	var t uint64
	for i := range c.vals {
		t += c.vals[i].Load()
	}
	return t
}

func (c *counterSet) describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *counterSet) collect(ch chan<- prometheus.Metric) {
	for i, v := range c.values {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.vals[i].Load()), v)
	}
}
