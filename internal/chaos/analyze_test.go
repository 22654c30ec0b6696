//go:build linux

package chaos

import (
	"slices"
	"testing"
	"time"
)

// timeline builds samples every 10 ms from a function of the time since
// the start, for a job set of a singleton and a spread job.
func timeline(start time.Time, until time.Duration, at func(d time.Duration) (single, spread mask)) []Sample {
	var out []Sample
	for d := time.Duration(0); d <= until; d += 10 * time.Millisecond {
		a, b := at(d)
		out = append(out, Sample{At: start.Add(d), Live: []mask{a, b}, Present: []mask{a, b}})
	}
	return out
}

func TestAnalyze(t *testing.T) {
	jobs := JobSet{Jobs: []Job{{Name: "single", Kind: Singleton}, {Name: "spread", Kind: Spread}}}
	t0 := time.Unix(1000, 0)
	const all = mask(0b111)
	// n0 is faulted at 1s and healed at 5s.
	samples := timeline(t0, 8*time.Second, func(d time.Duration) (mask, mask) {
		single, spread := bit(0), all
		switch {
		case d >= 7*time.Second && d < 7020*time.Millisecond:
			single = bit(1) | bit(2) // two live: an overlap of two samples
		case d >= 3500*time.Millisecond:
			single = bit(1) // failover after 2.5s
		case d >= time.Second:
			single = 0
		}
		if d >= time.Second && d < 5500*time.Millisecond {
			spread = spread.without(0) // the faulted node's: not counted
		}
		if d >= 2*time.Second && d < 2500*time.Millisecond {
			spread = spread.without(1) // collateral, 0.5s
		}
		if d >= 6*time.Second && d < 6200*time.Millisecond {
			spread = spread.without(0) // after the heal, 0.2s
		}
		return single, spread
	})
	w := Window{Prep: t0, Fault: t0.Add(time.Second), Heal: t0.Add(5 * time.Second), End: t0.Add(8 * time.Second), Node: 0}
	r := Analyze(jobs, samples, w)

	if want := []Failover{{Job: "single", Took: 2500 * time.Millisecond}}; !slices.Equal(r.Failovers, want) {
		t.Errorf("failovers %+v, want %+v", r.Failovers, want)
	}
	if want := []Interruption{{Job: "spread", Node: 1, At: time.Second, Took: 500 * time.Millisecond}}; !slices.Equal(r.Collateral, want) {
		t.Errorf("collateral %+v, want %+v", r.Collateral, want)
	}
	if want := []Interruption{{Job: "spread", Node: 0, At: 5 * time.Second, Took: 200 * time.Millisecond}}; !slices.Equal(r.AfterHeal, want) {
		t.Errorf("after heal %+v, want %+v", r.AfterHeal, want)
	}
	// The overlap's end (n2 going, n1 staying) is not an interruption, and
	// the singleton leaving n1 for n2... never happens here: n1 stays.
	if want := []Overlap{{What: "single", Nodes: bit(1) | bit(2), At: 6 * time.Second, Samples: 2, Took: 20 * time.Millisecond}}; !slices.Equal(r.Overlaps, want) {
		t.Errorf("overlaps %+v, want %+v", r.Overlaps, want)
	}
	if r.DualSamples != 2 || len(r.NeverRecovered) != 0 {
		t.Errorf("dual samples %d, never recovered %v", r.DualSamples, r.NeverRecovered)
	}
}

// A singleton that moves from a node the fault did not touch is collateral
// even when its successor starts in the same sample; one that never comes
// back is never recovered.
func TestAnalyzeMoveAndLoss(t *testing.T) {
	jobs := JobSet{Jobs: []Job{{Name: "single", Kind: Singleton}, {Name: "gone", Kind: Singleton}}}
	t0 := time.Unix(1000, 0)
	samples := timeline(t0, 3*time.Second, func(d time.Duration) (mask, mask) {
		single, gone := bit(1), bit(2)
		if d >= 1500*time.Millisecond {
			single = bit(2)
		}
		if d >= 2*time.Second {
			gone = 0
		}
		return single, gone
	})
	w := Window{Prep: t0, Fault: t0.Add(time.Second), Heal: t0.Add(2500 * time.Millisecond), End: t0.Add(3 * time.Second), Node: 0}
	r := Analyze(jobs, samples, w)
	want := []Interruption{
		{Job: "single", Node: 1, At: 500 * time.Millisecond},
		{Job: "gone", Node: 2, At: time.Second, Took: time.Second, Open: true},
	}
	if !slices.Equal(r.Collateral, want) {
		t.Errorf("collateral %+v, want %+v", r.Collateral, want)
	}
	if !slices.Equal(r.NeverRecovered, []string{"gone"}) {
		t.Errorf("never recovered %v", r.NeverRecovered)
	}
	if len(r.Failovers) != 0 {
		t.Errorf("failovers %+v: nothing ran on the faulted node", r.Failovers)
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 3}, {99, 5}, {100, 5}, {0, 1}} {
		if got := Percentile(ds, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("p50 of nothing")
	}
}

func TestParseStat(t *testing.T) {
	line := []byte("4242 (sleep (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 5000000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")
	st, ok := parseStat(line)
	if !ok || st.comm != "sleep (x) y" || st.state != 'S' || st.start != 98765 || !st.runs() {
		t.Fatalf("parseStat: %+v %v", st, ok)
	}
	st.state = 'T'
	if st.runs() {
		t.Error("a stopped process runs")
	}
}

// A thawed node's processes running beside their successors right after
// the thaw are reported apart; anything else, or longer, stays dual-active.
func TestSplitThaw(t *testing.T) {
	t0 := time.Unix(1000, 0)
	w := Window{Fault: t0, Heal: t0.Add(10 * time.Second), Node: 1, Thaw: true}
	heal := 10 * time.Second
	all := []Overlap{
		{What: "single-1", Nodes: bit(0) | bit(1), At: heal + 5*time.Millisecond, Took: 30 * time.Millisecond, Samples: 3}, // thaw
		{What: "single-2", Nodes: bit(0) | bit(1), At: heal, Took: 300 * time.Millisecond, Samples: 30},                    // too long
		{What: "single-3", Nodes: bit(0) | bit(2), At: heal + 5*time.Millisecond, Took: 10 * time.Millisecond, Samples: 1}, // not the thawed node
		{What: "vip", Nodes: bit(0) | bit(1), At: heal + 5*time.Millisecond, Took: 10 * time.Millisecond, Samples: 1},      // the kernel's
		{What: "single-4", Nodes: bit(0) | bit(1), At: heal - 5*time.Millisecond, Took: 10 * time.Millisecond, Samples: 1}, // before the thaw
	}
	kept, thaw, dual, thawDual := splitThaw(all, 36, w)
	if len(thaw) != 1 || thaw[0].What != "single-1" || thawDual != 3 {
		t.Fatalf("thaw overlaps %+v (%d samples)", thaw, thawDual)
	}
	if len(kept) != 4 || dual != 33 { // 30 + 1 + 1 + 1, the kept overlaps' samples
		t.Fatalf("kept %+v, %d samples", kept, dual)
	}
	w.Thaw = false
	if kept, thaw, dual, _ := splitThaw(all, 36, w); len(kept) != 5 || thaw != nil || dual != 36 {
		t.Fatal("a fault that is not a whole-node freeze has no thaw overlaps")
	}
}
