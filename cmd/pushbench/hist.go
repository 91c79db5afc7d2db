package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Hist is a concurrent log-linear latency recorder in the spirit of
// HdrHistogram: values (nanoseconds) below 2^subBits are exact, larger ones
// fall into 2^subBits sub-buckets per power of two, so every recorded value is
// kept to within 1/2^subBits (< 0.8%) of itself. It is 64*128 counters (64
// KiB), written with atomic adds, so any goroutine may Record. No dependency:
// the whole thing is the ~100 lines below and what pushbench needs is a
// mergeable, serialisable percentile recorder, which this is.
type Hist struct {
	counts [histBuckets]atomic.Uint64
}

const (
	subBits     = 7
	subCount    = 1 << subBits
	histBuckets = (64 - subBits + 1) * subCount
)

func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	if u < subCount {
		return int(u)
	}
	e := bits.Len64(u) - subBits // >= 1
	return e*subCount + int(u>>uint(e-1)) - subCount
}

// bucketValue is the largest value that falls in bucket i (a conservative
// upper bound used when reading percentiles).
func bucketValue(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	e := i / subCount
	m := uint64(i%subCount + subCount)
	lo := m << uint(e-1)
	return int64(lo + (uint64(1) << uint(e-1)) - 1)
}

// Record adds one value in nanoseconds.
func (h *Hist) Record(ns int64) { h.counts[bucketOf(ns)].Add(1) }

// RecordDuration adds one duration.
func (h *Hist) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Count is the number of values recorded.
func (h *Hist) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Quantile returns the value at quantile q in [0,1] (an upper bound within
// the bucket precision), 0 when empty.
func (h *Hist) Quantile(q float64) int64 {
	total := h.Count()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > total {
		rank = total
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return bucketValue(i)
		}
	}
	return bucketValue(histBuckets - 1)
}

// Max is the largest value recorded (bucket upper bound).
func (h *Hist) Max() int64 {
	for i := histBuckets - 1; i >= 0; i-- {
		if h.counts[i].Load() > 0 {
			return bucketValue(i)
		}
	}
	return 0
}

// Reset clears the histogram.
func (h *Hist) Reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
}

// Sparse is a histogram on the wire: bucket index -> count, non-empty only.
type Sparse map[int]uint64

// Snapshot returns the non-empty buckets.
func (h *Hist) Snapshot() Sparse {
	s := Sparse{}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			s[i] = c
		}
	}
	return s
}

// Merge adds a snapshot into h.
func (h *Hist) Merge(s Sparse) {
	for i, c := range s {
		if i >= 0 && i < histBuckets {
			h.counts[i].Add(c)
		}
	}
}

// Summary is what reports print of a histogram.
type Summary struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func (h *Hist) Summary() Summary {
	ms := func(v int64) float64 { return float64(v) / 1e6 }
	return Summary{Count: h.Count(), P50: ms(h.Quantile(.5)), P90: ms(h.Quantile(.9)), P99: ms(h.Quantile(.99)),
		P999: ms(h.Quantile(.999)), Max: ms(h.Max())}
}
