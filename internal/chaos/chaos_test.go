//go:build linux

package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/internal/netlab"
)

// Settings, as flags or (for make) environment variables:
//
//	-chaos.trials, CHAOS_TRIALS  TestChaosTable's trials of each fault
//	-chaos.faults, CHAOS_FAULTS  comma-separated faults (default: all)
//	CHAOS_GCL                    a gcl binary to measure instead of this tree's
//	CHAOS_DIR                    keep the labs' directories (logs) under it
var (
	trialsFlag = flag.Int("chaos.trials", 0, "TestChaosTable: trials of each fault (0: $CHAOS_TRIALS, which make chaos sets)")
	faultsFlag = flag.String("chaos.faults", "", "comma-separated faults to run (default: all; also $CHAOS_FAULTS)")
)

// binaries builds gcl and nats-server once per test binary. They are built
// without -race even under `go test -race`: the lab measures timings, and
// race-instrumented agents on a two-core machine would measure the
// instrumentation.
var binaries = sync.OnceValues(func() ([2]string, error) {
	dir, err := os.MkdirTemp("", "gcl-chaos-bin-*")
	if err != nil {
		return [2]string{}, err
	}
	bins := [2]string{filepath.Join(dir, "gcl"), filepath.Join(dir, "nats-server")}
	for i, pkg := range []string{"github.com/ozanturksever/go-cluster/cmd/gcl", "github.com/nats-io/nats-server/v2"} {
		out, err := exec.Command("go", "build", "-o", bins[i], pkg).CombinedOutput()
		if err != nil {
			return bins, fmt.Errorf("build %s: %v\n%s", pkg, err, out)
		}
	}
	binDir = dir
	return bins, nil
})

var binDir string

func TestMain(m *testing.M) {
	// Spare Ps: the observer's thread returns from its sleep into an idle
	// P at once instead of queueing behind a GC worker or a busy goroutine
	// on a two-core machine (where GOMAXPROCS would be 2).
	runtime.GOMAXPROCS(max(8, runtime.NumCPU()))
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// requireChaos skips the test without root, ip or cgroup v2, unless
// CI=true, where a missing capability fails it.
func requireChaos(t *testing.T) {
	t.Helper()
	netlab.RequireLab(t)
	if _, err := cgroup2Root(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chaos lab needs cgroup v2: %v (CI=true: not skipping)", err)
		}
		t.Skipf("chaos lab needs cgroup v2: %v", err)
	}
}

// selectedFaults are the faults named by -chaos.faults or $CHAOS_FAULTS,
// all by default.
func selectedFaults(t *testing.T) []Fault {
	t.Helper()
	names := *faultsFlag
	if names == "" {
		names = os.Getenv("CHAOS_FAULTS")
	}
	if names == "" {
		return Faults
	}
	var out []Fault
	for _, name := range strings.Split(names, ",") {
		f, ok := FaultNamed(strings.TrimSpace(name))
		if !ok {
			t.Fatalf("no fault %q", name)
		}
		out = append(out, f)
	}
	return out
}

// series runs the faults and logs every trial; for a trial that broke a
// rule it also logs what the agents wrote meanwhile.
func series(t *testing.T, trials int, timeout time.Duration) []*Trial {
	t.Helper()
	bins, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	if gcl := os.Getenv("CHAOS_GCL"); gcl != "" {
		bins[0] = gcl // another build, to compare
	}
	dir := t.TempDir()
	if keep := os.Getenv("CHAOS_DIR"); keep != "" {
		// Kept after the test: the agents' logs, for a post-mortem.
		if dir, err = os.MkdirTemp(keep, "chaos-*"); err != nil {
			t.Fatal(err)
		}
		t.Logf("chaos: logs kept in %s", dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cfg := Config{Gcl: bins[0], NATSServer: bins[1], Dir: dir, Logf: t.Logf}
	all, err := Series(ctx, cfg, selectedFaults(t), trials, func(l *Lab, tr *Trial) {
		t.Log(tr.Report(l.Labels()))
		if tr.Bad() {
			t.Log(l.TrialLogs(tr, 40))
		}
	})
	if err != nil {
		t.Errorf("chaos lab: %v", err)
	}
	t.Logf("\n%s", Table(Summarize(all)))
	return all
}

// TestChaos runs every fault once on three `gcl agent -server` nodes and
// fails on any moment with two live instances of a singleton (two owners of
// a ring partition, two VIP holders) and on any job that never came back.
// Failover and interruption figures are logged; they are benchmarks, not
// assertions.
func TestChaos(t *testing.T) {
	// Opt-in until the lab passes every fault: ring processes are not yet
	// bound to their partitions' leases (a frozen or cut-off member's
	// process reads a stale partitions file for a moment), and after a
	// partition heals a job can stay down for a minute. Both are open in
	// issue 13; `make chaos-test` runs it.
	if os.Getenv("CHAOS") != "1" {
		t.Skip("the chaos lab's safety run is opt-in for now: CHAOS=1 (make chaos-test)")
	}
	requireChaos(t)
	for _, tr := range series(t, 1, 12*time.Minute) {
		if tr.DualSamples > 0 {
			t.Errorf("%s: %d samples with two live instances: %v", tr.Name, tr.DualSamples, overlapList(tr))
		}
		if len(tr.NeverRecovered) > 0 {
			t.Errorf("%s: never recovered: %s", tr.Name, strings.Join(tr.NeverRecovered, ", "))
		}
		if tr.Err != nil {
			t.Errorf("%s: %v", tr.Name, tr.Err)
		}
	}
}

func overlapList(tr *Trial) string {
	var parts []string
	for _, o := range tr.Overlaps {
		parts = append(parts, fmt.Sprintf("%s for up to %v", o.What, o.Took.Round(time.Millisecond)))
	}
	return strings.Join(parts, "; ")
}

// TestChaosTable is `make chaos`: many trials of each fault, and the table.
// It runs only when asked (-chaos.trials or CHAOS_TRIALS).
func TestChaosTable(t *testing.T) {
	n := *trialsFlag
	if n == 0 {
		n, _ = strconv.Atoi(os.Getenv("CHAOS_TRIALS"))
	}
	if n <= 0 {
		t.Skip("set -chaos.trials or CHAOS_TRIALS (make chaos)")
	}
	requireChaos(t)
	series(t, n, 24*time.Hour)
}
