package contract

import (
	"strconv"
	"testing"

	"github.com/bwmarrin/snowflake"
)

func TestSubjectsRoundTrip(t *testing.T) {
	s := NewSubjects("")
	for _, tc := range []struct {
		target       Target
		key, subject string
	}{
		{TargetUser, "alice", "push.user.alice"},
		{TargetDoc, "team-7/d", "push.doc.team-7/d"},
		{TargetDoc, "acme.team.7", "push.doc.acme.team.7"},
		{TargetUser, "alice@example.com", "push.user.alice@example.com"},
		{TargetSession, "1862263214372491264", "push.session.817.1862263214372491264"},
		{TargetAll, "", "push.all"},
	} {
		if got := s.For(tc.target, tc.key); got != tc.subject {
			t.Errorf("For(%s,%s) = %s, want %s", tc.target, tc.key, got, tc.subject)
		}
		target, key, ok := s.Parse(tc.subject)
		if !ok || target != tc.target || key != tc.key {
			t.Errorf("Parse(%s) = %s,%s,%v", tc.subject, target, key, ok)
		}
	}
	for _, bad := range []string{"push", "push.", "pushx.user.a", "push.user", "push.user.", "push.admin.nodes", "push.up.doc.d", "other.user.a",
		"push.session.123", "push.session.3."} {
		if _, _, ok := s.Parse(bad); ok {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if got := NewSubjects("acme.push").Upstream("d"); got != "acme.push.up.doc.d" {
		t.Errorf("Upstream with prefix = %s", got)
	}
}

func TestParseTimestampUnits(t *testing.T) {
	const ns = int64(1_795_000_000_123_456_789)
	for in, want := range map[string]int64{
		"1795000000123456789": ns,
		"1795000000123456":    ns / 1e3 * 1e3,
		"1795000000123":       ns / 1e6 * 1e6,
		"":                    0,
		"-5":                  0,
		"soon":                0,
	} {
		if got := ParseTimestamp(in); got != want {
			t.Errorf("ParseTimestamp(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestSessionSubjectCarriesTheNode checks that a session's subject names the
// node that minted its ID, which is the one node subscribed to it.
func TestSessionSubjectCarriesTheNode(t *testing.T) {
	s := NewSubjects("")
	for _, node := range []int64{0, 1, 7, 1023} {
		gen, err := snowflake.NewNode(node)
		if err != nil {
			t.Fatal(err)
		}
		sid := gen.Generate().String()
		if got := SessionNode(sid); got != node {
			t.Fatalf("SessionNode(%s) = %d, want %d", sid, got, node)
		}
		want := "push.session." + strconv.FormatInt(node, 10) + "." + sid
		if got := s.Session(sid); got != want {
			t.Fatalf("Session(%s) = %s, want %s", sid, got, want)
		}
		if kind, key, ok := s.Parse(want); !ok || kind != TargetSession || key != sid {
			t.Fatalf("Parse(%s) = %s, %s, %v", want, kind, key, ok)
		}
		if got, wild := s.NodeSessions(node), "push.session."+strconv.FormatInt(node, 10)+".*"; got != wild {
			t.Fatalf("NodeSessions(%d) = %s", node, got)
		}
	}
	for _, bad := range []string{"", "abc", "-5", "0", "1.5"} {
		if got := SessionNode(bad); got != -1 {
			t.Fatalf("SessionNode(%q) = %d, want -1", bad, got)
		}
	}
}
