//go:build linux

package crashtest

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/internal/sqlitetest"
	"github.com/ozanturksever/go-cluster/replication"
)

// Regression tests for two bugs TestSQLiteFailover found: SyncDB hanging
// while the app writes, and a stalled leader's app never told it lost the
// leadership.

// TestSQLiteSyncWhileWriting: SyncDB (Flush) on a leader whose app keeps
// committing must return once what was committed before the call is in
// the log. Flush waits until the shipped position EQUALS the target that
// Sync read; a shipper that ships the target and then the next
// transaction before the waiter looks again passes it, and the waiter
// never sees it: SyncDB hangs until its context ends.
func TestSQLiteSyncWhileWriting(t *testing.T) {
	tc := newTestCluster(t, time.Second)
	tc.Mode = ModeSQLite
	sqlitetest.WriterPath(t)
	s := newSQLiteRounds(t, tc, 2*time.Minute)
	ctx := s.ctx
	tc.start("n1", tc.url)
	leader := tc.settledLeader()
	tc.start("n2", tc.url)
	tc.waitReady("n2", 1)
	w := s.writer(tc.DBPath(leader.Node), 0, "300")
	defer func() {
		w.Signal(syscall.SIGKILL)
		w.Wait(t, true)
	}()
	w.WaitCommits(ctx, 30)
	failed := 0
	for i := 1; i <= 2; i++ {
		evs, _, err := tc.State()
		if err != nil {
			t.Fatal(err)
		}
		synced, errs := Count(evs, KindSynced, leader.Node), Count(evs, KindSyncErr, leader.Node)
		committed, _ := w.Committed()
		asked := time.Now()
		if err := tc.Node(leader.Node).Signal(syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		// SyncDB gets 20 s in the node; anything above a second is a hang
		// at 300 commits/s.
		_, _, err = tc.WaitFor(3*time.Second, func(evs []Event, _ []Interval) (bool, error) {
			return Count(evs, KindSynced, leader.Node) > synced || Count(evs, KindSyncErr, leader.Node) > errs, nil
		})
		if err != nil {
			failed++
			// Pause the writer: the leader ships everything and the
			// standby applies it long before the node's SyncDB gives up
			// (20 s after the signal).
			last := committed[len(committed)-1]
			if err := w.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			pausedAt := time.Now()
			evs, _ := tc.waitFor("the hung SyncDB to give up", 25*time.Second, func(evs []Event, _ []Interval) bool {
				return Count(evs, KindSynced, leader.Node) > synced || Count(evs, KindSyncErr, leader.Node) > errs
			})
			gaveUp := Count(evs, KindSyncErr, leader.Node) > errs
			var st map[string]replication.Status
			tc.waitFor("the standby to have applied everything", 20*time.Second, func([]Event, []Interval) bool {
				st = s.statuses()
				l, f := st[leader.Node], st["n2"]
				return l.Seq > 0 && f.Seq == l.Seq
			})
			ids := s.replicaIDs("n2")
			t.Errorf("sync %d: SyncDB failed: %v (after %v; the writer paused for the last %v of it); %d IDs were committed before the signal (last %d); "+
				"the leader shipped up to log transaction %d and the standby's replica, applied from the log, holds %d IDs up to %v: "+
				"the target was shipped, but Flush waits to see the shipped position EQUAL to it",
				i, gaveUp, time.Since(asked).Round(time.Millisecond), time.Since(pausedAt).Round(time.Millisecond),
				len(committed), last, st[leader.Node].Seq, len(ids), lastOf(ids))
			if err := w.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Logf("sync %d: returned after %v", i, time.Since(asked).Round(time.Millisecond))
	}
	if failed > 0 {
		b, _ := os.ReadFile(tc.Node(leader.Node).ErrPath)
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "sync") {
				lines = append(lines, l)
			}
		}
		t.Logf("%s's stderr about sync:\n%s", leader.Node, strings.Join(lines, "\n"))
	}
}

// TestPausedLeaderOnPassive: a leader paused (SIGSTOP) past its lease
// deadline is demoted when it resumes, and its app must hear it: OnPassive
// runs, late (its context already done) but runs. The lifecycle skips any
// hook whose context is done ("hook not run"), so the app of a stalled
// leader is never told it lost the leadership, and goes on acting (with
// WithSQLite: writing to a database nobody ships any more).
func TestPausedLeaderOnPassive(t *testing.T) {
	tc := newTestCluster(t, time.Second)
	tc.start("n1", tc.url)
	leader := tc.settledLeader()
	tc.start("n2", tc.url)
	tc.waitReady("n2", 1)
	pausedAt, err := tc.Node(leader.Node).Pause()
	if err != nil {
		t.Fatal(err)
	}
	tc.waitFor("a successor", 15*time.Second, func(_ []Event, ivs []Interval) bool {
		_, ok := FirstStartAfter(ivs, pausedAt)
		return ok
	})
	if _, err := tc.Node(leader.Node).Resume(); err != nil {
		t.Fatal(err)
	}
	// The library's deactivation has finished when the node logs
	// "passive" for the term.
	passive := fmt.Sprintf("msg=passive platform=%s node=%s app=%s epoch=%d", tc.Platform, leader.Node, AppName, leader.Epoch)
	var stderr string
	tc.waitFor("the old leader's deactivation", 10*time.Second, func([]Event, []Interval) bool {
		b, _ := os.ReadFile(tc.Node(leader.Node).ErrPath)
		stderr = string(b)
		return strings.Contains(stderr, passive)
	})
	old, _ := Find(tc.mustIntervals(), leader.Node, leader.Epoch)
	if !old.Passive {
		var lines []string
		for _, l := range strings.Split(stderr, "\n") {
			if strings.Contains(l, "stopping") || strings.Contains(l, "passive") || strings.Contains(l, "renew") {
				lines = append(lines, l)
			}
		}
		t.Errorf("%s was demoted after the pause (%v) but its OnPassive never ran; its stderr:\n%s", leader.Node, old, strings.Join(lines, "\n"))
	}
	tc.finish()
}
