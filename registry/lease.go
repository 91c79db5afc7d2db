package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// errLeaseGone means Consul says the lease is no longer ours (session
// invalidated, or the key held by someone else). Unlike a network error it
// ends the lease at once instead of at the local deadline.
var errLeaseGone = errors.New("pushd: node ID lease gone")

// errHeldByOther means Consul answered that another session holds the key:
// the registry's state becomes StateTaken. Without it a lost lease is
// StateLost (Consul unreachable, or the key free or in its lock delay).
var errHeldByOther = errors.New("held by another session")

// lease is a held (or, in run, possibly lost) node-ID lock.
type lease struct {
	id      int
	session string
	// renewed is when the last successful create/renew request was sent.
	// Consul's own TTL clock starts later than this, so expiring locally at
	// renewed+SessionTTL is always earlier than Consul (which allows 2*TTL).
	renewed time.Time
}

func (l lease) deadline(ttl time.Duration) time.Time { return l.renewed.Add(ttl) }

// keyValue is the JSON stored in a node-ID key, for operators and error
// messages; ownership itself is the key's session.
type keyValue struct {
	NodeName string    `json:"node_name"`
	Address  string    `json:"address,omitempty"`
	Port     int       `json:"port,omitempty"`
	Time     time.Time `json:"time"`
}

func (r *Registry) key(id int) string { return r.cfg.KeyPrefix + strconv.Itoa(id) }

func (r *Registry) nameKey() string {
	return r.cfg.namePrefix() + url.PathEscape(r.cfg.NodeName)
}

func wo(ctx context.Context) *api.WriteOptions { return (&api.WriteOptions{}).WithContext(ctx) }
func qo(ctx context.Context) *api.QueryOptions { return (&api.QueryOptions{}).WithContext(ctx) }

// parseID accepts only the canonical decimal form so "007" or "names/x"
// under the prefix are never mistaken for an ID.
func parseID(s string, maxID int) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxID || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}

func (r *Registry) createSession(ctx context.Context) (string, error) {
	se := &api.SessionEntry{
		Name:      "pushd node " + r.cfg.NodeName,
		TTL:       r.cfg.SessionTTL.String(),
		Behavior:  api.SessionBehaviorDelete,
		LockDelay: r.cfg.LockDelay,
	}
	id, _, err := r.client.Session().Create(se, wo(ctx))
	if err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	return id, nil
}

func (r *Registry) destroySession(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if _, err := r.client.Session().Destroy(id, wo(ctx)); err != nil {
		return fmt.Errorf("pushd: registry: destroy session %s: %w", id, err)
	}
	return nil
}

func (r *Registry) tryAcquire(ctx context.Context, session string, id int) (bool, error) {
	val, err := json.Marshal(keyValue{
		NodeName: r.cfg.NodeName, Address: r.cfg.Address, Port: r.cfg.Port, Time: time.Now().UTC(),
	})
	if err != nil {
		return false, err
	}
	ok, _, err := r.client.KV().Acquire(&api.KVPair{Key: r.key(id), Value: val, Session: session}, wo(ctx))
	if err != nil {
		return false, fmt.Errorf("acquire %s: %w", r.key(id), err)
	}
	return ok, nil
}

// takenError explains why id could not be acquired.
func (r *Registry) takenError(ctx context.Context, id int) error {
	p, _, err := r.client.KV().Get(r.key(id), qo(ctx))
	switch {
	case err != nil:
		return fmt.Errorf("%w: node ID %d could not be acquired (%v)", ErrNodeIDTaken, id, err)
	case p != nil && p.Session != "":
		var v keyValue
		_ = json.Unmarshal(p.Value, &v)
		return fmt.Errorf("%w: node ID %d is %w: node %q (session %s); pick another ID or use -1 for automatic",
			ErrNodeIDTaken, id, errHeldByOther, v.NodeName, p.Session)
	default:
		return fmt.Errorf("%w: node ID %d was released by a failed node less than the lock delay ago; retry shortly",
			ErrNodeIDTaken, id)
	}
}

