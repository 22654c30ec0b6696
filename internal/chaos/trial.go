//go:build linux

package chaos

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

const (
	// SettleFor is how long the cluster must be healthy and unchanged
	// before a fault is injected.
	SettleFor = 2 * time.Second
	// RecoverWithin is how long after the heal every job has to be back
	// in its desired state; a job with nothing live by then never
	// recovered.
	RecoverWithin = 60 * time.Second
	// StableAfter is how long the recovered state must hold for the trial
	// to end: interruptions in that time still count.
	StableAfter = 5 * time.Second
	// StreamsWithin bounds the wait, after recovery, for the lease streams'
	// replicas to be current again.
	StreamsWithin = 60 * time.Second
)

// Trial is one fault injected and what the observer saw.
type Trial struct {
	Name   string // the fault's
	N      int    // the trial's number for its fault, from 0
	NodeID string
	Window
	Notes []string
	// Recovered is set when the jobs were back in their desired state
	// within RecoverWithin of the heal.
	Recovered bool
	// PrepInterrupted are the instances on other nodes interrupted while
	// the fault prepared the cluster (moving leaders to or from its node on
	// purpose), before the fault.
	PrepInterrupted []Interruption
	// StreamsCurrent is how long after the heal every lease stream had a
	// leader and all its replicas current, looked at once the jobs
	// recovered (so an upper bound); -1 when not within StreamsWithin.
	StreamsCurrent time.Duration
	// Err is set when the lab could not run the trial as planned (the
	// analysis is then partial or missing).
	Err error
	Result

	logFrom map[string]int64 // each node's log size at the start
}

func (tr *Trial) note(format string, args ...any) {
	tr.Notes = append(tr.Notes, fmt.Sprintf(format, args...))
}

// RunTrial injects one fault and follows the cluster until it recovered
// (or RecoverWithin passed), then analyses the samples.
func (l *Lab) RunTrial(ctx context.Context, f Fault, n int) *Trial {
	tr := &Trial{Name: f.Name, N: n, logFrom: map[string]int64{}}
	if err := l.WaitHealthy(ctx, 2*time.Minute, SettleFor); err != nil {
		tr.Err = fmt.Errorf("not healthy before the fault: %w", err)
		return tr
	}
	l.noteStreamLag(ctx, tr, "before")
	tr.Prep = time.Now()
	for _, nd := range l.Nodes {
		if fi, err := os.Stat(nd.LogPath()); err == nil {
			tr.logFrom[nd.ID] = fi.Size()
		}
	}
	l.Obs.Forget(tr.Prep.Add(-time.Second))
	l.Obs.MaxScan() // from here on
	err := f.Inject(ctx, l, tr)
	if tr.Fault.IsZero() {
		tr.Err = fmt.Errorf("fault not injected: %w", err)
		return tr
	}
	if tr.Heal.IsZero() {
		tr.Heal = time.Now()
	}
	if err != nil {
		tr.Err = err
	}
	herr := l.WaitHealthy(ctx, RecoverWithin, StableAfter)
	tr.End = time.Now()
	tr.Recovered = herr == nil
	if herr != nil {
		tr.note("not recovered: %v", herr)
	}
	samples := l.Obs.Since(tr.Prep.Add(-time.Second))
	tr.Result = Analyze(l.Jobs, samples, tr.Window)
	if tr.Fault.Sub(tr.Prep) > time.Second {
		// The fault prepared the cluster (singletons stepped down from its
		// node, stream leaders moved to it): what that interrupted on the
		// other nodes, as if it were a fault on that node.
		prep := Analyze(l.Jobs, samples, Window{Prep: tr.Prep, Fault: tr.Prep, Heal: tr.Fault, End: tr.Fault, Node: tr.Node})
		tr.PrepInterrupted = prep.Collateral
	}
	if scan := l.Obs.MaxScan(); scan > LateGap {
		tr.note("the longest scan took %v", scan.Round(time.Millisecond))
	}
	tr.StreamsCurrent = l.waitStreamsCurrent(ctx, tr.Heal)
	if tr.StreamsCurrent < 0 {
		l.noteStreamLag(ctx, tr, "after")
	}
	return tr
}

// waitStreamsCurrent waits until the lease streams have leaders and their
// replicas are current, and says how long after since that was (-1: not
// within StreamsWithin of now).
func (l *Lab) waitStreamsCurrent(ctx context.Context, since time.Time) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, StreamsWithin)
	defer cancel()
	var at time.Time
	err := pollUntil(ctx, 100*time.Millisecond, func() (bool, error) {
		streams, err := l.LeaseStreams(ctx)
		at = time.Now()
		return err == nil && current(streams), nil
	})
	if err != nil {
		return -1
	}
	return at.Sub(since)
}

