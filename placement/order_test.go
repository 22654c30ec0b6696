package placement

import (
	"reflect"
	"testing"
)

func TestPlanningOrder(t *testing.T) {
	rowsOf := func(apps []App, extra ...string) map[string]int {
		rows := make(map[string]int)
		for i, a := range apps {
			rows[a.Name] = i
		}
		for _, name := range extra {
			rows[name] = len(rows)
		}
		return rows
	}
	for _, tc := range []struct {
		name  string
		apps  []App
		extra []string // running but not wanted
		want  []string
	}{
		{
			name: "by name without dependencies",
			apps: []App{{Name: "a"}, {Name: "b"}, {Name: "c"}},
			want: []string{"a", "b", "c"},
		},
		{
			name: "after the apps kept away from or near",
			apps: []App{{Name: "api", Near: []string{"cache"}}, {Name: "cache"}, {Name: "db"}, {Name: "worker", AwayFrom: []string{"db"}}},
			want: []string{"cache", "api", "db", "worker"},
		},
		{
			name: "chains",
			apps: []App{{Name: "a", Near: []string{"b"}}, {Name: "b", AwayFrom: []string{"c"}}, {Name: "c"}},
			want: []string{"c", "b", "a"},
		},
		{
			name:  "unknown and unwanted apps impose no order",
			apps:  []App{{Name: "a", AwayFrom: []string{"gone", "typo"}}, {Name: "b"}},
			extra: []string{"gone"},
			want:  []string{"a", "b"},
		},
		{
			name: "a cycle is broken at one of its apps",
			apps: []App{{Name: "a", Near: []string{"b"}}, {Name: "b", AwayFrom: []string{"c"}}, {Name: "c", AwayFrom: []string{"b"}}},
			want: []string{"b", "a", "c"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, i := range planningOrder(tc.apps, rowsOf(tc.apps, tc.extra...)) {
				got = append(got, tc.apps[i].Name)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("order %v, want %v", got, tc.want)
			}
		})
	}
}
