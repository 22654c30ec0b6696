package control

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/jobspec"
	"github.com/ozanturksever/go-cluster/scheduler"
	"github.com/ozanturksever/go-cluster/state"
)

func testStore(t *testing.T) (context.Context, *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	srv, err := state.StartServer(ctx, state.ServerConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, js, err := state.Connect(ctx, state.ConnectConfig{URL: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s, err := Open(ctx, js, "t", 1)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, s
}

func spec(name string, count int) *jobspec.App {
	return &jobspec.App{Name: name, Mode: jobspec.ModeReplicas, Count: count,
		Source: jobspec.Location{Filename: "x.hcl", Line: count}}
}

func TestSubmitVersionsAndCheckIndex(t *testing.T) {
	ctx, s := testStore(t)
	zero := uint64(0)
	j, changed, err := s.SubmitJob(ctx, spec("api", 2), SubmitOptions{CheckVersion: &zero})
	if err != nil || !changed || j.Version != 1 {
		t.Fatalf("first submit: %+v %v %v", j, changed, err)
	}
	// The same spec declared elsewhere in a file is no change.
	same := spec("api", 2)
	same.Source.Line = 99
	if j, changed, err = s.SubmitJob(ctx, same, SubmitOptions{}); err != nil || changed || j.Version != 1 {
		t.Fatalf("unchanged submit: %+v %v %v", j, changed, err)
	}
	if _, _, err := s.SubmitJob(ctx, spec("api", 3), SubmitOptions{CheckVersion: &zero}); !errors.Is(err, ErrCheckIndex) {
		t.Fatalf("check-index 0 on an existing job: %v", err)
	}
	one := uint64(1)
	if j, _, err = s.SubmitJob(ctx, spec("api", 3), SubmitOptions{CheckVersion: &one}); err != nil || j.Version != 2 {
		t.Fatalf("check-index 1: %+v %v", j, err)
	}
	if _, _, err := s.SubmitJob(ctx, spec("gcl-x", 1), SubmitOptions{}); !errors.Is(err, ErrReservedName) {
		t.Fatalf("reserved name: %v", err)
	}
}

func TestStopRevertHistoryPurge(t *testing.T) {
	ctx, s := testStore(t)
	for _, n := range []int{1, 2} {
		if _, _, err := s.SubmitJob(ctx, spec("api", n), SubmitOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	stopped, err := s.StopJob(ctx, "api", false)
	if err != nil || !stopped.Stopped || stopped.Version != 3 {
		t.Fatalf("stop: %+v %v", stopped, err)
	}
	// Submitting the running spec again restarts a stopped job.
	if j, changed, err := s.SubmitJob(ctx, spec("api", 2), SubmitOptions{}); err != nil || !changed || j.Stopped || j.Version != 4 {
		t.Fatalf("resubmit after stop: %+v %v %v", j, changed, err)
	}
	reverted, err := s.RevertJob(ctx, "api", 1)
	if err != nil || reverted.Version != 5 || reverted.Spec.Count != 1 {
		t.Fatalf("revert: %+v %v", reverted, err)
	}
	if _, err := s.RevertJob(ctx, "api", 3); err == nil {
		t.Fatal("reverting to a stop version succeeded")
	}
	if _, err := s.RevertJob(ctx, "api", 42); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("revert to a missing version: %v", err)
	}
	hist, err := s.JobHistory(ctx, "api")
	if err != nil || len(hist) != 5 {
		t.Fatalf("history: %d versions, %v", len(hist), err)
	}
	for i, j := range hist {
		if j.Version != uint64(i+1) {
			t.Fatalf("history out of order: %d at %d", j.Version, i)
		}
	}
	if _, err := s.StopJob(ctx, "api", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Job(ctx, "api"); !errors.Is(err, ErrJobNotFound) {
		t.Fatalf("purged job still readable: %v", err)
	}
	if jobs, err := s.Jobs(ctx); err != nil || len(jobs) != 0 {
		t.Fatalf("jobs after purge: %v %v", jobs, err)
	}
}

func TestDiffSpecs(t *testing.T) {
	a := spec("api", 2)
	b := spec("api", 3)
	b.Meta = map[string]string{"team": "core"}
	b.Source.Line = 7
	got := DiffSpecs(a, b)
	want := []string{"~ count: 2 => 3", `+ meta.team = "core"`}
	if len(got) != len(want) {
		t.Fatalf("diff: %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("diff[%d] = %q, want %q", i, got[i], want[i])
		}
	}
	if d := DiffSpecs(a, a); len(d) != 0 {
		t.Fatalf("diff of equal specs: %v", d)
	}
}

func TestNodeControlsAndAllocs(t *testing.T) {
	ctx, s := testStore(t)
	c, err := s.UpdateNodeControl(ctx, "n1", func(c *NodeControl) { c.Drain = true })
	if err != nil || !c.Drain {
		t.Fatal(c, err)
	}
	all, err := s.NodeControls(ctx)
	if err != nil || !all["n1"].Drain || all["n2"].Drain {
		t.Fatalf("controls: %+v %v", all, err)
	}
	if na, err := s.NodeAllocs(ctx, "n1"); err != nil || len(na.Allocs) != 0 || na.Revision != 0 {
		t.Fatalf("no allocations yet: %+v %v", na, err)
	}
	al := []scheduler.Alloc{{Job: "api", Node: "n1", Version: 1}}
	if err := s.WriteAllocs(ctx, "n1", al, 0); err != nil {
		t.Fatal(err)
	}
	// A scheduler that read before that write loses its compare-and-set.
	if err := s.WriteAllocs(ctx, "n1", al, 0); !state.IsCASFailure(err) {
		t.Fatalf("stale write: %v", err)
	}
	na, err := s.NodeAllocs(ctx, "n1")
	if err != nil || len(na.Allocs) != 1 {
		t.Fatalf("allocations: %+v %v", na, err)
	}
	if err := s.WriteAllocs(ctx, "n1", nil, na.Revision); err != nil {
		t.Fatal(err)
	}
	if all, err := s.Allocs(ctx); err != nil || len(all) != 0 {
		t.Fatalf("allocations after clearing: %+v %v", all, err)
	}
}
