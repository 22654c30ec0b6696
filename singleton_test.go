package cluster

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestSingletonOneLeaderAndStepDown(t *testing.T) {
	url := startNATS(t)
	set := newActiveSet()
	apps := map[string]*Application{}
	var passives atomic.Int32
	for _, n := range []string{"n1", "n2", "n3"} {
		a := NewApp("db", Singleton())
		set.hooks(a, n)
		a.OnPassive(func(context.Context) error { passives.Add(1); return nil })
		apps[n] = a
		runPlatform(t, url, "t", n, []*Application{a})
	}
	leader := func() string {
		act, _ := set.snapshot()
		if len(act) == 1 {
			return act[0]
		}
		return ""
	}
	eventually(t, 5*time.Second, "one leader", func() bool { return leader() != "" })
	first := leader()
	if !apps[first].Election().IsLeader() || apps[first].Election().Epoch() == 0 {
		t.Fatalf("election handle of %s disagrees with hooks", first)
	}
	for n, a := range apps {
		if got := a.Election().Leader(); n != first && got != first {
			eventually(t, time.Second, "standbys to see the leader", func() bool { return a.Election().Leader() == first })
		}
	}
	if passives.Load() < 3 {
		t.Fatalf("OnPassive ran %d times; every node starts as a standby", passives.Load())
	}
	epoch := apps[first].Election().Epoch()
	start := time.Now()
	if err := apps[first].Election().StepDown(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "a new leader well within the TTL", func() bool { l := leader(); return l != "" && l != first })
	t.Logf("step-down handover: %v", time.Since(start))
	second := leader()
	if e := apps[second].Election().Epoch(); e <= epoch {
		t.Fatalf("epoch did not grow: %d then %d", epoch, e)
	}
	if _, max := set.snapshot(); max != 1 {
		t.Fatalf("%d instances were active at once", max)
	}
	if err := apps[first].Election().StepDown(context.Background()); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("StepDown on a standby: %v", err)
	}
}

func TestSingletonFailsOverWhenLeaderConnectionDies(t *testing.T) {
	url := startNATS(t)
	set := newActiveSet()
	plats := map[string]*Platform{}
	for _, n := range []string{"n1", "n2"} {
		a := NewApp("db")
		set.hooks(a, n)
		plats[n] = runPlatform(t, url, "t", n, []*Application{a})
	}
	var first string
	eventually(t, 5*time.Second, "a leader", func() bool {
		act, _ := set.snapshot()
		if len(act) == 1 {
			first = act[0]
		}
		return first != ""
	})
	start := time.Now()
	plats[first].Close() // the connection closes, as when the process dies
	eventually(t, 2*time.Second, "the other node to take over before the 2s TTL", func() bool {
		act, _ := set.snapshot()
		return len(act) == 1 && act[0] != first
	})
	t.Logf("failover after connection loss: %v", time.Since(start))
	if _, max := set.snapshot(); max != 1 {
		t.Fatalf("%d instances active at once", max)
	}
}

func TestHookFailureHandsOver(t *testing.T) {
	url := startNATS(t)
	bad := NewApp("db")
	bad.OnActive(func(context.Context) error { return errors.New("cannot start") })
	runPlatform(t, url, "t", "bad", []*Application{bad})
	eventually(t, 5*time.Second, "the bad node to try and release", func() bool { return bad.Election().Leader() == "" || !bad.Election().IsLeader() })
	good := NewApp("db")
	set := newActiveSet()
	set.hooks(good, "good")
	runPlatform(t, url, "t", "good", []*Application{good})
	eventually(t, 5*time.Second, "the good node to lead", func() bool { return good.Election().IsLeader() })
}
