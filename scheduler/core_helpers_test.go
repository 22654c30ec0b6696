package scheduler

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/jobspec"
)

// t0 is the start of every test's time line.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	minHealthy = 10 * time.Second
	deadline   = time.Minute
)

// appSpec returns a spec with a short update policy, for tests.
func appSpec(name string, mode jobspec.Mode, count int) *jobspec.App {
	return &jobspec.App{
		Name: name, Mode: mode, Count: count,
		Update: jobspec.Update{MaxParallel: 1, MinHealthyTime: minHealthy, HealthyDeadline: deadline},
	}
}

func replicasJob(name string, version uint64, count int) Job {
	return Job{Name: name, Version: version, Spec: appSpec(name, jobspec.ModeReplicas, count)}
}

func singletonJob(name string, version uint64) Job {
	return Job{Name: name, Version: version, Spec: appSpec(name, jobspec.ModeSingleton, 0)}
}

func spreadJob(name string, version uint64) Job {
	return Job{Name: name, Version: version, Spec: appSpec(name, jobspec.ModeSpread, 0)}
}

// liveNodes returns eligible nodes n1..nN.
func liveNodes(n int) []NodeInfo {
	nodes := make([]NodeInfo, n)
	for i := range nodes {
		nodes[i] = NodeInfo{ID: fmt.Sprintf("n%d", i+1), Address: fmt.Sprintf("10.0.0.%d", i+1), Eligible: true}
	}
	return nodes
}

// draining marks the named nodes draining.
func draining(nodes []NodeInfo, ids ...string) []NodeInfo {
	out := append([]NodeInfo(nil), nodes...)
	for i := range out {
		for _, id := range ids {
			if out[i].ID == id {
				out[i].Draining = true
			}
		}
	}
	return out
}

func alloc(job, node string, version uint64) Alloc {
	return Alloc{Job: job, Node: node, Version: version}
}

func surge(job, node string, version uint64, replaces string) Alloc {
	return Alloc{Job: job, Node: node, Version: version, Replaces: replaces}
}

// up is an instance running at version since at, long enough ago by
// default to be healthy.
func up(job, node string, version uint64, since time.Time) InstanceState {
	return InstanceState{Job: job, Node: node, Version: version, State: StateRunning, Active: true, Since: since}
}

func standby(job, node string, version uint64, since time.Time) InstanceState {
	return InstanceState{Job: job, Node: node, Version: version, State: StateStandby, Since: since}
}

func leader(job, node string, version uint64, since time.Time) InstanceState {
	return up(job, node, version, since)
}

func starting(job, node string, version uint64, since time.Time) InstanceState {
	return InstanceState{Job: job, Node: node, Version: version, State: StateStarting, Since: since}
}

func failedState(job, node string, version uint64, since time.Time, reason string) InstanceState {
	return InstanceState{Job: job, Node: node, Version: version, State: StateFailed, Since: since, Reason: reason}
}

// longAgo is a Since old enough for any instance to count as healthy.
var longAgo = t0.Add(-time.Hour)

func assertAllocs(t *testing.T, got []Alloc, want ...Alloc) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("allocs\n got %v\nwant %v", got, want)
	}
}

func (a Alloc) String() string {
	s := fmt.Sprintf("%s@%s:v%d", a.Job, a.Node, a.Version)
	if a.Replaces != "" {
		s += "<" + a.Replaces
	}
	if !a.UpdatedAt.IsZero() {
		s += fmt.Sprintf("(upd %s)", a.UpdatedAt.Sub(t0))
	}
	return s
}

// allocsOf returns the allocations of one job.
func allocsOf(allocs []Alloc, job string) []Alloc {
	var out []Alloc
	for _, a := range allocs {
		if a.Job == job {
			out = append(out, a)
		}
	}
	return out
}

// nodesOf returns the nodes of a job's allocations.
func nodesOf(allocs []Alloc, job string) []string {
	var out []string
	for _, a := range allocsOf(allocs, job) {
		out = append(out, a.Node)
	}
	return out
}
