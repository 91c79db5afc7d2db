package contract

import (
	"strings"
	"testing"
)

func TestValidateID(t *testing.T) {
	for _, ok := range []string{"a", "alice", "alice@example.com", "file.txt", "acme.team.7", "team-7/doc_1",
		"A~!@#$%^&()[]{}", "café", "ユーザー", strings.Repeat("x", 128)} {
		if err := ValidateID(ok); err != nil {
			t.Errorf("ValidateID(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", ".a", "a.", "a..b", "*", "a.*", ">", "a.>", "a*b", "a b", "a\tb", "a\x00",
		"a\u00a0b", "a\u2028b", "a\x7f", "\xff", strings.Repeat("x", 129), strings.Repeat("x", 10<<10)} {
		if err := ValidateID(bad); err == nil {
			t.Errorf("ValidateID(%q) = nil, want an error", bad)
		}
	}
}

// TestValidateIDErrorKeepsNonASCII: the reason names the offending character
// as the user typed it, not as a mangled byte.
func TestValidateIDErrorKeepsNonASCII(t *testing.T) {
	for id, want := range map[string]string{"naïve>x": `'>' at byte 6`, "été x": `'\u00a0' at byte 5`, "日本	": `'\t' at byte 6`} {
		err := ValidateID(id)
		if err == nil || !strings.Contains(err.Error(), want) || strings.ContainsRune(err.Error(), '\uFFFD') {
			t.Errorf("ValidateID(%q) = %v, want it to name %s", id, err, want)
		}
	}
}
