//go:build linux

package netlab

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// Move an address by hand between two nodes while the client probes it:
// the probe sees the handover, and the holder sampler never sees two
// holders (the address is removed before it is added elsewhere).
func TestProbeHandover(t *testing.T) {
	RequireLab(t)
	ctx := testCtx(t, time.Minute)
	lab := NewT(t, Config{Nodes: 2})
	a, b := lab.Nodes[0], lab.Nodes[1]
	vip := netip.MustParsePrefix("198.18.0.100/32")
	const port = 7171
	for _, h := range lab.Nodes {
		stop, err := ServeWhoami(ctx, h, port, h.Label)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
	}
	if err := a.AddAddr(vip); err != nil {
		t.Fatal(err)
	}
	hs := SampleHolders(ctx, lab.Nodes, vip.Addr(), 2*time.Millisecond)
	defer hs.Stop()
	p := StartProbe(ctx, lab.Client, netip.AddrPortFrom(vip.Addr(), port), 2*time.Millisecond)
	defer p.Stop()
	if err := p.WaitAnswer(ctx, a.Label); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitStable(ctx, time.Now(), a.Label, 50); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Handover(a.Label, b.Label, time.Time{}); !errors.Is(err, ErrNoHandover) {
		t.Fatalf("Handover before any: %v", err)
	}
	mac, _, err := lab.Client.Neighbor(vip.Addr())
	if err != nil || mac.String() != a.MAC().String() {
		t.Fatalf("client's neighbour for the VIP: %s %v, want %s", mac, err, a.MAC())
	}

	since := time.Now()
	if err := a.DelAddr(vip.Addr()); err != nil {
		t.Fatal(err)
	}
	// Let the client see the outage before the address reappears, so the
	// gap is real: wait for a failed probe.
	if _, err := p.WaitSample(ctx, since, func(s Sample) bool { return !s.OK() }); err != nil {
		t.Fatal(err)
	}
	if err := b.AddAddr(vip); err != nil {
		t.Fatal(err)
	}
	// No gratuitous ARP here: drop the client's stale entry instead.
	if err := lab.Client.FlushNeighbor(vip.Addr()); err != nil {
		t.Fatal(err)
	}
	first, err := p.WaitSample(ctx, since, func(s Sample) bool { return s.OK() && s.Answer == b.Label })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitStable(ctx, first.At, b.Label, 50); err != nil {
		t.Fatal(err)
	}

	gap, err := p.Handover(a.Label, b.Label, since)
	if err != nil {
		t.Fatal(err)
	}
	if gap <= 0 || gap > 10*time.Second {
		t.Fatalf("gap %s", gap)
	}
	if p.Mixed(since) {
		t.Errorf("answers flapped")
	}
	answers, failed := p.Counts(since)
	if failed == 0 || answers[a.Label]+answers[b.Label] == 0 {
		t.Errorf("counts since the move: answers %v failed %d", answers, failed)
	}
	if max, n := hs.MaxHolders(since); max != 1 || n == 0 {
		t.Errorf("holders: max %d over %d samples, want 1", max, n)
	}
	if max, _ := hs.MaxHolders(time.Time{}); max != 1 {
		t.Errorf("holders over the whole test: max %d", max)
	}
	if n := hs.Errors(time.Time{}); n != 0 {
		t.Errorf("%d holder samples failed", n)
	}
	mac, _, err = lab.Client.Neighbor(vip.Addr())
	if err != nil || mac.String() != b.MAC().String() {
		t.Errorf("client's neighbour for the VIP after the move: %s %v, want %s", mac, err, b.MAC())
	}
	t.Logf("manual move %s -> %s: gap %s (probe every 2ms, %d failed probes)", a.Label, b.Label, gap, failed)

	// Two holders are seen as two.
	t2 := time.Now()
	if err := a.AddAddr(vip); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "two holders sampled", func() bool { m, _ := hs.MaxHolders(t2); return m == 2 })
	if err := a.DelAddr(vip.Addr()); err != nil {
		t.Fatal(err)
	}

	p.Stop()
	n := len(p.Samples())
	if n < 100 {
		t.Errorf("only %d samples", n)
	}
}

func TestSampleLogic(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	mk := func(answers ...string) *Probe {
		p := &Probe{changed: make(chan struct{})}
		for i, a := range answers {
			s := Sample{Start: at(i * 10), At: at(i*10 + 1), Answer: a}
			if a == "" {
				s.Err = errors.New("timeout")
			}
			p.samples = append(p.samples, s)
		}
		return p
	}
	p := mk("a", "a", "", "", "b", "b")
	if gap, err := p.Handover("a", "b", t0); err != nil || gap != 30*time.Millisecond {
		t.Errorf("gap %s %v", gap, err)
	}
	if gap, err := p.Handover("a", "b", at(45)); err != nil || gap != 40*time.Millisecond {
		t.Errorf("gap with since before the first b: %s %v", gap, err)
	}
	if _, err := p.Handover("a", "b", at(100)); !errors.Is(err, ErrNoHandover) {
		t.Errorf("since after everything: %v", err)
	}
	if _, err := p.Handover("x", "b", t0); !errors.Is(err, ErrNoHandover) {
		t.Errorf("from never answered: %v", err)
	}
	if p.Mixed(t0) {
		t.Error("a a b b mixed")
	}
	if !mk("a", "b", "a", "b").Mixed(t0) {
		t.Error("a b a b not mixed")
	}
	if mk("a", "b", "", "c").Mixed(t0) {
		t.Error("a b c mixed")
	}
	if s, ok := p.FirstAnswerAfter(t0, "a"); !ok || s.Answer != "b" || !s.At.Equal(at(41)) {
		t.Errorf("FirstAnswerAfter: %+v %v", s, ok)
	}

	ds := []time.Duration{5, 1, 4, 2, 3}
	st := Summarize(ds)
	if st.N != 5 || st.Min != 1 || st.Max != 5 || st.P50 != 3 || st.P99 != 5 || st.Mean != 3 {
		t.Errorf("stats %+v", st)
	}
	if Summarize(nil).N != 0 {
		t.Error("empty stats")
	}
}
