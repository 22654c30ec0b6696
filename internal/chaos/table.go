//go:build linux

package chaos

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary aggregates the trials of one fault: the benchmark's row.
type Summary struct {
	Fault  string
	Trials int
	// Errors counts trials the lab could not run as planned; Unrecovered
	// those whose jobs were not all back within RecoverWithin.
	Errors, Unrecovered int
	// Failovers are the singleton jobs' times to run on another node
	// (InPlace: came back on the faulted node instead); VIP the VIP's.
	Failovers []time.Duration
	InPlace   int
	VIP       []time.Duration
	// Collateral counts instances interrupted on other nodes during the
	// fault, AfterHeal those interrupted after the heal; with the longest.
	Collateral, AfterHeal       int
	CollateralMax, AfterHealMax time.Duration
	// DualSamples counts samples with two live instances (or owners, or
	// holders), DualTrials the trials with any.
	DualSamples, DualTrials int
	// ThawSamples counts the samples in which a thawed node's processes ran
	// beside their successors within ThawGrace of the thaw; ThawMax the
	// longest such run.
	ThawSamples int
	ThawMax     time.Duration
	// NeverRecovered counts jobs (and partitions, the VIP) with nothing
	// live at the end of a trial, over all trials.
	NeverRecovered int
	// StreamsCurrent are the times from the heal until the lease streams'
	// replicas were current; StreamsLagging counts trials where they were
	// not within StreamsWithin.
	StreamsCurrent []time.Duration
	StreamsLagging int
	MaxGap         time.Duration
	Late           int
}

// Summarize groups trials by fault, in the order the faults first appear.
func Summarize(trials []*Trial) []Summary {
	var out []Summary
	index := map[string]int{}
	for _, tr := range trials {
		i, ok := index[tr.Name]
		if !ok {
			i = len(out)
			index[tr.Name] = i
			out = append(out, Summary{Fault: tr.Name})
		}
		s := &out[i]
		s.Trials++
		if tr.Err != nil {
			s.Errors++
		}
		if !tr.Recovered {
			s.Unrecovered++
		}
		for _, f := range tr.Failovers {
			switch {
			case f.Job == "vip":
				s.VIP = append(s.VIP, f.Took)
			case f.InPlace:
				s.InPlace++
			default:
				s.Failovers = append(s.Failovers, f.Took)
			}
		}
		for _, in := range tr.Collateral {
			s.Collateral++
			s.CollateralMax = max(s.CollateralMax, in.Took)
		}
		for _, in := range tr.AfterHeal {
			s.AfterHeal++
			s.AfterHealMax = max(s.AfterHealMax, in.Took)
		}
		s.DualSamples += tr.DualSamples
		s.ThawSamples += tr.ThawSamples
		for _, o := range tr.ThawOverlaps {
			s.ThawMax = max(s.ThawMax, o.Took)
		}
		if tr.DualSamples > 0 {
			s.DualTrials++
		}
		s.NeverRecovered += len(tr.NeverRecovered)
		switch {
		case tr.End.IsZero():
		case tr.StreamsCurrent < 0:
			s.StreamsLagging++
		default:
			s.StreamsCurrent = append(s.StreamsCurrent, tr.StreamsCurrent)
		}
		s.MaxGap = max(s.MaxGap, tr.MaxGap)
		s.Late += tr.Late
	}
	return out
}

// Percentile is the nearest-rank percentile p (0–100) of ds; 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	k := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(k, 0), len(s)-1)]
}

// Table formats summaries as the benchmark's table.
func Table(sums []Summary) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "fault\ttrials\tfailover p50 / p99 / max (n)\tVIP p50 / max\tother nodes interrupted (longest)\tafter heal interrupted (longest)\tdual-active samples (trials)\tafter-thaw overlap samples (longest)\tnever recovered\tnot healthy in 60s\tlab errors\tstreams current after heal (max, late)\tsample gaps > 20ms (max)")
	for _, s := range sums {
		fo := "-"
		if len(s.Failovers) > 0 {
			fo = fmt.Sprintf("%s / %s / %s (%d)", secs(Percentile(s.Failovers, 50)), secs(Percentile(s.Failovers, 99)),
				secs(Percentile(s.Failovers, 100)), len(s.Failovers))
		}
		if s.InPlace > 0 {
			fo += fmt.Sprintf(" +%d in place", s.InPlace)
		}
		vip := "-"
		if len(s.VIP) > 0 {
			vip = fmt.Sprintf("%s / %s", secs(Percentile(s.VIP, 50)), secs(Percentile(s.VIP, 100)))
		}
		streams := fmt.Sprintf("%s, %d", secs(Percentile(s.StreamsCurrent, 100)), s.StreamsLagging)
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d (%s)\t%d (%s)\t%d (%d)\t%d (%s)\t%d\t%d\t%d\t%s\t%d (%s)\n", s.Fault, s.Trials, fo, vip,
			s.Collateral, secs(s.CollateralMax), s.AfterHeal, secs(s.AfterHealMax), s.DualSamples, s.DualTrials, s.ThawSamples, secs(s.ThawMax),
			s.NeverRecovered, s.Unrecovered, s.Errors, streams, s.Late, secs(s.MaxGap))
	}
	w.Flush()
	return b.String()
}

func secs(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
