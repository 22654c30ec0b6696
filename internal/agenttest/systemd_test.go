package agenttest

import (
	"path/filepath"
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
	c.mustGCL(0, "job", "stop", "db")
	c.eventually(10*time.Second, "the unit stopped everywhere", func() bool { return len(activeOn()) == 0 })
}
