package node

import (
	"hash/maphash"
	"slices"
	"sync"
)

const shardCount = defaultSessionShardCount

var hashSeed = maphash.MakeSeed()

func shardOf(key string) int { return int(maphash.String(hashSeed, key) % shardCount) }

// sessionShard holds a slice of all sessions, keyed by session ID.
type sessionShard struct {
	mu sync.RWMutex
	m  map[int64]*session
}

// indexShard maps a user or doc ID to the sessions that hold it.
type indexShard struct {
	mu sync.RWMutex
	m  map[string][]*session
}

// index is a sharded key -> sessions map. The first session added under a
// key and the last removed call hold and release, under the shard lock, so
// the bus sees subscribe and unsubscribe for one key in order.
type index struct {
	shards [shardCount]indexShard
}

func (ix *index) init() {
	for i := range ix.shards {
		ix.shards[i].m = make(map[string][]*session)
	}
}

// add puts s under key. hold runs, under the shard lock, when key had no
// session before; if it fails, nothing is added.
func (ix *index) add(key string, s *session, hold func() error) (first bool, err error) {
	sh := &ix.shards[shardOf(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	list, ok := sh.m[key]
	if !ok {
		if err := hold(); err != nil {
			return false, err
		}
	}
	sh.m[key] = append(list, s)
	return !ok, nil
}

// remove takes s from key; release runs under the shard lock when it was the
// last one.
func (ix *index) remove(key string, s *session, release func()) (last bool) {
	sh := &ix.shards[shardOf(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	list := sh.m[key]
	i := slices.Index(list, s)
	if i < 0 {
		return false
	}
	list[i] = list[len(list)-1]
	list[len(list)-1] = nil
	list = list[:len(list)-1]
	if len(list) == 0 {
		delete(sh.m, key)
		release()
		return true
	}
	sh.m[key] = list
	return false
}

// each calls fn for every session under key, under the shard's read lock. fn
// must not block.
func (ix *index) each(key string, fn func(*session)) {
	sh := &ix.shards[shardOf(key)]
	sh.mu.RLock()
	for _, s := range sh.m[key] {
		fn(s)
	}
	sh.mu.RUnlock()
}

// sessions returns a copy of the sessions under key.
func (ix *index) sessions(key string) []*session {
	sh := &ix.shards[shardOf(key)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return slices.Clone(sh.m[key])
}

// len counts the keys.
func (ix *index) len() int {
	n := 0
	for i := range ix.shards {
		sh := &ix.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// hub is the node's registry of sessions with indexes by user and doc.
type hub struct {
	sessions [shardCount]sessionShard
	users    index
	docs     index
}

func newHub() *hub {
	h := &hub{}
	for i := range h.sessions {
		h.sessions[i].m = make(map[int64]*session)
	}
	h.users.init()
	h.docs.init()
	return h
}

func (h *hub) sessionShard(id int64) *sessionShard {
	return &h.sessions[uint64(id)%shardCount]
}

func (h *hub) addSession(s *session) {
	sh := h.sessionShard(s.id)
	sh.mu.Lock()
	sh.m[s.id] = s
	sh.mu.Unlock()
}

func (h *hub) removeSession(s *session) {
	sh := h.sessionShard(s.id)
	sh.mu.Lock()
	delete(sh.m, s.id)
	sh.mu.Unlock()
}

func (h *hub) session(id int64) *session {
	sh := h.sessionShard(id)
	sh.mu.RLock()
	s := sh.m[id]
	sh.mu.RUnlock()
	return s
}

// each calls fn for every session, one shard at a time under its read lock.
func (h *hub) each(fn func(*session) bool) {
	for i := range h.sessions {
		sh := &h.sessions[i]
		sh.mu.RLock()
		for _, s := range sh.m {
			if !fn(s) {
				sh.mu.RUnlock()
				return
			}
		}
		sh.mu.RUnlock()
	}
}

// all returns every session.
func (h *hub) all() []*session {
	var out []*session
	h.each(func(s *session) bool { out = append(out, s); return true })
	return out
}

func (h *hub) count() int {
	n := 0
	for i := range h.sessions {
		sh := &h.sessions[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}
