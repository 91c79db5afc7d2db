package chaos

import (
	"strings"
	"testing"
)

// TestHarness: outside go test, Fatal ends Run with its message, Errorf
// is collected, and cleanups run last first, also after a Fatal.
func TestHarness(t *testing.T) {
	var order []string
	var logs []string
	h := NewHarness(func(f string, a ...any) { logs = append(logs, f) })
	err := h.Run(func(tb testing.TB) {
		tb.Cleanup(func() { order = append(order, "first") })
		tb.Cleanup(func() { order = append(order, "second") })
		tb.Errorf("soft %d", 1)
		tb.Fatal("hard")
		order = append(order, "after Fatal")
	})
	if err == nil || !strings.Contains(err.Error(), "soft 1") || !strings.Contains(err.Error(), "hard") {
		t.Fatalf("Run: %v, want both failures", err)
	}
	if strings.Join(order, ",") != "second,first" {
		t.Fatalf("order %v, want the cleanups last first and nothing after Fatal", order)
	}
	if !h.Failed() {
		t.Fatal("not Failed")
	}
	dir := ""
	if err := NewHarness(t.Logf).Run(func(tb testing.TB) { dir = tb.TempDir() }); err != nil || dir == "" {
		t.Fatalf("Run: %v, dir %q", err, dir)
	}
}
