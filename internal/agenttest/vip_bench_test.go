//go:build linux

package agenttest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/ozanturksever/go-cluster/internal/netlab"
)

// vipBenchTrials is the least number of failovers measured per mode and
// system, whatever -benchtime says.
const vipBenchTrials = 20

// vipProbeInterval is the client's probe interval, for gcl and keepalived.
const vipProbeInterval = 2 * time.Millisecond

// vipSettle is how long the client keeps watching after a handover before
// the trial is judged (flapping), as netlab does for keepalived.
const vipSettle = time.Second

// BenchmarkVIPFailover: how long a client connecting to a VIP is cut off
// when the VIP moves, gcl against keepalived (VRRP, advert_int 1s,
// multicast, nopreempt), in the same netlab topology (3 nodes, a client, a
// whoami server per node that keeps answering whatever the VIP manager
// does) and with the same 2 ms probe.
//
//   - graceful: gcl `app stepdown` of the leader; keepalived SIGTERM of the
//     master (it sends a priority-0 advert and removes the VIP).
//   - kill: SIGKILL of the leader's agent / of the master's keepalived. The
//     node's whoami keeps answering (on the VIP too, while its namespace
//     has it) until the new holder's gratuitous ARP moves the client.
//
// gap: from the client's last answer by the old holder to its first by the
// new one. takeover: from the signal (the stepdown command's start for gcl
// graceful) to the first answer by the new holder; for kill the number to
// compare with keepalived's. Each killed agent is restarted with its data
// directory (after its VIP has expired, which is measured too) and the
// cluster settles before the next trial.
//
// Every mode runs at least vipBenchTrials trials in one invocation; with
// -benchtime Nx and N larger, N. Agents use the default timings (lease TTL
// 2s, presence TTL 5s).
func BenchmarkVIPFailover(b *testing.B) {
	netlab.RequireKeepalived(b)

	v := newVIPCluster(b, vipTiming)
	v.runJob()
	probe := netlab.StartProbe(context.Background(), v.lab.Client, vipTarget, vipProbeInterval)
	hs := netlab.SampleHolders(context.Background(), v.lab.Nodes, vipAddr, vipProbeInterval)

	var graceful, kill []netlab.Trial
	var expiry, overlap []time.Duration
	var problems []string // reported after the summary, which must come first
	flapped := func(t netlab.Trial, f []netlab.Sample) {
		if len(f) > 0 {
			problems = append(problems, fmt.Sprintf("gcl trial %s: after the client had switched, the old holder answered again:\n%s", t, describeSamples(f)))
		}
	}
	round := func() {
		t, f := v.gracefulTrial(probe, hs)
		graceful = append(graceful, t)
		flapped(t, f)
		if t.MaxHolders > 1 {
			problems = append(problems, fmt.Sprintf("gcl trial %s: two holders at once during a graceful move", t))
		}
		t, f, exp, ov := v.killTrial(probe, hs)
		kill = append(kill, t)
		flapped(t, f)
		expiry, overlap = append(expiry, exp), append(overlap, ov)
	}
	for b.Loop() {
		round()
	}
	for len(graceful) < vipBenchTrials {
		round()
	}
	probe.Stop()
	hs.Stop()
	v.close() // agents, NATS and the lab: keepalived's benchmark builds its own

	n := len(graceful)
	ka := map[netlab.FailMode]netlab.KeepalivedResult{}
	for _, mode := range []netlab.FailMode{netlab.Graceful, netlab.Kill} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n)*time.Minute)
		r, err := netlab.RunKeepalivedBench(ctx, len(v.lab.Nodes), netlab.KeepalivedBench{
			Trials:        n,
			Mode:          mode,
			Keepalived:    netlab.KeepalivedConfig{VIP: vipPrefix}, // advert_int 1s
			Port:          whoamiPort,
			ProbeInterval: vipProbeInterval,
			Settle:        vipSettle,
		})
		cancel()
		if err != nil {
			b.Fatalf("keepalived %s: %v", mode, err)
		}
		ka[mode] = r
	}

	kaGraceful, kaKill := ka[netlab.Graceful].Trials, ka[netlab.Kill].Trials
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	report := func(metric string, ds []time.Duration) netlab.Stats {
		st := netlab.Summarize(ds)
		b.ReportMetric(ms(st.P50), metric+"-p50-ms")
		b.ReportMetric(ms(st.P99), metric+"-p99-ms")
		return st
	}
	gg := report("gcl-graceful-gap", netlab.Gaps(graceful))
	report("gcl-kill-gap", netlab.Gaps(kill))
	gt := report("gcl-kill-takeover", netlab.Takeovers(kill))
	kg := report("ka-graceful-gap", netlab.Gaps(kaGraceful))
	report("ka-kill-gap", netlab.Gaps(kaKill))
	kt := report("ka-kill-takeover", netlab.Takeovers(kaKill))
	ratio := func(a, b time.Duration) float64 {
		if b <= 0 {
			return 0
		}
		return float64(a) / float64(b)
	}
	b.ReportMetric(ratio(kg.P50, gg.P50), "ka/gcl-graceful-gap-p50-x")
	b.ReportMetric(ratio(kg.P99, gg.P99), "ka/gcl-graceful-gap-p99-x")
	b.ReportMetric(ratio(kt.P50, gt.P50), "ka/gcl-kill-takeover-p50-x")
	b.ReportMetric(ratio(kt.P99, gt.P99), "ka/gcl-kill-takeover-p99-x")
	b.ReportMetric(0, "ns/op") // one op is a whole batch of trials: meaningless

	// The framework keeps only the first 10 lines a benchmark logs: one
	// summary of 9 lines, the trials only with -v (on stdout).
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 4, 1, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tgap p50\tp90\tp99\tmax\t|\ttakeover p50\tp90\tp99\tmax\t")
	for _, row := range []struct {
		name string
		ts   []netlab.Trial
	}{
		{"gcl graceful (app stepdown)", graceful}, {"gcl kill (SIGKILL agent)", kill},
		{"keepalived graceful (SIGTERM)", kaGraceful}, {"keepalived kill (SIGKILL)", kaKill},
	} {
		g, t := netlab.Summarize(netlab.Gaps(row.ts)), netlab.Summarize(netlab.Takeovers(row.ts))
		fmt.Fprintf(tw, "%s\t%v\t%v\t%v\t%v\t|\t%v\t%v\t%v\t%v\t\n", row.name,
			r(g.P50), r(g.P90), r(g.P99), r(g.Max), r(t.P50), r(t.P90), r(t.P99), r(t.Max))
	}
	tw.Flush()
	judge := func(ts []netlab.Trial) string {
		mixed, most, stale := 0, 0, 0
		for _, t := range ts {
			if t.Mixed {
				mixed++
			}
			if t.StaleVIP {
				stale++
			}
			most = max(most, t.MaxHolders)
		}
		return fmt.Sprintf("%d/%d/%d", mixed, most, stale)
	}
	ex, ov := netlab.Summarize(expiry), netlab.Summarize(overlap)
	b.Logf("VIP failover: %d trials per mode, probe every %v; gcl takeover for graceful counts from the stepdown command's start\n%s"+
		"gcl kill: the dead agent's VIP expired after p50 %v max %v; two namespaces held it for p50 %v max %v\n"+
		"ratios keepalived/gcl: graceful gap p50 %.1fx p99 %.1fx; kill takeover p50 %.1fx p99 %.1fx\n"+
		"trials with answers out of completion order (netlab Mixed)/most holders at once/VIP left on the old holder: gcl graceful %s, gcl kill %s, keepalived graceful %s, keepalived kill %s",
		n, vipProbeInterval, table.String(),
		r(ex.P50), r(ex.Max), r(ov.P50), r(ov.Max),
		ratio(kg.P50, gg.P50), ratio(kg.P99, gg.P99), ratio(kt.P50, gt.P50), ratio(kt.P99, gt.P99),
		judge(graceful), judge(kill), judge(kaGraceful), judge(kaKill))
	if testing.Verbose() {
		for i := range graceful {
			fmt.Printf("gcl trial %d: %s | %s expired=%v overlap=%v\n", i+1, graceful[i], kill[i], r(expiry[i]), r(overlap[i]))
		}
		for i := range kaGraceful {
			fmt.Printf("keepalived trial %d: %s\n", i+1, kaGraceful[i])
		}
		for i := range kaKill {
			fmt.Printf("keepalived trial %d: %s\n", i+1, kaKill[i])
		}
	}

	for _, p := range problems {
		b.Error(p)
	}
}

