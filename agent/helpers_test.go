package agent

import (
	"testing"

	"github.com/ozanturksever/go-cluster/control"
	"github.com/ozanturksever/go-cluster/scheduler"
)

func TestIsLoopback(t *testing.T) {
	for _, tt := range []struct {
		hosts []string
		want  bool
	}{
		{[]string{"", "127.0.0.1"}, true},
		{[]string{"::1"}, true},
		{[]string{"localhost"}, true},
		{[]string{"0.0.0.0", "127.0.0.1"}, false},
		{[]string{"", "10.0.0.1"}, false},
		{[]string{"", ""}, true},
	} {
		if got := isLoopback(tt.hosts...); got != tt.want {
			t.Errorf("isLoopback(%q) = %v, want %v", tt.hosts, got, tt.want)
		}
	}
}

func TestEnvName(t *testing.T) {
	if got := envName("http-api.v2"); got != "HTTP_API_V2" {
		t.Fatalf("envName = %q", got)
	}
}

// An assignment needs another pass when a job on this node is missing,
// was refused, or runs another version; not when all run as assigned.
func TestNeedsRetry(t *testing.T) {
	a := &Agent{cfg: Config{Node: "n1"}, instances: map[string]*instance{}}
	na := control.NodeAllocs{Allocs: []scheduler.Alloc{{Job: "api", Node: "n1", Version: 2}}}
	if !a.needsRetry(na) {
		t.Fatal("missing instance: no retry")
	}
	a.instances["api"] = &instance{job: control.Job{Name: "api", Version: 2}}
	if !a.needsRetry(na) {
		t.Fatal("unregistered instance: no retry")
	}
	a.instances["api"].registered = true
	if a.needsRetry(na) {
		t.Fatal("running as assigned: retry")
	}
	a.instances["api"].job.Version = 1
	if !a.needsRetry(na) {
		t.Fatal("old version: no retry")
	}
	if a.needsRetry(control.NodeAllocs{}) {
		t.Fatal("empty assignment: retry")
	}
}
