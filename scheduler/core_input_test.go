package scheduler

import (
	"reflect"
	"testing"
	"time"
)

func TestNormalizeNodes(t *testing.T) {
	in := []NodeInfo{
		{ID: "b", Eligible: true},
		{ID: ""},
		{ID: "a", Address: "10.0.0.2", Eligible: true},
		{ID: "a", Address: "10.0.0.1", Eligible: true, Labels: map[string]string{"z": "1"}},
		{ID: "a", Address: "10.0.0.1", Eligible: true, Labels: map[string]string{"z": "0"}},
	}
	want := []NodeInfo{
		{ID: "a", Address: "10.0.0.1", Eligible: true, Labels: map[string]string{"z": "0"}},
		{ID: "b", Eligible: true},
	}
	if got := normalizeNodes(in); !reflect.DeepEqual(got, want) {
		t.Errorf("normalizeNodes = %+v, want %+v", got, want)
	}
}

func TestNormalizeJobs(t *testing.T) {
	stopped := Job{Name: "a", Version: 3, Stopped: true}
	in := []Job{{Name: "b", Version: 1}, {Name: "a", Version: 2}, {Name: "a", Version: 3}, stopped, {Name: ""}}
	want := []Job{stopped, {Name: "b", Version: 1}}
	if got := normalizeJobs(in); !reflect.DeepEqual(got, want) {
		t.Errorf("normalizeJobs = %+v, want %+v", got, want)
	}
}

func TestGroupAllocs(t *testing.T) {
	live := nodeIndex(liveNodes(2))
	in := []Alloc{
		alloc("b", "n2", 1),
		alloc("a", "n2", 1),
		alloc("a", "n3", 1), // node gone
		alloc("a", "n1", 1),
		alloc("a", "n1", 2), // duplicate: the higher version wins
		alloc("", "n1", 1),  // no job
	}
	want := map[string][]Alloc{
		"a": {alloc("a", "n1", 2), alloc("a", "n2", 1)},
		"b": {alloc("b", "n2", 1)},
	}
	if got := groupAllocs(in, live); !reflect.DeepEqual(got, want) {
		t.Errorf("groupAllocs = %v, want %v", got, want)
	}
}

func TestIndexStates(t *testing.T) {
	old := up("a", "n1", 1, t0)
	newer := starting("a", "n1", 2, t0.Add(-time.Minute))
	later := up("a", "n1", 2, t0)
	for _, order := range [][]InstanceState{{old, newer, later}, {later, newer, old}, {newer, later, old}} {
		got := indexStates(order)
		if len(got) != 1 || got[allocKey{"a", "n1"}] != later {
			t.Errorf("indexStates(%v) = %v, want the latest report of the highest version", order, got)
		}
	}
}