// gracefulTrial waits for a settled cluster, has the leader step down and
// measures the handover the client sees.
func (v *vipCluster) gracefulTrial(probe *netlab.Probe, hs *netlab.HolderSampler) (netlab.Trial, []netlab.Sample) {
	v.t.Helper()
	old := v.waitSettled(probe, 60*time.Second, 20)
	since := time.Now()
	v.cl.mustGCL(0, "app", "stepdown", vipApp)
	return v.judgeTrial(netlab.Graceful, old, since, probe, hs)
}

// killTrial waits for a settled cluster, SIGKILLs the leader's agent,
// measures the handover, waits for the dead agent's VIP to expire (how
// long after the kill: expired; how long two namespaces held it: overlap)
// and restarts the agent.
func (v *vipCluster) killTrial(probe *netlab.Probe, hs *netlab.HolderSampler) (t netlab.Trial, flapped []netlab.Sample, expired, overlap time.Duration) {
	v.t.Helper()
	old := v.waitSettled(probe, 60*time.Second, 20)
	since := time.Now()
	v.kill(old)
	t, flapped = v.judgeTrial(netlab.Kill, old, since, probe, hs)
	deadline := since.Add(10 * time.Second)
	for v.holds(old) {
		if time.Now().After(deadline) {
			v.t.Fatalf("the VIP on %s, whose agent was killed, did not expire within 10s", old)
		}
		time.Sleep(2 * time.Millisecond)
	}
	gone := time.Now()
	expired = gone.Sub(since)
	if added, ok := firstHeldBy(hs, v.lab.Nodes, t.To, since); ok {
		overlap = max(0, gone.Sub(added))
	}
	v.start(old)
	return t, flapped, expired, overlap
}

// judgeTrial waits for the client's first answer from a node other than
// old after since, then for the settle window, and computes the trial.
// Trial.Mixed is netlab's (completion order, as for keepalived); flapped
// lists answers by old to probes started after the switch.
func (v *vipCluster) judgeTrial(mode netlab.FailMode, old string, since time.Time, probe *netlab.Probe, hs *netlab.HolderSampler) (netlab.Trial, []netlab.Sample) {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t, err := netlab.JudgeHandover(ctx, probe, mode, old, since, vipSettle)
	if err != nil {
		v.t.Fatal(err)
	}
	t.MaxHolders, _ = hs.MaxHolders(since)
	t.StaleVIP = v.holds(old)
	return t, flaps(probe, old, since.Add(t.Takeover))
}
