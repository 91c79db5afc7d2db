package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nats-io/nats.go"
	"github.com/pushd/pushd/internal/pushtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// duplicates records OnDuplicate calls.
type duplicates struct {
	mu    sync.Mutex
	calls []string // "<other instance>/<yield>"; "gone" when cleared
}

func (d *duplicates) record(other Member, yield bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if other.Instance == "" {
		d.calls = append(d.calls, "gone")
		return
	}
	d.calls = append(d.calls, fmt.Sprintf("%s/%v", other.Instance, yield))
}

func (d *duplicates) get() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

func start(t *testing.T, ns *pushtest.NATS, self Member, d *duplicates) *Cluster {
	t.Helper()
	cfg := Config{Conn: ns.Connect(t), Self: self, Interval: 50 * time.Millisecond}
	if d != nil {
		cfg.OnDuplicate = d.record
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(self.Node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestClaimSeesTheLiveHolder(t *testing.T) {
	ns := pushtest.RunNATS(t)
	holder := start(t, ns, Member{Node: 3, Address: "10.0.0.3:8080"}, nil)
	c, err := New(Config{Conn: ns.Connect(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Claim(context.Background(), 3)
	if !errors.Is(err, ErrNumberTaken) || !strings.Contains(err.Error(), holder.Self().Instance) || !strings.Contains(err.Error(), "10.0.0.3:8080") {
		t.Fatalf("claiming a held number: %v, want ErrNumberTaken naming the holder", err)
	}
	if err := c.Claim(context.Background(), 4); err != nil {
		t.Fatalf("claiming a free number: %v", err)
	}
	start(t, ns, Member{Node: 0}, nil)
	if n, err := c.FirstFree(context.Background(), 1023); err != nil || n != 1 {
		t.Fatalf("FirstFree = %d, %v; want 1 (0 and 3 are held)", n, err)
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Claim(context.Background(), 3); err != nil {
		t.Fatalf("claiming a number whose holder closed: %v", err)
	}
}

// TestDuplicateIsSeenAndTheYoungerYields: two nodes that both skipped the
// claim (started at once) find out from each other's heartbeats; the younger
// is told to yield, the older not, and both hear when the other is gone.
func TestDuplicateIsSeenAndTheYoungerYields(t *testing.T) {
	ns := pushtest.RunNATS(t)
	var oldD, youngD duplicates
	now := time.Now()
	old := start(t, ns, Member{Node: 5, StartedAt: now.Add(-time.Minute)}, &oldD)
	young := start(t, ns, Member{Node: 5, StartedAt: now}, &youngD)
	other := start(t, ns, Member{Node: 6}, nil)
	pushtest.Eventually(t, 5*time.Second, func() error {
		if got, want := oldD.get(), []string{young.Self().Instance + "/false"}; !slices.Equal(got, want) {
			return fmt.Errorf("older node's calls %v, want %v", got, want)
		}
		if got, want := youngD.get(), []string{old.Self().Instance + "/true"}; !slices.Equal(got, want) {
			return fmt.Errorf("younger node's calls %v, want %v", got, want)
		}
		return nil
	})
	if d, ok := old.Duplicate(); !ok || d.Instance != young.Self().Instance {
		t.Fatalf("Duplicate() = %+v, %v", d, ok)
	}
	pushtest.Eventually(t, 5*time.Second, func() error {
		if got := other.Nodes(); !slices.Equal(got, []int64{5, 6}) {
			return fmt.Errorf("Nodes() = %v, want [5 6]", got)
		}
		if got := len(other.Members()); got != 3 {
			return fmt.Errorf("%d members, want 3 (two share number 5)", got)
		}
		return nil
	})
	if err := young.Close(); err != nil {
		t.Fatal(err)
	}
	pushtest.Eventually(t, 5*time.Second, func() error {
		if got := oldD.get(); len(got) != 2 || got[1] != "gone" {
			return fmt.Errorf("older node's calls %v, want the duplicate gone", got)
		}
		if got := other.Nodes(); !slices.Equal(got, []int64{5, 6}) || len(other.Members()) != 2 {
			return fmt.Errorf("Nodes() = %v with %d members after the younger left", got, len(other.Members()))
		}
		return nil
	})
	if _, ok := old.Duplicate(); ok {
		t.Fatal("duplicate still reported after the other node left")
	}
}

// TestClaimIsNotFooledByAWildcardSubscriber: a debugging `nats sub '>'` hears
// every claim and answers none (or answers junk); the claim of a free
// number still succeeds, and a held one is still refused.
func TestClaimIsNotFooledByAWildcardSubscriber(t *testing.T) {
	ns := pushtest.RunNATS(t)
	spy := ns.Connect(t)
	if _, err := spy.Subscribe(">", func(m *nats.Msg) {
		if m.Reply != "" && strings.HasSuffix(m.Subject, ".9") {
			_ = m.Respond([]byte("not a pushd node"))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	start(t, ns, Member{Node: 9}, nil)
	c, err := New(Config{Conn: ns.Connect(t), ClaimTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Claim(context.Background(), 8); err != nil {
		t.Fatalf("claiming a free number with a '>' subscriber around: %v", err)
	}
	if err := c.Claim(context.Background(), 9); !errors.Is(err, ErrNumberTaken) {
		t.Fatalf("claiming a held number with a junk answer around: %v", err)
	}
}
