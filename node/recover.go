package node

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/pushd/pushd/contract"
)

// Resuming: a client that comes back with the position it last processed
// on a subject (its user's pushes, or a doc's) gets the pushes it missed,
// then the live ones, with no gap and no duplicate at the seam.
//
// While the session resumes a subject, live pushes for that subject are held
// in the session (holdLive): the session is in the subject's index, so
// nothing published from then on escapes it, but nothing is queued either.
// The replay is read (router.Replay: the node's tail of the subject, or the
// history stream), then, in one step under the session's lock, the reply
// (hello or joined), the replayed pushes and the held live pushes after them
// are queued, in that order. The held pushes carry the position of the push
// before each on the subject: if the first one's predecessor is later than
// the replay's end, pushes fell between the two (a replica a little behind,
// say) and are read before anything is queued.

// resumeTimeout bounds reading what a resuming session missed.
const resumeTimeout = 5 * time.Second

// resumeRetryEvery paces the reads of a resume retried after a failure.
const resumeRetryEvery = 200 * time.Millisecond

// seamReads is how many times a gap at the seam is read before giving up
// and telling the client it was not recovered.
const seamReads = 3

// subjectKey names a subject within a session: "u" plus the user for user
// pushes, "d" plus the doc for doc pushes.
func subjectKey(t contract.Target, key string) string {
	if t == contract.TargetDoc {
		return "d" + key
	}
	return "u" + key
}

// held are the live pushes of one subject a resuming session holds back.
// Once released it keeps only the position the client got to (floor):
// a live push stored before the replay read it can still be on its way
// through the router, and is dropped, until the first live push after the
// floor shows the seam is behind.
type held struct {
	frames   []*frame
	bytes    int
	released bool
	floor    uint64
}

// holdLive makes s hold back live pushes of subject until release.
func (s *session) holdLive(subject string) {
	s.mu.Lock()
	if s.holding == nil {
		s.holding = make(map[string]*held)
	}
	s.holding[subject] = &held{}
	s.mu.Unlock()
}

// unhold stops holding subject and drops what was held.
func (s *session) unhold(subject string) {
	s.mu.Lock()
	if h := s.holding[subject]; h != nil {
		for _, f := range h.frames {
			f.release()
		}
		delete(s.holding, subject)
	}
	s.mu.Unlock()
}

// holdLocked takes f if s holds its subject. Lock must be held.
func (s *session) holdLocked(f *frame) bool {
	if len(s.holding) == 0 || f.subject == "" {
		return false
	}
	h := s.holding[f.subject]
	if h == nil {
		return false
	}
	if h.released {
		if f.seq != 0 && f.seq <= h.floor {
			return true // replayed already
		}
		delete(s.holding, f.subject)
		return false
	}
	f.retain()
	h.frames = append(h.frames, f)
	h.bytes += len(f.bytes())
	return true
}

// resume reads what s missed of target and key after since and returns the
// frames to queue, in order (the replayed pushes), where the client stands
// after them, and whether that is everything. It runs on the session's read
// side, once the session is in the subject's index and its subscription is
// in place.
func (n *Node) resume(s *session, t contract.Target, key string, since uint64) (replay []*frame, at resumed, err error) {
	at = resumed{resuming: true}
	s.resumed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), resumeTimeout)
	defer cancel()
	rep, err := n.bus.Replay(ctx, t, key, since)
	// A read that fails while history is on (JetStream electing a stream's
	// leader after a server died, say) is tried again until the resume's
	// time is up: answering recovered:false would tell the client that
	// pushes the streams still hold are lost.
	for err != nil && !errors.Is(err, contract.ErrAheadOfHistory) {
		if _, on := n.bus.Position(t); !on {
			break // history is off: nothing to wait for
		}
		retry := time.NewTimer(resumeRetryEvery)
		select {
		case <-ctx.Done():
		case <-retry.C:
		}
		retry.Stop()
		if ctx.Err() != nil {
			break
		}
		rep, err = n.bus.Replay(ctx, t, key, since)
	}
	switch {
	case errors.Is(err, contract.ErrAheadOfHistory):
		n.metrics.resumes.inc("bad_since")
		return nil, at, err
	case err != nil:
		// History unavailable (or failing): the client must refetch.
		n.metrics.resumes.inc("not_recovered")
		at.position, at.known = n.bus.Position(t)
		return nil, at, nil
	}
	at.known, at.position, at.recovered = true, rep.Position, rep.Recovered
	if !rep.Recovered {
		n.metrics.resumes.inc("not_recovered")
		return nil, at, nil // a partial replay would hide the hole
	}
	for i := range rep.Pushes {
		replay = append(replay, encodePush(&rep.Pushes[i]))
	}
	n.metrics.resumes.inc("recovered")
	n.metrics.replayed.add(uint64(len(replay)))
	return replay, at, nil
}

// release ends holding subject: it queues the reply (built by reply with
// where the client ends up), then replay, then the held live pushes the
// replay does not cover, at the front of the queue when front is set (hello,
// still corked) or at its end. If the held pushes show a gap after
// at.position, it reads the gap first. It takes over the caller's
// references to the replay frames.
func (n *Node) release(s *session, t contract.Target, key string, reply func(resumed) *frame, replay []*frame, at resumed, front bool) {
	subject := subjectKey(t, key)
	for tries := 0; ; tries++ {
		s.mu.Lock()
		h := s.holding[subject]
		gapTo := uint64(0)
		if h != nil && at.recovered {
			for _, f := range h.frames {
				if f.seq > at.position {
					if f.prev > at.position {
						gapTo = f.prev
					}
					break
				}
			}
		}
		if gapTo == 0 || tries == seamReads {
			if gapTo != 0 { // the seam could not be closed: the client must refetch
				at.recovered = false
				n.metrics.resumes.inc("seam_not_closed")
			}
			frames := append(make([]*frame, 0, len(replay)+1), reply(at))
			if s.sink != nil { // an HTTP session's POST answers, the stream gets the pushes
				*s.sink = append(*s.sink, frames[0])
				frames = frames[:0]
			}
			frames = append(frames, replay...)
			if h != nil {
				floor := at.position
				for _, f := range h.frames {
					if f.seq > at.position || f.seq == 0 {
						frames = append(frames, f)
						floor = max(floor, f.seq)
					} else {
						f.release() // replayed already
					}
				}
				*h = held{released: true, floor: floor}
			}
			s.queueAndUnlock(frames, front)
			return
		}
		s.mu.Unlock()
		n.metrics.seamReads.inc()
		ctx, cancel := context.WithTimeout(context.Background(), resumeTimeout)
		gap, err := n.bus.Range(ctx, t, key, at.position, gapTo)
		cancel()
		if err != nil {
			tries = seamReads - 1 // give up on the next round
			continue
		}
		for i := range gap {
			replay = append(replay, encodePush(&gap[i]))
		}
		at.position = gapTo
	}
}

// sinceMessage explains a since that cannot be resumed from.
func sinceMessage(since Position, err error) string {
	if since.Invalid {
		return "since " + quote(since.Bad) + " is not a position: send the seq of the last push processed, a decimal string"
	}
	return "since " + strconv.FormatUint(since.N, 10) + " is ahead of the history: resume from a position this cluster gave you, or join without since"
}
