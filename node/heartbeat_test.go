package node

import (
	"testing"
	"time"
)

func TestHeartbeatIntervalRisesAndFallsBack(t *testing.T) {
	n := &Node{cfg: Config{PingInterval: 10 * time.Second, PingIntervalMax: 40 * time.Second, HealthyPings: 3, PingGrace: 4 * time.Second}}
	n.cfg.setDefaults()
	n.metrics = newMetrics(n)
	s := &session{}
	s.interval.Store(int64(n.cfg.PingInterval))
	now := time.Unix(1_000_000, 0)
	s.lastBeat = now.UnixNano()
	beat := func(after time.Duration) time.Duration {
		now = now.Add(after)
		return n.heartbeat(s, now.UnixNano())
	}
	// On-time beats: +10s after every 3, up to 40s.
	var got []time.Duration
	for range 12 {
		got = append(got, beat(time.Duration(s.interval.Load())))
	}
	want := []time.Duration{10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40, 40}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("intervals %v, want %v (seconds)", got, want)
		}
	}
	// Within interval+grace/2 is still on time.
	if iv := beat(40*time.Second + 2*time.Second); iv != 40*time.Second {
		t.Fatalf("beat at the edge of grace/2: interval %v, want 40s", iv)
	}
	// Later than that is a miss: back to the base.
	if iv := beat(40*time.Second + 2*time.Second + time.Millisecond); iv != 10*time.Second {
		t.Fatalf("late beat: interval %v, want 10s", iv)
	}
	// And it must earn its way up again.
	if iv := beat(time.Second); iv != 10*time.Second {
		t.Fatalf("first beat after a miss: %v, want 10s", iv)
	}
}
