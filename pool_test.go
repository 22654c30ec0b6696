package cluster

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

func TestSpreadRunsEverywhere(t *testing.T) {
	url := startNATS(t)
	set := newActiveSet()
	for _, n := range []string{"n1", "n2", "n3"} {
		a := NewApp("api", Spread())
		set.hooks(a, n)
		runPlatform(t, url, "t", n, []*Application{a})
	}
	eventually(t, 5*time.Second, "3 active instances", func() bool { act, _ := set.snapshot(); return len(act) == 3 })
}

func TestReplicasKeepsExactlyNAndReplacesLostOnes(t *testing.T) {
	url := startNATS(t)
	set := newActiveSet()
	plats := map[string]*Platform{}
	for _, n := range []string{"n1", "n2", "n3", "n4"} {
		a := NewApp("worker", Replicas(2))
		set.hooks(a, n)
		plats[n] = runPlatform(t, url, "t", n, []*Application{a})
	}
	eventually(t, 5*time.Second, "2 active", func() bool { act, _ := set.snapshot(); return len(act) == 2 })
	act, _ := set.snapshot()
	victim := act[0]
	plats[victim].Close()
	// The closed platform's hooks never run OnStop (it "crashed"); count the others.
	eventually(t, 3*time.Second, "a replacement", func() bool {
		act, _ := set.snapshot()
		n := 0
		for _, a := range act {
			if a != victim {
				n++
			}
		}
		return n == 2
	})
	set.mu.Lock()
	set.active[victim] = false
	over := set.count()
	set.mu.Unlock()
	if over != 2 {
		t.Fatalf("%d active, want 2", over)
	}
}

func TestAwayFromAppMovesOffTheLeadersNode(t *testing.T) {
	url := startNATS(t)
	dbSet, workerSet := newActiveSet(), newActiveSet()
	var violations atomic.Int32
	dbs := map[string]*Application{}
	for _, n := range []string{"n1", "n2", "n3"} {
		db := NewApp("database", Singleton())
		dbSet.hooks(db, n)
		w := NewApp("worker", Replicas(2), AwayFromApp("database"))
		workerSet.hooks(w, n)
		db.OnActive(func(context.Context) error {
			workerSet.mu.Lock()
			defer workerSet.mu.Unlock()
			if workerSet.active[n] {
				violations.Add(1)
			}
			return nil
		})
		dbs[n] = db
		runPlatform(t, url, "t", n, []*Application{db, w})
	}
	check := func() bool {
		dbAct, _ := dbSet.snapshot()
		wAct, _ := workerSet.snapshot()
		return len(dbAct) == 1 && len(wAct) == 2 && !slices.Contains(wAct, dbAct[0])
	}
	eventually(t, 5*time.Second, "1 db leader and 2 workers on the other nodes", check)
	for range 3 {
		dbAct, _ := dbSet.snapshot()
		if err := dbs[dbAct[0]].Election().StepDown(context.Background()); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "workers to move off the new leader's node", func() bool {
			now, _ := dbSet.snapshot()
			return len(now) == 1 && now[0] != dbAct[0] && check()
		})
	}
	// The db's first activation step stops local workers before its hooks
	// run, so no hook ever saw a worker beside it.
	if v := violations.Load(); v != 0 {
		t.Fatalf("%d times the database became active beside a worker", v)
	}
}
