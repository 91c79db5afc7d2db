package node

import (
	"net/http"
	"time"
)

// Long-polling: GET /http/poll?sid=&secret=&cursor=<c>[&wait=<ms>] returns
// the session's frames after cursor c, as
//
//	{"cursor":"9-4031","frames":[{...},{...}]}
//
// at once when there are some, else as soon as some come, or with no
// frames after wait ms (at most, and by default, ping_interval). The cursor
// of the answer acknowledges them in the next poll: until then they stay in
// the session's log, so an answer lost on the way is answered again, and
// none is answered twice to a client that polls with the cursor it got.
// One poll at a time per session: a new poll replaces a held one, which is
// answered 409 replaced. A session with no poll for ping_timeout ends
// (4002, heartbeat_timeout).

// maxWait bounds the wait parameter before it is capped to ping_interval.
const maxWait = uint64(time.Hour / time.Millisecond)

// servePoll serves GET /http/poll.
func (n *Node) servePoll(w http.ResponseWriter, r *http.Request) {
	sid, secret, ok := n.sessionParams(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	cursorParam := q.Get("cursor")
	cursor, upos, err := parseCursor(cursorParam)
	if err != nil {
		n.httpError(w, http.StatusBadRequest, errBadCursor, "cursor "+quote(cursorParam)+" is not a cursor (send the \"cursor\" of the last poll's answer)")
		return
	}
	wait := n.cfg.PingInterval
	if v := q.Get("wait"); v != "" {
		ms, err := parseDecimal(v)
		if err != nil || ms > maxWait {
			n.httpError(w, http.StatusBadRequest, errBadWait, "wait "+quote(v)+" is not a number of milliseconds")
			return
		}
		wait = min(wait, time.Duration(ms)*time.Millisecond)
	}
	a := n.dispatch(r.Context(), request{Op: reqPull, SID: sid, Secret: secret, Kind: transportPoll, Cursor: cursor, WaitMS: wait.Milliseconds()})
	if a.status != http.StatusOK {
		n.answerError(w, a)
		return
	}
	defer a.done()
	size := 32
	for _, it := range a.items {
		size += len(it.data) + 1
		cursor, upos = it.cursor, it.upos
	}
	b := append(make([]byte, 0, size), `{"cursor":"`...)
	b = append(formatCursor(b, cursor, upos), `","frames":[`...)
	for i, it := range a.items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it.data...)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, "]}\n"...))
}
