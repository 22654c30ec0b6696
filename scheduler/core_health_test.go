package scheduler

import (
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/jobspec"
)

func TestHealthy(t *testing.T) {
	a := alloc("x", "n1", 2)
	now := t0.Add(time.Minute)
	tests := []struct {
		name      string
		st        *InstanceState
		singleton bool
		want      bool
	}{
		{"no report", nil, false, false},
		{"running long enough", ptr(up("x", "n1", 2, now.Add(-minHealthy))), false, true},
		{"running not long enough", ptr(up("x", "n1", 2, now.Add(-minHealthy+time.Nanosecond))), false, false},
		{"running another version", ptr(up("x", "n1", 1, longAgo)), false, false},
		{"starting", ptr(starting("x", "n1", 2, longAgo)), false, false},
		{"failed", ptr(failedState("x", "n1", 2, longAgo, "")), false, false},
		{"standby of a singleton", ptr(standby("x", "n1", 2, longAgo)), true, true},
		{"standby of anything else", ptr(standby("x", "n1", 2, longAgo)), false, false},
		{"since in the future", ptr(up("x", "n1", 2, now.Add(time.Hour))), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := healthy(a, tt.st, tt.singleton, minHealthy, now); got != tt.want {
				t.Errorf("healthy = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFailed(t *testing.T) {
	a := alloc("x", "n1", 2)
	for _, tt := range []struct {
		st   *InstanceState
		want bool
	}{
		{nil, false},
		{ptr(failedState("x", "n1", 2, t0, "")), true},
		{ptr(failedState("x", "n1", 1, t0, "")), false}, // stale: the alloc was bumped since
		{ptr(up("x", "n1", 2, t0)), false},
	} {
		if got := failed(a, tt.st); got != tt.want {
			t.Errorf("failed(%+v) = %v, want %v", tt.st, got, tt.want)
		}
	}
}

func TestUpAt(t *testing.T) {
	for _, tt := range []struct {
		a    Alloc
		st   *InstanceState
		want bool
	}{
		{alloc("x", "n1", 2), ptr(up("x", "n1", 2, t0)), true},
		{alloc("x", "n1", 2), ptr(standby("x", "n1", 2, t0)), true},
		{alloc("x", "n1", 2), ptr(starting("x", "n1", 2, t0)), false},
		{alloc("x", "n1", 1), ptr(up("x", "n1", 1, t0)), false}, // an older version
		{alloc("x", "n1", 2), ptr(up("x", "n1", 1, t0)), false}, // bumped, not restarted yet
		{alloc("x", "n1", 2), nil, false},
	} {
		if got := upAt(tt.a, tt.st, 2); got != tt.want {
			t.Errorf("upAt(%v, %+v, 2) = %v, want %v", tt.a, tt.st, got, tt.want)
		}
	}
}

func TestPolicyOf(t *testing.T) {
	for _, tt := range []struct {
		in   jobspec.Update
		want updatePolicy
	}{
		{jobspec.Update{}, updatePolicy{maxParallel: 1}},
		{jobspec.Update{MaxParallel: -2, MinHealthyTime: -1, HealthyDeadline: -1}, updatePolicy{maxParallel: 1}},
		{jobspec.Update{MaxParallel: 3, MinHealthyTime: time.Second, HealthyDeadline: time.Minute}, updatePolicy{3, time.Second, time.Minute}},
	} {
		if got := policyOf(&jobspec.App{Update: tt.in}); got != tt.want {
			t.Errorf("policyOf(%+v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
