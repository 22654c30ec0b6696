//go:build linux

package chaos

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// LateGap is the longest interval between samples the lab promises.
const LateGap = 20 * time.Millisecond

// Window is a trial in time.
type Window struct {
	Prep  time.Time // the trial began (a fault may first prepare the cluster)
	Fault time.Time // the fault was injected
	Heal  time.Time // it ended: link up, SIGCONT, thaw, the node or server restarted
	End   time.Time // observation ended: healthy and stable again, or the recovery deadline
	Node  int       // the faulted node; -1 for none
	// Thaw is set when the heal thawed the whole faulted node (agent, its
	// guards and its jobs frozen together, as a paused VM).
	Thaw bool
}

// ThawGrace is how long after a whole node's thaw its own processes may
// still run beside their successors. Nothing of that node could stop them
// while it was frozen: its guards were frozen too, and all of it resumes
// in the same instant; the guards' deadlines have passed, so they kill at
// once. Such runs are reported apart (Result.ThawOverlaps), never hidden, and only
// when they involve the thawed node, start after the thaw and are
// processes (a VIP is the kernel's, which is never frozen).
const ThawGrace = 100 * time.Millisecond

// Failover is a singleton (or the VIP) whose active instance was on the
// faulted node when the fault began.
type Failover struct {
	Job  string
	Took time.Duration // fault → live on another node (or back on the faulted one)
	// InPlace is set when the job came back on the faulted node after the
	// heal without ever running elsewhere; Took then counts to that.
	InPlace bool
}

// Interruption is an instance that stopped being live.
type Interruption struct {
	Job  string
	Node int
	At   time.Duration // since the fault
	// Took lasts until the instance is live again, or the job has as many
	// live instances as before it stopped (one, for a singleton, anywhere).
	Took time.Duration
	Open bool // still not restored when observation ended
}

// Overlap is a run of samples with two live instances of a singleton, two
// owners of a ring partition or two VIP holders.
type Overlap struct {
	What    string
	Nodes   mask
	At      time.Duration // since the fault (negative: while preparing)
	Samples int
	// Took is from the first sample with two to the first without: an
	// upper bound by one sample interval.
	Took time.Duration
}

// Result is what a trial's samples show.
type Result struct {
	Failovers []Failover
	// Collateral are interruptions of instances on other nodes than the
	// faulted one, between the fault and the heal.
	Collateral []Interruption
	// AfterHeal are interruptions of instances on any node after the heal.
	AfterHeal []Interruption
	Overlaps  []Overlap
	// DualSamples counts samples with any overlap.
	DualSamples int
	// ThawOverlaps are the overlaps of a thawed node's processes with their
	// successors in the ThawGrace after the thaw (see ThawGrace); they are
	// in neither Overlaps nor DualSamples.
	ThawOverlaps []Overlap
	ThawSamples  int
	// NeverRecovered lists jobs (and "partition N", "vip") with nothing
	// live at the end of observation.
	NeverRecovered []string
	Samples        int
	MaxGap         time.Duration // between consecutive samples
	// Late counts gaps between samples longer than 20 ms: moments the
	// observer did not see (a busy or stolen CPU).
	Late int
}

// Analyze reads a trial's samples (ordered, from before Prep to End).
func Analyze(jobs JobSet, samples []Sample, w Window) Result {
	var r Result
	var in []Sample
	base := -1
	for _, s := range samples {
		if s.At.After(w.End) {
			break
		}
		if s.At.Before(w.Fault) {
			base = len(in)
		}
		in = append(in, s)
	}
	r.Samples = len(in)
	for i := 1; i < len(in); i++ {
		gap := in[i].At.Sub(in[i-1].At)
		r.MaxGap = max(r.MaxGap, gap)
		if gap > LateGap {
			r.Late++
		}
	}
	r.Overlaps, r.DualSamples = overlaps(jobs, in, w)
	r.Overlaps, r.ThawOverlaps, r.DualSamples, r.ThawSamples = splitThaw(r.Overlaps, r.DualSamples, w)
	if base < 0 || len(in) == 0 {
		return r // no baseline: nothing to compare with
	}
	r.Failovers = failovers(jobs, in[base:], w)
	r.Collateral, r.AfterHeal = interruptions(jobs, in[base:], w)
	last := in[len(in)-1]
	for i, j := range jobs.Jobs {
		if last.Live[i] == 0 {
			r.NeverRecovered = append(r.NeverRecovered, j.Name)
		}
	}
	for p, o := range last.Owners {
		if o == 0 {
			r.NeverRecovered = append(r.NeverRecovered, fmt.Sprintf("partition %d", p))
		}
	}
	if jobs.vipIndex() >= 0 && last.VIP == 0 {
		r.NeverRecovered = append(r.NeverRecovered, "vip")
	}
	return r
}

