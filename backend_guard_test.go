//go:build linux

package cluster

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/election"
	"github.com/ozanturksever/go-cluster/internal/systemdtest"
)

// unitGuards lists the unit guard processes this test process runs for
// units of the user manager listening on socket.
func unitGuards(t *testing.T, socket string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 || f[0] == "Z" || f[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(string(bytes.TrimRight(cmdline, "\x00")), "\x00")
		if args[0] == "gcl-unit-guard" && slices.Contains(args, "peer:unix:path="+socket) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func mainPID(t *testing.T, n *backendNode) int {
	t.Helper()
	pid, err := strconv.Atoi(n.sd.Show(t, "db.service", "MainPID"))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// The leader's unit runs under a guard process that the lease renewals
// feed: the unit outlives many terms' stop-by times, and the guard never
// has to act. A step-down disarms it: it is gone once the lease is
// released, and the new leader has its own.
func TestSystemdBackendGuard(t *testing.T) {
	url := startNATS(t)
	nodes := startBackendNodes(t, url, "n1", "n2")
	eventually(t, 10*time.Second, "a leader", func() bool { return leaderOf(nodes) != nil })
	first := leaderOf(nodes)
	eventually(t, 5*time.Second, "the leader's unit active", func() bool { return first.unitState(t) == "active" })
	guards := unitGuards(t, first.sd.PrivateSocket)
	if len(guards) != 1 {
		t.Fatalf("leader runs %d unit guards (%v), want 1", len(guards), guards)
	}
	for _, n := range nodes {
		if n != first {
			if g := unitGuards(t, n.sd.PrivateSocket); len(g) != 0 {
				t.Fatalf("standby %s runs unit guards %v", n.name, g)
			}
		}
	}

	// Several terms' worth of renewals: were the guard not fed, it would
	// kill the unit about one TTL after it was armed. Waiting out the time
	// is the point: it is the absence of an action being tested.
	pid := mainPID(t, first)
	ttl := election.DefaultTiming().TTL
	for end := time.Now().Add(2 * ttl); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if st := first.unitState(t); st != "active" || mainPID(t, first) != pid {
			t.Fatalf("the leader's unit is %s (main pid %d, was %d): its guard acted while the lease was renewed", st, mainPID(t, first), pid)
		}
		if g := unitGuards(t, first.sd.PrivateSocket); !slices.Equal(g, guards) {
			t.Fatalf("unit guards %v, were %v", g, guards)
		}
	}

	if err := first.app.Election().StepDown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if g := unitGuards(t, first.sd.PrivateSocket); len(g) != 0 {
		t.Fatalf("unit guards %v still run after the step-down: not disarmed", g)
	}
	eventually(t, 10*time.Second, "a new leader", func() bool { l := leaderOf(nodes); return l != nil && l != first })
	second := leaderOf(nodes)
	eventually(t, 5*time.Second, "a guard on the new leader", func() bool { return len(unitGuards(t, second.sd.PrivateSocket)) == 1 })
}

// A unit that does not stop in time (its ExecStop hangs, it ignores
// SIGTERM) is killed and stopped by its guard when the leader's own stop
// gives up: the lease goes to another node only once nothing of the unit
// runs here.
func TestSystemdBackendGuardStopsWhatStopCannot(t *testing.T) {
	url := startNATS(t)
	var nodes []*backendNode
	for _, name := range []string{"n1", "n2"} {
		n := &backendNode{name: name, sd: systemdtest.Start(t)}
		n.sd.InstallUnit(t, "db.service", "[Service]\nExecStart=/bin/sh -c 'trap \"\" TERM; exec /bin/sleep 100000'\nExecStop=/bin/sleep 100000\nTimeoutStopSec=300\n")
		n.app = NewApp("db", Singleton(), WithBackend(Systemd("db")))
		runPlatform(t, url, "t", name, []*Application{n.app}, WithSystemdUserManager(n.sd.PrivateSocket),
			WithStateDir(t.TempDir()), WithHookTimeout(time.Second))
		nodes = append(nodes, n)
	}
	eventually(t, 10*time.Second, "a leader", func() bool { return leaderOf(nodes) != nil })
	first := leaderOf(nodes)
	eventually(t, 5*time.Second, "the leader's unit active", func() bool { return first.unitState(t) == "active" })
	pid := mainPID(t, first)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := first.app.Election().StepDown(ctx); err != nil {
		t.Fatal(err)
	}
	if st := first.unitState(t); st != "inactive" && st != "failed" {
		t.Fatalf("the old leader's unit is %s after the lease was released, want it down", st)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); !strings.Contains(string(b), ") Z ") {
			t.Fatalf("the old leader's unit process %d still runs", pid)
		}
	}
	if g := unitGuards(t, first.sd.PrivateSocket); len(g) != 0 {
		t.Fatalf("unit guards %v still run after the step-down", g)
	}
}
