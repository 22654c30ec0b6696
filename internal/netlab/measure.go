//go:build linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// FailMode is how a trial takes the master away.
type FailMode int

const (
	// Graceful stops the master's VIP manager cleanly (keepalived:
	// SIGTERM, so it sends a priority-0 advert and removes the VIP).
	Graceful FailMode = iota
	// Kill SIGKILLs the master's VIP manager; the machine stays up, so its
	// whoami server keeps answering and the VIP stays configured on it.
	Kill
	// Crash is Kill plus the master's eth0 going down at the same time: a
	// machine that died or dropped off the network.
	Crash
)

func (m FailMode) String() string {
	switch m {
	case Graceful:
		return "graceful"
	case Kill:
		return "kill"
	case Crash:
		return "crash"
	}
	return fmt.Sprintf("FailMode(%d)", int(m))
}

// Trial is the outcome of one failover.
type Trial struct {
	Mode     FailMode
	From, To string // labels of the old and the new master

	// Gap is what the client saw: from the last answer by the old master
	// to the first answer by the new one.
	Gap time.Duration
	// Takeover is from the failure (the signal) to the first answer by the
	// new master.
	Takeover time.Duration
	// FailedProbes counts failed probes between the failure and the first
	// answer by the new master.
	FailedProbes int
	// Mixed is set when the old master answered again after the new one
	// had (flapping), within the settle window.
	Mixed bool
	// MaxHolders is the largest number of nodes seen holding the VIP at
	// once, from the failure to the end of the settle window.
	MaxHolders int
	// StaleVIP is set when the old master still had the VIP after the
	// handover (then the trial removed it before restarting the node).
	StaleVIP bool
}

func (t Trial) String() string {
	s := fmt.Sprintf("%s %s->%s gap=%s takeover=%s failed=%d holders<=%d",
		t.Mode, t.From, t.To, t.Gap.Round(time.Microsecond), t.Takeover.Round(time.Microsecond),
		t.FailedProbes, t.MaxHolders)
	if t.Mixed {
		s += " MIXED"
	}
	if t.StaleVIP {
		s += " stale-vip"
	}
	return s
}

// Gaps returns the trials' client-visible gaps.
func Gaps(ts []Trial) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = t.Gap
	}
	return out
}

// Takeovers returns the trials' failure-to-first-answer times.
func Takeovers(ts []Trial) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = t.Takeover
	}
	return out
}

// Stats summarises durations; percentiles are nearest-rank.
type Stats struct {
	N                       int
	Min, P50, P90, P99, Max time.Duration
	Mean                    time.Duration
}

// Summarize computes Stats over ds (which it does not modify).
func Summarize(ds []time.Duration) Stats {
	s := Stats{N: len(ds)}
	if len(ds) == 0 {
		return s
	}
	sorted := append([]time.Duration(nil), ds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
	s.Mean = sum / time.Duration(len(sorted))
	s.P50 = Percentile(sorted, 50)
	s.P90 = Percentile(sorted, 90)
	s.P99 = Percentile(sorted, 99)
	return s
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, which must be in ascending order.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted)) + 0.999999999)
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func (s Stats) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return fmt.Sprintf("n=%d min=%s p50=%s p90=%s p99=%s max=%s mean=%s",
		s.N, r(s.Min), r(s.P50), r(s.P90), r(s.P99), r(s.Max), r(s.Mean))
}

// KeepalivedBench configures RunKeepalivedTrials.
type KeepalivedBench struct {
	Trials int
	Mode   FailMode
	// Keepalived is the VRRP configuration (defaults as documented there;
	// Preempt must stay false so that trials start from a known state).
	Keepalived KeepalivedConfig
	// Port is the whoami port; 0 means 7070.
	Port int
	// ProbeInterval is the client's probe interval; 0 means 2ms.
	ProbeInterval time.Duration
	// Settle is how long the client keeps watching after the handover
	// before the trial is judged (Mixed); 0 means 1s.
	Settle time.Duration
	// Logf, when set, receives progress lines.
	Logf func(format string, args ...any)
}