// acquireInitial creates a session and leases the configured or a free ID.
func (r *Registry) acquireInitial(ctx context.Context) (lease, error) {
	start := time.Now()
	sess, err := r.createSession(ctx)
	if err != nil {
		return lease{}, err
	}
	l := lease{id: r.cfg.NodeID, session: sess, renewed: start}
	remember := true
	if r.cfg.NodeID >= 0 {
		ok, err := r.tryAcquire(ctx, sess, r.cfg.NodeID)
		if err == nil && !ok {
			err = r.takenError(ctx, r.cfg.NodeID)
		}
		if err != nil {
			_ = r.destroySession(ctx, sess)
			return lease{}, err
		}
	} else if l.id, remember, err = r.acquireAuto(ctx, sess); err != nil {
		_ = r.destroySession(ctx, sess)
		return lease{}, err
	}
	if !remember {
		r.log.Info("node name's usual ID is still held by its previous run; using another until it is free", "node_id", l.id)
	} else if err := r.rememberName(ctx, l.id); err != nil {
		// Only costs the ID preference on the next restart.
		r.log.Warn("pushd: could not record node name for ID reuse", "node_id", l.id, "err", err.Error())
	}
	return l, nil
}

// acquireAuto takes the ID this node name held last if free, else the lowest
// free one. Keys can change under us (other nodes starting at the same
// time, lock delays), so every candidate is confirmed by an atomic acquire.
//
// remember says whether the ID taken should become the name's usual one. It
// should not when the usual one is only out of reach because this name's
// previous run still holds it (a restart faster than the session TTL) or it
// is in its lock delay: the next restart must get it back.
func (r *Registry) acquireAuto(ctx context.Context, sess string) (id int, remember bool, err error) {
	pairs, _, err := r.client.KV().List(r.cfg.KeyPrefix, qo(ctx))
	if err != nil {
		return -1, false, fmt.Errorf("list %s: %w", r.cfg.KeyPrefix, err)
	}
	held := make(map[int]string, len(pairs)) // ID -> holder's node name
	for _, p := range pairs {
		if n, ok := parseID(strings.TrimPrefix(p.Key, r.cfg.KeyPrefix), r.cfg.MaxNodeID); ok && p.Session != "" {
			var v keyValue
			_ = json.Unmarshal(p.Value, &v)
			held[n] = v.NodeName
		}
	}
	usual := -1
	if p, _, err := r.client.KV().Get(r.nameKey(), qo(ctx)); err != nil {
		return -1, false, fmt.Errorf("get %s: %w", r.nameKey(), err)
	} else if p != nil {
		if n, ok := parseID(string(p.Value), r.cfg.MaxNodeID); ok {
			usual = n
		}
	}
	holder, usualHeld := held[usual]
	try := func(n int) (bool, error) { return r.tryAcquire(ctx, sess, n) }
	if usual >= 0 && !usualHeld {
		if ok, err := try(usual); err != nil || ok {
			return usual, true, err
		}
	}
	// Another ID: it becomes the usual one only if there was none, or
	// another node name holds the usual one now.
	remember = usual < 0 || (usualHeld && holder != r.cfg.NodeName)
	for n := 0; n <= r.cfg.MaxNodeID; n++ {
		if _, h := held[n]; h || n == usual {
			continue
		}
		if ok, err := try(n); err != nil || ok {
			return n, remember, err
		}
	}
	return -1, false, fmt.Errorf("%w: all %d IDs are held or in lock delay", ErrNoFreeNodeID, r.cfg.MaxNodeID+1)
}

func (r *Registry) rememberName(ctx context.Context, id int) error {
	_, err := r.client.KV().Put(&api.KVPair{Key: r.nameKey(), Value: []byte(strconv.Itoa(id))}, wo(ctx))
	return err
}

