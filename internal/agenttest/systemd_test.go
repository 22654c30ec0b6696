package agenttest

import (
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/internal/systemdtest"
)

// A job whose backend is a systemd unit: the unit runs on the leader's
// node only, and moves with a step-down. Each agent drives its own user
// manager (its node's systemd).
func TestSystemdJob(t *testing.T) {
	managers := map[string]*systemdtest.UserManager{}
	for _, n := range []string{"n1", "n2"} {
		m := systemdtest.Start(t)
		m.InstallUnit(t, "db.service", "[Service]\nExecStart=/bin/sleep 100000\n")
		managers[n] = m
	}
	c := newCluster(t)
	for n, m := range managers {
		c.start(n, "-systemd-user-socket", m.PrivateSocket)
	}
	job := filepath.Join(t.TempDir(), "db.hcl")
	writeFile(t, job, `app "db" {
  mode = "singleton"
  backend "systemd" {
    unit = "db.service"
  }
  restart {
    attempts = 1
    delay    = "50ms"
  }
  update {
    min_healthy_time = "1s"
  }
}
`)
	c.mustGCL(0, "job", "run", job)
	activeOn := func() []string {
		var on []string
		for _, n := range []string{"n1", "n2"} {
			if managers[n].Show(t, "db.service", "ActiveState") == "active" {
				on = append(on, n)
			}
		}
		return on
	}
	var first string
	c.eventually(10*time.Second, "the unit active on one node", func() bool {
		on := activeOn()
		if len(on) == 1 {
			first = on[0]
		}
		return len(on) == 1
	})
	if got := c.appLeader("db"); got != first {
		t.Fatalf("leader %q, unit active on %s", got, first)
	}
	c.mustGCL(0, "app", "stepdown", "db")
	c.eventually(10*time.Second, "the unit moved to the other node", func() bool {
		on := activeOn()
		return len(on) == 1 && on[0] != first
	})
	// The unit dies on the leader: the restart block allows one restart in
	// place; the second death makes the instance step down, and the unit
	// runs on the first node again.
	second := "n1"
	if first == "n1" {
		second = "n2"
	}
	killUnit := func() {
		t.Helper()
		pid, err := strconv.Atoi(managers[second].Show(t, "db.service", "MainPID"))
		if err != nil || pid == 0 {
			t.Fatalf("MainPID on %s: %d %v", second, pid, err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	oldPID := managers[second].Show(t, "db.service", "MainPID")
	killUnit()
	c.eventually(10*time.Second, "the unit restarted on "+second, func() bool {
		pid := managers[second].Show(t, "db.service", "MainPID")
		return pid != "0" && pid != oldPID && managers[second].Show(t, "db.service", "ActiveState") == "active"
	})
	if got := activeOn(); len(got) != 1 || got[0] != second {
		t.Fatalf("after a restart in place the unit is active on %v, want %s only", got, second)
	}
	killUnit()
	c.eventually(10*time.Second, "the unit back on "+first, func() bool {
		on := activeOn()
		return len(on) == 1 && on[0] == first
	})
	// Reported in the agent's metrics.
	c.eventually(5*time.Second, "backend events in the metrics", func() bool {
		body := httpGet(t, "http://"+c.httpAddr(second)+"/metrics")
		return strings.Contains(body, `gcl_events_total{job="db",kind="backend.failed"} 2`) &&
			strings.Contains(body, `gcl_events_total{job="db",kind="backend.restarted"} 1`) &&
			strings.Contains(body, `gcl_events_total{job="db",kind="backend.started"} 1`)
	})

	c.mustGCL(0, "job", "stop", "db")
	c.eventually(10*time.Second, "the unit stopped everywhere", func() bool { return len(activeOn()) == 0 })
}