// overlaps finds the runs of dual activity in the whole trial.
func overlaps(jobs JobSet, in []Sample, w Window) ([]Overlap, int) {
	open := map[string]*Overlap{}
	var out []Overlap
	dual := 0
	for _, s := range in {
		seen := map[string]mask{}
		for i, j := range jobs.Jobs {
			if j.Kind == Singleton && s.Live[i].count() > 1 {
				seen[j.Name] = s.Live[i]
			}
		}
		for p, o := range s.Owners {
			if o.count() > 1 {
				seen[fmt.Sprintf("partition %d", p)] = o
			}
		}
		if s.VIP.count() > 1 {
			seen["vip"] = s.VIP
		}
		if len(seen) > 0 {
			dual++
		}
		for what, m := range seen {
			if o := open[what]; o != nil {
				o.Samples++
				o.Nodes |= m
				continue
			}
			open[what] = &Overlap{What: what, Nodes: m, At: s.At.Sub(w.Fault), Samples: 1}
		}
		for what, o := range open {
			if _, still := seen[what]; !still {
				o.Took = s.At.Sub(w.Fault) - o.At
				out = append(out, *o)
				delete(open, what)
			}
		}
	}
	for _, o := range open {
		o.Took = in[len(in)-1].At.Sub(w.Fault) - o.At
		out = append(out, *o)
	}
	slices.SortFunc(out, func(a, b Overlap) int { return cmp.Compare(a.At, b.At) })
	return out, dual
}

// splitThaw takes out of overlaps those a whole node's thaw explains (see
// ThawGrace) and corrects the dual sample count. An overlap that outlasts
// the grace is the product's, and stays.
func splitThaw(all []Overlap, dual int, w Window) (kept, thaw []Overlap, keptDual, thawDual int) {
	if !w.Thaw || w.Node < 0 {
		return all, nil, dual, 0
	}
	healAt := w.Heal.Sub(w.Fault)
	for _, o := range all {
		if o.What != "vip" && o.Nodes&bit(w.Node) != 0 && o.At >= healAt && o.At+o.Took <= healAt+ThawGrace {
			thaw = append(thaw, o)
			thawDual += o.Samples
			continue
		}
		kept = append(kept, o)
	}
	if thaw == nil {
		return all, nil, dual, 0
	}
	// dual counts a sample once however many overlaps it holds, so the
	// thawed ones cannot be subtracted from it: the kept overlaps' own
	// samples are counted instead, which counts a sample with two of them
	// twice. For a safety figure, too many is the right side to err on.
	for _, o := range kept {
		keptDual += o.Samples
	}
	return kept, thaw, keptDual, thawDual
}

// failovers times the singletons (and the VIP) that were active on the
// faulted node at the fault. in starts with the baseline sample.
func failovers(jobs JobSet, in []Sample, w Window) []Failover {
	var out []Failover
	track := func(name string, at func(Sample) mask) {
		if !at(in[0]).has(w.Node) {
			return
		}
		lost := false
		for _, s := range in[1:] {
			m := at(s)
			if m.without(w.Node) != 0 {
				out = append(out, Failover{Job: name, Took: s.At.Sub(w.Fault)})
				return
			}
			if !m.has(w.Node) {
				lost = true
			} else if lost && !s.At.Before(w.Heal) {
				out = append(out, Failover{Job: name, Took: s.At.Sub(w.Fault), InPlace: true})
				return
			}
		}
	}
	for i, j := range jobs.Jobs {
		if j.Kind == Singleton {
			track(j.Name, func(s Sample) mask { return s.Live[i] })
		}
	}
	if v := jobs.vipIndex(); v >= 0 {
		track("vip", func(s Sample) mask { return s.VIP })
	}
	return out
}

// interruptions follows every instance from the baseline on. An instance
// (job, node) is interrupted when it was live in one sample and not in the
// next, except:
//   - on the faulted node between the fault and the heal (that is the fault);
//   - a surplus instance going (the job had more live than wanted and
//     still has enough): the end of an overlap, or of a surge.
func interruptions(jobs JobSet, in []Sample, w Window) (collateral, afterHeal []Interruption) {
	type run struct {
		Interruption
		start  time.Time
		target int
		after  bool
	}
	open := map[[2]int]*run{}
	closeRun := func(r *run, at time.Time, stillOpen bool) {
		r.Took, r.Open = at.Sub(r.start), stillOpen
		if r.after {
			afterHeal = append(afterHeal, r.Interruption)
		} else {
			collateral = append(collateral, r.Interruption)
		}
	}
	for k := 1; k < len(in); k++ {
		prev, cur := in[k-1], in[k]
		for i, j := range jobs.Jobs {
			for n := 0; n < maxNodes; n++ {
				key := [2]int{i, n}
				if r := open[key]; r != nil && (cur.Live[i].has(n) || cur.Live[i].count() >= r.target) {
					closeRun(r, cur.At, false)
					delete(open, key)
				}
				if !prev.Live[i].has(n) || cur.Live[i].has(n) || open[key] != nil {
					continue
				}
				healed := !cur.At.Before(w.Heal)
				if n == w.Node && !healed {
					continue
				}
				before, after := prev.Live[i].count(), cur.Live[i].count()
				want := jobs.want(i, Nodes)
				if before > want && after >= want {
					continue
				}
				target := before
				if j.Kind == Singleton {
					target = 1
				}
				r := &run{Interruption: Interruption{Job: j.Name, Node: n, At: cur.At.Sub(w.Fault)},
					start: cur.At, target: target, after: healed}
				if after >= target {
					closeRun(r, cur.At, false) // replaced in the same sample
					continue
				}
				open[key] = r
			}
		}
	}
	for _, r := range open {
		closeRun(r, in[len(in)-1].At, true)
	}
	byTime := func(a, b Interruption) int { return cmp.Compare(a.At, b.At) }
	slices.SortStableFunc(collateral, byTime)
	slices.SortStableFunc(afterHeal, byTime)
	return collateral, afterHeal
}
