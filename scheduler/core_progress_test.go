package scheduler

import (
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/placement"
)

func TestProgress(t *testing.T) {
	now := t0.Add(time.Hour)
	met := placement.AppPlan{Want: 2, Have: 2}
	tests := []struct {
		name    string
		allocs  []Alloc
		states  []InstanceState
		plan    placement.AppPlan
		failure string
		want    JobProgress
	}{
		{"complete",
			[]Alloc{alloc("x", "n1", 2), alloc("x", "n2", 2)},
			[]InstanceState{up("x", "n1", 2, longAgo), up("x", "n2", 2, longAgo)},
			met, "", JobProgress{Want: 2, Running: 2, Complete: true}},
		{"up but not proved healthy yet",
			[]Alloc{alloc("x", "n1", 2), alloc("x", "n2", 2)},
			[]InstanceState{up("x", "n1", 2, now), up("x", "n2", 2, longAgo)},
			met, "", JobProgress{Want: 2, Running: 2}},
		{"one still starting",
			[]Alloc{alloc("x", "n1", 2), alloc("x", "n2", 2)},
			[]InstanceState{up("x", "n1", 2, longAgo), starting("x", "n2", 2, now)},
			met, "", JobProgress{Want: 2, Running: 1}},
		{"surge in flight",
			[]Alloc{alloc("x", "n1", 2), surge("x", "n2", 2, "n1"), alloc("x", "n3", 2)},
			[]InstanceState{up("x", "n1", 2, longAgo), up("x", "n2", 2, now), up("x", "n3", 2, longAgo)},
			met, "", JobProgress{Want: 2, Running: 3}},
		{"updating",
			[]Alloc{alloc("x", "n1", 1), {Job: "x", Node: "n2", Version: 2, UpdatedAt: now}},
			[]InstanceState{up("x", "n1", 1, longAgo), up("x", "n2", 2, now)},
			met, "", JobProgress{Want: 2, Running: 1, Updating: true}},
		{"last update not proved healthy yet",
			[]Alloc{alloc("x", "n1", 2), {Job: "x", Node: "n2", Version: 2, UpdatedAt: now}},
			[]InstanceState{up("x", "n1", 2, longAgo), up("x", "n2", 2, now)},
			met, "", JobProgress{Want: 2, Running: 2, Updating: true}},
		{"halted rollout",
			[]Alloc{alloc("x", "n1", 1), {Job: "x", Node: "n2", Version: 2, UpdatedAt: t0}},
			[]InstanceState{up("x", "n1", 1, longAgo), failedState("x", "n2", 2, t0, "")},
			met, "rollout halted", JobProgress{Want: 2, Failed: "rollout halted"}},
		{"unmet and halted",
			[]Alloc{{Job: "x", Node: "n2", Version: 2, UpdatedAt: t0}},
			[]InstanceState{failedState("x", "n2", 2, t0, "")},
			placement.AppPlan{Want: 2, Have: 1}, "rollout halted",
			JobProgress{Want: 2, Failed: "rollout halted; placed 1 of 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWork(replicasJob("x", 2, 2), now, tt.allocs, tt.states...)
			w.linkSurges()
			w.rolloutFailure = tt.failure
			if got := w.progress(tt.plan); got != tt.want {
				t.Errorf("progress = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestUnplannedProgress(t *testing.T) {
	allocs := []Alloc{alloc("x", "n1", 3), alloc("x", "n2", 2)}
	states := indexStates([]InstanceState{up("x", "n1", 3, t0), up("x", "n2", 2, t0)})
	got := unplannedProgress(Job{Name: "x", Version: 3}, allocs, states, "broken")
	if want := (JobProgress{Running: 1, Failed: "broken"}); got != want {
		t.Errorf("unplannedProgress = %+v, want %+v", got, want)
	}
}