// noteStreamLag records lease streams without a leader or with replicas
// behind (the issue saw a rejoined replica lag for over a minute).
func (l *Lab) noteStreamLag(ctx context.Context, tr *Trial, when string) {
	streams, err := l.LeaseStreams(ctx)
	if err != nil {
		tr.note("%s: lease streams: %v", when, err)
		return
	}
	for _, s := range streams {
		if s.Leader == "" || len(s.Behind) > 0 {
			tr.note("%s: stream %s leader=%q behind: %s", when, s.Name, s.Leader, strings.Join(s.Behind, " "))
		}
	}
}

// Bad reports whether the trial broke a safety or recovery rule.
func (tr *Trial) Bad() bool {
	return tr.DualSamples > 0 || len(tr.NeverRecovered) > 0 || !tr.Recovered || tr.Err != nil
}

// Report describes the trial for a log: what was faulted, the figures and
// every overlap and interruption.
func (tr *Trial) Report(labels []string) string {
	var b strings.Builder
	name := func(n int) string {
		if n >= 0 && n < len(labels) {
			return labels[n]
		}
		return fmt.Sprint(n)
	}
	fmt.Fprintf(&b, "%s #%d on %s:", tr.Name, tr.N+1, tr.NodeID)
	if tr.Err != nil {
		fmt.Fprintf(&b, " ERROR %v;", tr.Err)
	}
	if !tr.Fault.IsZero() {
		fmt.Fprintf(&b, " heal at +%v, end at +%v, %d samples (%d gaps over %v, max %v)",
			tr.Heal.Sub(tr.Fault).Round(time.Millisecond), tr.End.Sub(tr.Fault).Round(time.Millisecond),
			tr.Samples, tr.Late, LateGap, tr.MaxGap.Round(time.Millisecond))
	}
	for _, n := range tr.Notes {
		fmt.Fprintf(&b, "\n    note: %s", n)
	}
	if tr.StreamsCurrent >= 0 && !tr.End.IsZero() {
		fmt.Fprintf(&b, "\n    lease streams current %v after the heal", tr.StreamsCurrent.Round(time.Millisecond))
	}
	for _, f := range tr.Failovers {
		where := "elsewhere"
		if f.InPlace {
			where = "back in place after the heal"
		}
		fmt.Fprintf(&b, "\n    failover %-9s %8v (%s)", f.Job, f.Took.Round(time.Millisecond), where)
	}
	for _, o := range tr.Overlaps {
		fmt.Fprintf(&b, "\n    DUAL-ACTIVE %s on %s at %+v for up to %v (%d samples)",
			o.What, o.Nodes.format(labels), o.At.Round(time.Millisecond), o.Took.Round(time.Millisecond), o.Samples)
	}
	for _, o := range tr.ThawOverlaps {
		fmt.Fprintf(&b, "\n    after the thaw: %s on %s at %+v for up to %v (%d samples; the thawed node's guard kills on resume)",
			o.What, o.Nodes.format(labels), o.At.Round(time.Millisecond), o.Took.Round(time.Millisecond), o.Samples)
	}
	for _, kind := range []struct {
		what string
		list []Interruption
	}{{"interrupted on another node", tr.Collateral}, {"interrupted after the heal", tr.AfterHeal}} {
		for _, in := range kind.list {
			open := ""
			if in.Open {
				open = " (still at the end)"
			}
			fmt.Fprintf(&b, "\n    %s: %s on %s at %+v for %v%s", kind.what, in.Job, name(in.Node),
				in.At.Round(time.Millisecond), in.Took.Round(time.Millisecond), open)
		}
	}
	if n := len(tr.PrepInterrupted); n > 0 {
		var longest time.Duration
		for _, in := range tr.PrepInterrupted {
			longest = max(longest, in.Took)
		}
		fmt.Fprintf(&b, "\n    preparing (step-downs) interrupted %d instances on other nodes, longest %v", n, longest.Round(time.Millisecond))
	}
	if len(tr.NeverRecovered) > 0 {
		fmt.Fprintf(&b, "\n    NEVER RECOVERED: %s", strings.Join(tr.NeverRecovered, ", "))
	}
	return b.String()
}

// TrialLogs returns what each node's agent logged during the trial (its
// last lines lines).
func (l *Lab) TrialLogs(tr *Trial, lines int) string {
	var parts []string
	for _, n := range l.Nodes {
		text := string(readFrom(n.LogPath(), tr.logFrom[n.ID]))
		parts = append(parts, fmt.Sprintf("--- %s agent log during %s #%d (%s), last %d lines\n%s",
			n.ID, tr.Name, tr.N+1, n.LogPath(), lines, lastLines(text, lines)))
	}
	return strings.Join(parts, "\n")
}