// keyHeld confirms the key is still locked by l.session. If the key is free
// (e.g. deleted by an operator) it re-locks it with the same session, which
// is atomic and so safe.
func (r *Registry) keyHeld(ctx context.Context, l *lease) error {
	p, _, err := r.client.KV().Get(r.key(l.id), qo(ctx))
	if err != nil {
		return fmt.Errorf("get %s: %w", r.key(l.id), err)
	}
	if p != nil && p.Session == l.session {
		return nil
	}
	ok, err := r.tryAcquire(ctx, l.session, l.id)
	if err != nil {
		return err
	}
	if !ok {
		if p != nil && p.Session != "" && p.Session != l.session {
			return fmt.Errorf("%w: key %s is %w %s", errLeaseGone, r.key(l.id), errHeldByOther, p.Session)
		}
		return fmt.Errorf("%w: key %s is no longer held by session %s", errLeaseGone, r.key(l.id), l.session)
	}
	return nil
}

// renew renews the session and confirms the key. Each call is bounded by the
// next renew time and the lease deadline so a hung request cannot delay
// declaring the lease lost.
func (r *Registry) renew(ctx context.Context, l *lease) error {
	start := time.Now()
	ctx, cancel := context.WithDeadline(ctx,
		minTime(start.Add(r.cfg.SessionTTL/3), l.deadline(r.cfg.SessionTTL)))
	defer cancel()
	entry, _, err := r.client.Session().Renew(l.session, wo(ctx))
	if err != nil {
		return fmt.Errorf("renew session: %w", err)
	}
	if entry == nil {
		return fmt.Errorf("%w: session %s was invalidated by Consul", errLeaseGone, l.session)
	}
	if err := r.keyHeld(ctx, l); err != nil {
		return err
	}
	l.renewed = start
	return nil
}

// reacquire tries to get l.id back after a loss: first by reviving the old
// session (it may have outlived a short outage), else with a new session.
// It never picks a different ID: the node's snowflake generator uses this one.
func (r *Registry) reacquire(ctx context.Context, l *lease) error {
	ctx, cancel := context.WithTimeout(ctx, max(r.cfg.SessionTTL/3, time.Second))
	defer cancel()
	start := time.Now()
	if l.session != "" {
		entry, _, err := r.client.Session().Renew(l.session, wo(ctx))
		if err != nil {
			return fmt.Errorf("renew session: %w", err)
		}
		if entry != nil {
			err = r.keyHeld(ctx, l)
			if err != nil && !errors.Is(err, errLeaseGone) {
				return err
			}
			if err != nil {
				// Our session lives but another holds the key: drop the
				// session (it holds nothing, so no lock delay) and queue up.
				_ = r.destroySession(ctx, l.session)
				l.session = ""
			}
		} else {
			l.session = ""
		}
	}
	if l.session == "" {
		start = time.Now()
		sess, err := r.createSession(ctx)
		if err != nil {
			return err
		}
		ok, err := r.tryAcquire(ctx, sess, l.id)
		if err == nil && !ok {
			err = r.takenError(ctx, l.id)
		}
		if err != nil {
			_ = r.destroySession(ctx, sess)
			return err
		}
		l.session = sess
	}
	l.renewed = start
	// The agent may have restarted and forgotten the service.
	if err := r.register(ctx, l.id); err != nil {
		return fmt.Errorf("register service: %w", err)
	}
	return nil
}

// releaseLease unlocks and deletes the key (no lock delay: this node is done
// with the ID) and destroys the session.
func (r *Registry) releaseLease(ctx context.Context, l lease) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	kv := r.client.KV()
	key := r.key(l.id)
	var errs []error
	if ok, _, err := kv.Release(&api.KVPair{Key: key, Session: l.session}, wo(ctx)); err != nil {
		errs = append(errs, fmt.Errorf("pushd: registry: release %s: %w", key, err))
	} else if ok {
		// Delete only if nobody took it in between.
		if p, _, err := kv.Get(key, qo(ctx)); err == nil && p != nil && p.Session == "" {
			_, _, _ = kv.DeleteCAS(&api.KVPair{Key: key, ModifyIndex: p.ModifyIndex}, wo(ctx))
		}
	}
	if err := r.destroySession(ctx, l.session); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
