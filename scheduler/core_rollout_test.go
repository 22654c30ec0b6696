package scheduler

import (
	"slices"
	"testing"
	"time"
)

// bumpedNodes lists the nodes whose allocation rollOut bumped.
func bumpedNodes(w *jobWork) []string {
	var out []string
	for _, s := range w.slots {
		if s.alloc.UpdatedAt.Equal(w.now) {
			out = append(out, s.alloc.Node)
		}
	}
	return out
}

func TestRollOut(t *testing.T) {
	now := t0.Add(time.Hour)
	old := func(node string) InstanceState { return up("x", node, 1, longAgo) }
	tests := []struct {
		name        string
		job         Job
		maxParallel int
		allocs      []Alloc
		states      []InstanceState
		want        []string
	}{
		{"first batch, by node", replicasJob("x", 2, 3), 2,
			[]Alloc{alloc("x", "n1", 1), alloc("x", "n2", 1), alloc("x", "n3", 1)},
			[]InstanceState{old("n1"), old("n2"), old("n3")},
			[]string{"n1", "n2"}},
		{"unhealthy ones first", replicasJob("x", 2, 3), 1,
			[]Alloc{alloc("x", "n1", 1), alloc("x", "n2", 1), alloc("x", "n3", 1)},
			[]InstanceState{old("n1"), starting("x", "n2", 1, longAgo), old("n3")},
			[]string{"n2"}},
		{"previous batch not healthy yet", replicasJob("x", 2, 3), 2,
			[]Alloc{alloc("x", "n1", 2), alloc("x", "n2", 1), alloc("x", "n3", 1)},
			[]InstanceState{up("x", "n1", 2, now.Add(-time.Second)), old("n2"), old("n3")},
			nil},
		{"previous batch healthy", replicasJob("x", 2, 3), 2,
			[]Alloc{alloc("x", "n1", 2), alloc("x", "n2", 1), alloc("x", "n3", 1)},
			[]InstanceState{up("x", "n1", 2, longAgo), old("n2"), old("n3")},
			[]string{"n2", "n3"}},
		{"a surge's source is not updated", replicasJob("x", 2, 2), 2,
			[]Alloc{alloc("x", "n1", 1), surge("x", "n2", 1, "n1"), alloc("x", "n3", 1)},
			[]InstanceState{old("n1"), old("n2"), old("n3")},
			[]string{"n2", "n3"}},
		{"nothing outdated", replicasJob("x", 1, 2), 2,
			[]Alloc{alloc("x", "n1", 1), alloc("x", "n2", 1)},
			[]InstanceState{old("n1"), old("n2")},
			nil},
		{"singleton: standbys first, the leader stays out of their batch", singletonJob("x", 2), 3,
			[]Alloc{alloc("x", "n1", 1), alloc("x", "n2", 1), alloc("x", "n3", 1)},
			[]InstanceState{standby("x", "n1", 1, longAgo), leader("x", "n2", 1, longAgo), standby("x", "n3", 1, longAgo)},
			[]string{"n1", "n3"}},
		{"singleton: the leader last, alone", singletonJob("x", 2), 3,
			[]Alloc{alloc("x", "n1", 2), alloc("x", "n2", 1), alloc("x", "n3", 2)},
			[]InstanceState{standby("x", "n1", 2, longAgo), leader("x", "n2", 1, longAgo), standby("x", "n3", 2, longAgo)},
			[]string{"n2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWork(tt.job, now, tt.allocs, tt.states...)
			w.policy.maxParallel = tt.maxParallel
			w.linkSurges()
			w.rollOut(w.nextBatch(), nil)
			if got := bumpedNodes(w); !slices.Equal(got, tt.want) {
				t.Errorf("bumped %v, want %v", got, tt.want)
			}
			for _, s := range w.slots {
				if s.alloc.UpdatedAt.Equal(now) && s.alloc.Version != tt.job.Version {
					t.Errorf("%v bumped to the wrong version", s.alloc)
				}
			}
		})
	}
}

func TestRollOutHalted(t *testing.T) {
	w := newWork(replicasJob("x", 2, 2), t0, []Alloc{alloc("x", "n1", 1), alloc("x", "n2", 1)})
	w.rolloutFailure = "halted"
	w.rollOut(w.nextBatch(), nil)
	if got := bumpedNodes(w); len(got) > 0 {
		t.Errorf("a halted rollout bumped %v", got)
	}
}

func TestRollOutSkipsLeaving(t *testing.T) {
	w := newWork(singletonJob("x", 2), t0, []Alloc{alloc("x", "n1", 1), alloc("x", "n2", 1)})
	w.slots[0].fate = fateLeaving
	w.rollOut(w.nextBatch(), nil)
	if got := bumpedNodes(w); !slices.Equal(got, []string{"n2"}) {
		t.Errorf("bumped %v, want only the allocation that stays", got)
	}
}
