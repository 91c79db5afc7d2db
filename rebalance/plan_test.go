package rebalance

import (
	"testing"

	"github.com/pushd/pushd/cluster"
)

func member(instance string, sessions int, accepting bool) cluster.Member {
	return cluster.Member{Instance: instance, Load: &cluster.Load{Sessions: sessions, Accepting: accepting}}
}

// TestSee: the average counts every reported session over the nodes that
// accept; a draining node is no target but its sessions count; a node
// reporting no load is left out; the view is unknown when this node is not
// watching, does not accept, or is alone.
func TestSee(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []cluster.Member
		watch   bool
		want    View
	}{
		{"even", []cluster.Member{member("a", 100, true), member("b", 50, true)}, true,
			View{Sessions: 100, Average: 75, Accepting: 2, Known: true}},
		{"a draining peer's sessions land on the others", []cluster.Member{member("a", 100, true), member("b", 0, true), member("c", 60, false)}, true,
			View{Sessions: 100, Average: 80, Accepting: 2, Known: true}},
		{"a peer without load is left out", []cluster.Member{member("a", 100, true), member("b", 0, true), {Instance: "old"}}, true,
			View{Sessions: 100, Average: 50, Accepting: 2, Known: true}},
		{"not watching", []cluster.Member{member("a", 100, true), member("b", 0, true)}, false,
			View{Sessions: 100, Average: 50, Accepting: 2, Why: WhyNotWatching}},
		{"draining itself", []cluster.Member{member("a", 100, false), member("b", 0, true)}, true,
			View{Sessions: 100, Average: 100, Accepting: 1, Why: WhyNotAccepting}},
		{"alone", []cluster.Member{member("a", 100, true), member("b", 10, false)}, true,
			View{Sessions: 100, Average: 110, Accepting: 1, Why: WhyAlone}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := See("a", tc.members, tc.watch); got != tc.want {
				t.Fatalf("See = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestBand: shedding starts only above both the ratio and the margin, goes
// on down to the average (hysteresis), never below it, and not at all in
// an unknown view.
func TestBand(t *testing.T) {
	b := Band{Ratio: 1.2, MinExcess: 100}
	v := func(s int, avg float64) View { return View{Sessions: s, Average: avg, Accepting: 2, Known: true} }
	for _, tc := range []struct {
		name     string
		view     View
		active   bool
		excess   int
		shedding bool
	}{
		{"within the ratio", v(1190, 1000), false, 0, false},
		{"over the ratio, under the margin", v(150, 100), false, 0, false},
		{"over both", v(1300, 1000), false, 300, true},
		{"small cluster over both", v(250, 100), false, 150, true},
		{"still shedding inside the band", v(1150, 1000), true, 150, true},
		{"down to the average", v(1000, 999.5), true, 0, false},
		{"inside the band, not shedding", v(1150, 1000), false, 0, false},
		{"unknown view", View{Sessions: 5000, Average: 10}, false, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			excess, shedding := b.Excess(tc.view, tc.active)
			if excess != tc.excess || shedding != tc.shedding {
				t.Fatalf("Excess = %d, %v; want %d, %v", excess, shedding, tc.excess, tc.shedding)
			}
		})
	}
	if got := ToAverage(v(130, 99.5)); got != 30 {
		t.Fatalf("ToAverage = %d, want 30 (above the average rounded up)", got)
	}
	if got := ToAverage(v(90, 100)); got != 0 {
		t.Fatalf("ToAverage below the average = %d", got)
	}
}

// TestBandSettlesWithoutPingPong simulates whole clusters: each second
// every node sheds what the band and the rate allow, and the shed sessions
// spread evenly over the other nodes (clients walking shuffled URL lists,
// or a balancer). The cluster settles with every node inside the band;
// no node starts shedding twice (no ping-pong: a node that stopped is not
// pushed back over the start by the others); sessions move at most
// nodes times the first excess, since a session lands on an
// under-loaded node only as often as such nodes are among the others (the
// rest land on a node that is itself shedding, or push one just over the
// start, which passes them on); and nothing moves once settled.
func TestBandSettlesWithoutPingPong(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start []int
	}{
		{"a restarted node", []int{30000, 30000, 0}},
		{"one node holds all", []int{9000, 0, 0}},
		{"two nodes", []int{5000, 0}},
		{"last of a rolling restart", []int{12000, 10000, 8000, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Band{Ratio: DefaultRatio, MinExcess: DefaultMinExcess}
			counts := append([]int(nil), tc.start...)
			active := make([]bool, len(counts))
			sum := 0
			for _, c := range counts {
				sum += c
			}
			avg := float64(sum) / float64(len(counts))
			first := 0
			for _, c := range counts {
				if float64(c) > b.start(avg) {
					first += c - int(b.stop(avg))
				}
			}
			starts := make([]int, len(counts))
			moved, quiet := 0, 0
			for second := 0; second < 3600 && quiet < 30; second++ {
				var ms []cluster.Member
				for i, c := range counts {
					ms = append(ms, member(string(rune('a'+i)), c, true))
				}
				shed := make([]int, len(counts))
				for i := range counts {
					view := See(string(rune('a'+i)), ms, true)
					excess, on := b.Excess(view, active[i])
					if on && !active[i] {
						if starts[i]++; starts[i] > 1 {
							t.Fatalf("second %d: node %d starts shedding a second time: %v", second, i, counts)
						}
					}
					active[i] = on
					k := min(excess, int(min(DefaultFraction*float64(counts[i]), DefaultRate)), counts[i])
					if on && k == 0 {
						k = min(excess, 1)
					}
					shed[i] = k
				}
				total := 0
				for i, k := range shed {
					counts[i] -= k
					for j := 1; j < len(counts); j++ { // the others, evenly
						share := k / (len(counts) - 1)
						if j <= k%(len(counts)-1) {
							share++
						}
						counts[(i+j)%len(counts)] += share
					}
					total += k
				}
				moved += total
				if total == 0 {
					quiet++
				} else {
					quiet = 0
				}
			}
			if quiet < 30 {
				t.Fatalf("not settled after an hour: %v", counts)
			}
			if moved > len(counts)*first {
				t.Fatalf("moved %d sessions for a first excess of %d", moved, first)
			}
			for i, c := range counts {
				if float64(c) > b.start(avg) {
					t.Fatalf("node %d holds %d, above the band's start %.0f: %v", i, c, b.start(avg), counts)
				}
			}
			t.Logf("settled at %v after moving %d sessions for a first excess of %d", counts, moved, first)
		})
	}
}

// TestCeiling: a node at the ceiling does not start shedding, one above it
// does, whichever of the ratio and the margin is the larger.
func TestCeiling(t *testing.T) {
	for _, tc := range []struct {
		band Band
		avg  float64
		want float64
	}{
		{Band{Ratio: 1.2, MinExcess: 100}, 1000, 1200},
		{Band{Ratio: 1.2, MinExcess: 100}, 100, 200},
		{Band{Ratio: 1.2, MinExcess: 0}, 10, 12},
	} {
		got := tc.band.Ceiling(tc.avg)
		if got != tc.want {
			t.Errorf("%+v at %v: Ceiling %v, want %v", tc.band, tc.avg, got, tc.want)
		}
		at := View{Sessions: int(got), Average: tc.avg, Accepting: 3, Known: true}
		if _, shedding := tc.band.Excess(at, false); shedding {
			t.Errorf("%+v: a node at the ceiling %v starts shedding", tc.band, got)
		}
		at.Sessions++
		if _, shedding := tc.band.Excess(at, false); !shedding {
			t.Errorf("%+v: a node above the ceiling %v does not shed", tc.band, got)
		}
	}
}