// MeasureKeepalived runs trials failovers of keepalived (advert_int 1s,
// multicast VRRP, nopreempt) on lab and returns the client-visible gaps.
// See RunKeepalivedTrials.
func MeasureKeepalived(ctx context.Context, lab *Lab, trials int, mode FailMode) ([]time.Duration, error) {
	ts, err := RunKeepalivedTrials(ctx, lab, KeepalivedBench{Trials: trials, Mode: mode})
	return Gaps(ts), err
}

// RunKeepalivedTrials measures keepalived failover as a client sees it.
// Every node runs a whoami server answering its label (servers keep running
// whatever happens to keepalived: a real machine would still answer), the
// client probes VIP:port, and each trial
//
//  1. waits for a settled group (one MASTER holding the VIP, the others
//     BACKUP) and for the client to get answers from the master;
//  2. stops (Graceful), kills (Kill) or kills and unplugs (Crash) the
//     master's keepalived;
//  3. waits for the first answer from another node, then for the settle
//     window, and computes the Trial;
//  4. removes the VIP left on the old master, if any (after SIGKILL
//     nothing else ever does), re-plugs it, restarts its keepalived and
//     waits for it to report BACKUP (nopreempt keeps the VIP where it is).
//
// It returns the trials done so far along with any error.
func RunKeepalivedTrials(ctx context.Context, lab *Lab, b KeepalivedBench) (trials []Trial, err error) {
	if len(lab.Nodes) < 2 {
		return nil, errors.New("netlab: keepalived trials need at least 2 nodes")
	}
	if b.Keepalived.Preempt {
		return nil, errors.New("netlab: keepalived trials need nopreempt (Preempt=false)")
	}
	if b.Port == 0 {
		b.Port = 7070
	}
	if b.ProbeInterval == 0 {
		b.ProbeInterval = 2 * time.Millisecond
	}
	if b.Settle == 0 {
		b.Settle = time.Second
	}
	logf := b.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	vip := b.Keepalived.VIP
	if !vip.IsValid() {
		vip = netip.PrefixFrom(hostAddr(lab.Subnet, DefaultKeepalivedVIPOctet), 32)
	}
	for _, h := range lab.Nodes {
		// A VIP left by an earlier run (SIGKILLed keepalived) would answer too.
		if err := h.DelAddr(vip.Addr()); err != nil {
			return nil, err
		}
	}
	for _, h := range lab.Nodes {
		stop, err := ServeWhoami(ctx, h, b.Port, h.Label)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	k, err := StartKeepalived(ctx, lab, b.Keepalived)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := k.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, keepalivedLogs(k))
		}
	}()
	advert := k.Config().AdvertInt
	probe := StartProbe(ctx, lab.Client, netip.AddrPortFrom(k.VIP(), uint16(b.Port)), b.ProbeInterval)
	defer probe.Stop()
	holders := SampleHolders(ctx, lab.Nodes, k.VIP(), b.ProbeInterval)
	defer holders.Stop()

	// Generous deadlines: the first election takes 3 adverts plus skew.
	within := func(d time.Duration) (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, d)
	}
	for n := 0; n < b.Trials; n++ {
		wctx, wcancel := within(10*advert + 15*time.Second)
		m, err := k.WaitMaster(wctx)
		if err == nil {
			_, err = probe.WaitStable(wctx, time.Now(), lab.Nodes[m].Label, 20)
		}
		wcancel()
		if err != nil {
			return trials, fmt.Errorf("netlab: trial %d: waiting for a stable master: %w", n, err)
		}
		old := lab.Nodes[m]

		since := time.Now()
		switch b.Mode {
		case Graceful:
			err = k.Stop(m)
		case Kill:
			err = k.Kill(m)
		case Crash:
			err = errors.Join(k.Kill(m), old.SetLink(false))
		default:
			err = fmt.Errorf("netlab: unknown mode %v", b.Mode)
		}
		if err != nil {
			return trials, fmt.Errorf("netlab: trial %d: %s %s: %w", n, b.Mode, old.Label, err)
		}

		wctx, wcancel = within(10*advert + 15*time.Second)
		t, err := JudgeHandover(wctx, probe, b.Mode, old.Label, since, b.Settle)
		wcancel()
		if err != nil {
			return trials, fmt.Errorf("netlab: trial %d: %w", n, err)
		}
		t.MaxHolders, _ = holders.MaxHolders(since)
		if t.StaleVIP, err = old.Holds(k.VIP()); err != nil {
			return trials, err
		}
		trials = append(trials, t)
		logf("keepalived trial %d: %s", n, t)

		// Back to a known state: the old master as a clean backup.
		if err := old.DelAddr(k.VIP()); err != nil {
			return trials, err
		}
		if b.Mode == Crash {
			if err := old.SetLink(true); err != nil {
				return trials, err
			}
		}
		if err := k.Start(m); err != nil {
			return trials, err
		}
		wctx, wcancel = within(10*advert + 15*time.Second)
		err = k.WaitState(wctx, m, "BACKUP")
		wcancel()
		if err != nil {
			return trials, fmt.Errorf("netlab: trial %d: restarting %s: %w", n, old.Label, err)
		}
	}
	return trials, nil
}

