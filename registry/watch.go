package registry

import (
	"context"
	"errors"
	"reflect"
	"time"
)

// watchWait is the blocking-query wait; Consul caps it at 10m and adds
// jitter, and ctx cancellation aborts it early anyway.
const watchWait = 5 * time.Minute

// Watch calls fn with the live instance list (as Nodes returns it) now and
// after every change, using Consul blocking queries, until ctx is done or the
// Registry is closed; then it returns nil. Consul errors are logged and
// retried with backoff. fn runs on the caller's goroutine and delays the
// next query while it runs; it may keep nodes but must not modify them.
func (r *Registry) Watch(ctx context.Context, fn func([]Node)) error {
	if fn == nil {
		return errors.New("pushd: registry: Watch needs a non-nil fn")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.stopCtx, cancel)()

	var (
		index uint64
		last  []Node
		first = true
		bo    = backoff{min: minBackoff, max: maxBackoff}
	)
	for {
		nodes, newIndex, err := listNodes(ctx, r.client, r.cfg.ServiceName, index)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			d := bo.next()
			r.log.Warn("pushd: watching instances failed, retrying", "retry_in", d.Round(time.Millisecond), "err", err.Error())
			if !sleepCtx(ctx, d) {
				return nil
			}
			continue
		}
		bo.reset()
		// An index that goes backwards means Consul lost or reset its state
		// (e.g. restart of a dev agent): start over, as Consul's docs advise.
		if newIndex < index {
			newIndex = 0
		}
		index = max(newIndex, 1) // 0 would make every query non-blocking
		if first || !reflect.DeepEqual(nodes, last) {
			first = false
			last = nodes
			fn(nodes)
		}
	}
}
