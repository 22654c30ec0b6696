package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/internal/sqlitetest"
)

// TestSQLiteFollowsTheLeader runs a WithSQLite singleton on three
// platforms. A writer process writes to the leader's database; each
// step-down hands the database over: the successor's OnActive finds it at
// its path holding every committed transaction, status records show one
// leader and caught-up standbys, and SyncDB works only on the leader.
func TestSQLiteFollowsTheLeader(t *testing.T) {
	url := startNATS(t)
	dir := t.TempDir()
	type seen struct {
		node string
		ids  []int64
	}
	var mu sync.Mutex
	var activations []seen
	var kinds []string
	apps := map[string]*Application{}
	paths := map[string]string{}
	for _, n := range []string{"n1", "n2", "n3"} {
		path := filepath.Join(dir, n, "data", "app.db")
		a := NewApp("db", Singleton(), WithSQLite(path))
		a.OnActive(func(ctx context.Context) error {
			// The database is in place before the app starts.
			_, _, ids := sqlitetest.DBState(t, path)
			mu.Lock()
			activations = append(activations, seen{n, ids})
			mu.Unlock()
			return nil
		})
		apps[n], paths[n] = a, path
		runPlatform(t, url, "sq", n, []*Application{a}, WithStateDir(filepath.Join(dir, n, "state")),
			WithEventObserver(func(e Event) {
				mu.Lock()
				kinds = append(kinds, e.Kind)
				mu.Unlock()
			}))
	}
	leader := func() string {
		for n, a := range apps {
			if a.Election().IsLeader() {
				if st, ok := a.ReplicationStatus(); ok && st.Role == "leader" {
					return n
				}
			}
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var committed []int64
	for round := range 3 {
		eventually(t, 10*time.Second, "a replication leader", func() bool { return leader() != "" })
		l := leader()
		run := sqlitetest.StartWriter(t, ctx, "-db", paths[l], "-start", fmt.Sprint(len(committed)+1), "-n", "120",
			"-blob-every", "40", "-vacuum-every", "50", "-checkpoint-every", "30").Wait(t, false)
		committed = append(committed, run.Commits...)
		if err := apps[l].SyncDB(ctx); err != nil {
			t.Fatalf("round %d: SyncDB on the leader: %v", round, err)
		}
		for n, a := range apps {
			if n != l {
				if err := a.SyncDB(ctx); err == nil {
					t.Fatalf("SyncDB on standby %s succeeded", n)
				}
			}
		}
		eventually(t, 20*time.Second, "standby status records caught up", func() bool {
			st, err := apps[l].platform.ReplicationStatuses(ctx, "db")
			if err != nil || len(st) != 3 {
				return false
			}
			leaders := 0
			for _, s := range st {
				if s.Role == "leader" {
					leaders++
				}
			}
			want, _ := apps[l].ReplicationStatus()
			for _, s := range st {
				if s.Role == "standby" && s.Seq != want.Seq {
					return false
				}
			}
			return leaders == 1
		})
		if err := apps[l].Election().StepDown(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "a new leader", func() bool { n := leader(); return n != "" && n != l })
		mu.Lock()
		last := activations[len(activations)-1]
		mu.Unlock()
		if !slices.Equal(last.ids, committed) {
			t.Fatalf("round %d: %s's OnActive found %d IDs, %d committed", round, last.node, len(last.ids), len(committed))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, k := range []string{EventReplicationPromoted, EventReplicationHandoff, EventReplicationBootstrapped} {
		if !slices.Contains(kinds, k) {
			t.Errorf("no %s event (%v)", k, kinds)
		}
	}
}