func keepalivedLogs(k *Keepalived) string {
	var b strings.Builder
	for i := range k.nodes {
		lines := strings.Split(k.Log(i), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		fmt.Fprintf(&b, "--- keepalived %s (last %d lines) ---\n%s\n", k.nodes[i].label, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

// KeepalivedResult is the outcome of RunKeepalivedBench.
type KeepalivedResult struct {
	Mode       FailMode
	Trials     []Trial
	Gap        Stats // client-visible gaps
	Takeover   Stats // failure to first answer from the new master
	Stale      int   // trials that left the VIP on the old master
	Mixed      int   // trials in which the client saw flapping
	MaxHolders int   // largest number of simultaneous VIP holders seen
}

// RunKeepalivedBench builds a lab of nodes nodes, runs the trials and
// closes the lab: the entry point for a benchmark program.
func RunKeepalivedBench(ctx context.Context, nodes int, b KeepalivedBench) (KeepalivedResult, error) {
	r := KeepalivedResult{Mode: b.Mode}
	lab, err := New(ctx, Config{Nodes: nodes})
	if err != nil {
		return r, err
	}
	ts, err := RunKeepalivedTrials(ctx, lab, b)
	err = errors.Join(err, lab.Close())
	r.Trials = ts
	r.Gap = Summarize(Gaps(ts))
	r.Takeover = Summarize(Takeovers(ts))
	for _, t := range ts {
		if t.StaleVIP {
			r.Stale++
		}
		if t.Mixed {
			r.Mixed++
		}
		r.MaxHolders = max(r.MaxHolders, t.MaxHolders)
	}
	return r, err
}

// JudgeHandover waits for the client's first answer from a node other than
// from after since (the failure was injected at since), then for the
// settle window, and fills in what the probe alone tells of the trial:
// who answered, the takeover and the gap (see Trial), the failed probes
// before the switch and whether answers were mixed. Holder counts and the
// stale VIP are the caller's to add.
func JudgeHandover(ctx context.Context, probe *Probe, mode FailMode, from string, since time.Time, settle time.Duration) (Trial, error) {
	first, err := probe.WaitSample(ctx, since, func(s Sample) bool { return s.OK() && s.Answer != from })
	if err == nil {
		_, err = probe.WaitSample(ctx, first.At.Add(settle), func(Sample) bool { return true })
	}
	if err != nil {
		return Trial{}, fmt.Errorf("%s of %s: waiting for the client to reach another node: %w", mode, from, err)
	}
	t := Trial{Mode: mode, From: from, To: first.Answer, Takeover: first.At.Sub(since)}
	if t.Gap, err = probe.Handover(t.From, t.To, since); err != nil {
		return t, fmt.Errorf("%s of %s: %w", mode, from, err)
	}
	for _, s := range probe.SamplesSince(since) {
		if !s.At.Before(first.At) {
			break
		}
		if !s.OK() {
			t.FailedProbes++
		}
	}
	t.Mixed = probe.Mixed(since)
	return t, nil
}
