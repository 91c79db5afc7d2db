package node

import (
	"log/slog"
	"sync"
	"time"
)

// Refusal logging: at most this many lines per second on average, in bursts
// of up to refusalLogBurst, so a flood of bad handshakes or oversized pushes
// cannot fill the log.
const (
	refusalLogRate  = 5
	refusalLogBurst = 20
)

// rateLog writes info lines about refusals, rate-limited; the first line
// after a quiet spell says how many were left out.
type rateLog struct {
	out        *slog.Logger
	mu         sync.Mutex
	b          bucket
	suppressed int
}

func (r *rateLog) log(msg string, args ...any) {
	r.mu.Lock()
	if !r.b.take(time.Now().UnixNano(), refusalLogRate, refusalLogBurst, 1) {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	if n := r.suppressed; n > 0 {
		r.suppressed = 0
		args = append(args, "suppressed_before", n)
	}
	r.mu.Unlock()
	r.out.Info(msg, args...)
}
