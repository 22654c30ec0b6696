//go:build linux

package netlab

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// keepalived with its defaults (advert_int 1s, multicast VRRP) on three
// nodes; nopreempt so every trial starts from a settled group.
func TestKeepalived(t *testing.T) {
	RequireKeepalived(t)
	lab := NewT(t, Config{Nodes: 3})
	for _, mode := range []FailMode{Graceful, Kill} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testCtx(t, 3*time.Minute)
			ts, err := RunKeepalivedTrials(ctx, lab, KeepalivedBench{Trials: 3, Mode: mode, Logf: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			if len(ts) != 3 {
				t.Fatalf("%d trials", len(ts))
			}
			t.Logf("keepalived %s, advert_int 1s: gap %s", mode, Summarize(Gaps(ts)))
			t.Logf("keepalived %s, advert_int 1s: takeover %s", mode, Summarize(Takeovers(ts)))
			for _, tr := range ts {
				if tr.From == tr.To {
					t.Errorf("no handover: %s", tr)
				}
				// Bounds wide enough for a loaded machine; the figures are
				// what matters, these only catch a broken measurement.
				switch mode {
				case Graceful:
					// A priority-0 advert: the backup takes over after its
					// skew time ((256-prio)/256 s), well under the 3 s
					// master-down interval.
					if tr.Gap <= 0 || tr.Gap > 3*time.Second {
						t.Errorf("graceful gap out of range: %s", tr)
					}
					if tr.StaleVIP || tr.MaxHolders > 1 {
						t.Errorf("graceful stop left or doubled the VIP: %s", tr)
					}
				case Kill:
					// The killed master is silent: backups wait the
					// master-down interval (3 adverts + skew).
					if tr.Takeover < 2*time.Second || tr.Takeover > 10*time.Second {
						t.Errorf("kill takeover out of range: %s", tr)
					}
					// The sampler may miss the short moment both hold
					// it before the trial ends; the stale address is
					// checked after the handover.
					if !tr.StaleVIP {
						t.Errorf("SIGKILLed keepalived should leave its VIP behind: %s", tr)
					}
				}
			}
		})
	}
}

// StartKeepalived's pieces: configuration text, Stop/Kill/Restart, states.
func TestKeepalivedControl(t *testing.T) {
	RequireKeepalived(t)
	lab := NewT(t, Config{Nodes: 2})
	ctx := testCtx(t, 2*time.Minute)
	k, err := StartKeepalived(ctx, lab, KeepalivedConfig{AdvertInt: 500 * time.Millisecond, Unicast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	conf := k.ConfigText(0)
	for _, want := range []string{"vrrp_version 3", "advert_int 0.5", "nopreempt", "unicast_peer", "198.18.0.2", "198.18.0.100/32 dev eth0", "priority 150"} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	// Which node wins the first election is a start-up race (both start
	// as BACKUP; the priorities only set a 20ms difference in skew).
	m, err := k.WaitMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o := 1 - m
	if err := k.Restart(o); err != nil {
		t.Fatal(err)
	}
	if err := k.WaitState(ctx, o, "BACKUP"); err != nil {
		t.Fatal(err)
	}
	if err := k.Stop(m); err != nil {
		t.Fatal(err)
	}
	if k.Running(m) || k.State(m) != "STOPPED" {
		t.Errorf("node %d after Stop: running %v state %q", m, k.Running(m), k.State(m))
	}
	if got, err := k.WaitMaster(ctx); err != nil || got != o {
		t.Fatalf("after stopping node %d: master %d %v", m, got, err)
	}
	if err := k.Start(m); err != nil {
		t.Fatal(err)
	}
	if err := k.WaitState(ctx, m, "BACKUP"); err != nil {
		t.Fatal(err)
	}
	// Let node m hear an advert before the master dies (see WaitMaster).
	if got, err := k.WaitMaster(ctx); err != nil || got != o {
		t.Fatalf("after restarting node %d: master %d %v", m, got, err)
	}
	if err := k.Kill(o); err != nil {
		t.Fatal(err)
	}
	// Node m takes over; node o still has the VIP (nobody removed it).
	if err := k.WaitState(ctx, m, "MASTER"); err != nil {
		t.Fatal(err)
	}
	// keepalived logs MASTER STATE before it adds the address.
	waitFor(t, 5*time.Second, "the VIP on both the new master and the killed one", func() bool {
		hs, err := k.Holders()
		return err == nil && len(hs) == 2
	})
	if _, err := k.Master(); err == nil {
		t.Error("Master with two holders succeeded")
	}
	if !strings.Contains(k.Log(m), "Entering MASTER STATE") {
		t.Errorf("log of node %d:\n%s", m, k.Log(m))
	}
}

// BenchmarkKeepalived reports keepalived's failover figures (advert_int
// 1s): b.N trials per mode, e.g. -bench Keepalived -benchtime 10x.
func BenchmarkKeepalived(b *testing.B) {
	RequireKeepalived(b)
	for _, mode := range []FailMode{Graceful, Kill, Crash} {
		b.Run(mode.String(), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			var logf func(string, ...any)
			if os.Getenv("NETLAB_VERBOSE") != "" {
				logf = b.Logf
			}
			r, err := RunKeepalivedBench(ctx, 3, KeepalivedBench{Trials: b.N, Mode: mode, Logf: logf})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(r.Gap.P50)/1e6, "gap-p50-ms")
			b.ReportMetric(float64(r.Gap.P99)/1e6, "gap-p99-ms")
			b.ReportMetric(float64(r.Takeover.P50)/1e6, "takeover-p50-ms")
			b.ReportMetric(float64(r.Takeover.P99)/1e6, "takeover-p99-ms")
			b.ReportMetric(float64(r.Stale), "stale-vips")
			b.ReportMetric(float64(r.MaxHolders), "max-holders")
			b.Logf("keepalived %s: gap %s; takeover %s; stale %d mixed %d", mode, r.Gap, r.Takeover, r.Stale, r.Mixed)
		})
	}
}
