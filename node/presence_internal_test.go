package node

import (
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pushd/pushd/contract"
)

// FuzzEncodePresence: presence answers and diffs are valid JSON text
// whatever the IDs hold, and a diff after since carries only the changes
// after it.
func FuzzEncodePresence(f *testing.F) {
	f.Add("doc", "1099511631872", "alice", []byte(`{"name":"A"}`), uint8(0))
	f.Add("d\"oc", "x\xff", "b\u2028ob", []byte(nil), uint8(1))
	f.Fuzz(func(t *testing.T, doc, sid, user string, info []byte, since uint8) {
		if len(info) > 0 && (!json.Valid(info) || !utf8.Valid(info)) {
			info = nil // the node only ever holds checked info
		}
		m := contract.Member{SID: sid, User: user, Node: 3, JoinedAt: time.Unix(1, 2), Info: info}
		page := contract.PresencePage{Doc: doc, Sessions: 2, Users: 1, Members: []contract.Member{m, m}, Next: sid}
		ev := &contract.PresenceEvents{Doc: doc, First: 1, Last: 3, Sessions: 2, Users: 1, Changes: []contract.PresenceChange{
			{Seq: 1, Join: true, Member: m}, {Seq: 2, Member: m, Reason: contract.LeaveLeft}, {Seq: 3, Join: true, Member: m}}}
		frames := []*frame{encodePresence(&page, false, sid), encodePresence(&page, true, ""), encodePresenceDiff(ev, 0)}
		if f := encodePresenceDiff(ev, uint64(since)); since >= 3 && f != nil {
			t.Fatalf("a diff after its last change: %s", f.payload())
		} else if f != nil {
			var got struct{ Events []json.RawMessage }
			if err := json.Unmarshal(f.payload(), &got); err != nil || len(got.Events) != 3-int(since) {
				t.Fatalf("diff after %d: %s (%v)", since, f.payload(), err)
			}
			frames = append(frames, f)
		}
		ev.CountsOnly, ev.Joined, ev.Left = true, 2, 1
		frames = append(frames, encodePresenceDiff(ev, 0))
		for _, f := range frames {
			if !json.Valid(f.payload()) || !utf8.Valid(f.payload()) {
				t.Fatalf("not valid JSON text: %q", f.payload())
			}
			f.release()
		}
	})
}
