//go:build linux

package chaos

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/internal/netlab"
)

// The instrument itself: job processes (/bin/sleep with GCL_APP) started
// by hand in two node namespaces are seen live where they run, not live
// when stopped or in a frozen cgroup, ring partitions are read from their
// files, the VIP from the interfaces, and a job process outside the nodes
// is a stray.
func TestObserver(t *testing.T) {
	requireChaos(t)
	lab := netlab.NewT(t, netlab.Config{Nodes: 2})
	root, err := cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	var cgs []*cgroup
	var paths []string
	for _, h := range lab.Nodes {
		cg, err := newCgroup(root, cgroupPrefix+lab.ID+"-"+h.Label)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := cg.Remove(context.Background()); err != nil {
				t.Error(err)
			}
		})
		cgs, paths = append(cgs, cg), append(paths, cg.path)
	}
	jobs := JobSet{Jobs: []Job{{Name: "one", Kind: Singleton, VIP: true}, {Name: "ring", Kind: Ring}},
		Partitions: 4, VIP: netip.MustParsePrefix("198.18.0.100/24")}
	obs, err := NewObserver(jobs, lab.Nodes, root, paths)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Stop()

	start := func(h *netlab.Host, cg *cgroup, env ...string) *exec.Cmd {
		t.Helper()
		var cmd *exec.Cmd
		if h == nil {
			cmd = exec.Command("/bin/sleep", "infinity")
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		} else {
			cmd = h.Command(context.Background(), "/bin/sleep", "infinity")
		}
		if cg != nil {
			cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cg.fd()
		}
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	wait := func(what string, cond func(Sample) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s := obs.Last()
			if !s.At.IsZero() && cond(s) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: last sample %+v", what, s)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	both := bit(0) | bit(1)

	start(lab.Nodes[0], cgs[0], "GCL_APP=one")
	wait("one live on n0", func(s Sample) bool { return s.Live[0] == bit(0) && s.Present[0] == bit(0) })
	dualFrom := time.Now()
	p1 := start(lab.Nodes[1], cgs[1], "GCL_APP=one")
	wait("one live on both", func(s Sample) bool { return s.Live[0] == both })

	if err := p1.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	wait("stopped: present, not live", func(s Sample) bool { return s.Live[0] == bit(0) && s.Present[0] == both })
	if err := p1.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	wait("continued", func(s Sample) bool { return s.Live[0] == both })

	if err := cgs[1].SetFrozen(true); err != nil {
		t.Fatal(err)
	}
	wait("frozen: present, not live", func(s Sample) bool {
		return s.Live[0] == bit(0) && s.Present[0] == both && s.Frozen == bit(1)
	})
	if err := cgs[1].SetFrozen(false); err != nil {
		t.Fatal(err)
	}
	wait("thawed", func(s Sample) bool { return s.Live[0] == both && s.Frozen == 0 })

	r := Analyze(jobs, obs.Since(dualFrom), Window{Prep: dualFrom, Fault: dualFrom, Heal: dualFrom, End: time.Now()})
	if r.DualSamples == 0 || len(r.Overlaps) == 0 || r.Overlaps[0].What != "one" {
		t.Errorf("Analyze saw no overlap of one: %+v", r.Overlaps)
	}

	parts := filepath.Join(t.TempDir(), "partitions")
	if err := os.WriteFile(parts, []byte("0\n2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start(lab.Nodes[1], nil, "GCL_APP=ring", "GCL_PARTITIONS_FILE="+parts)
	wait("ring owns 0 and 2 on n1", func(s Sample) bool {
		return s.Live[1] == bit(1) && fmt.Sprint(s.Owners) == fmt.Sprint([]mask{bit(1), 0, bit(1), 0})
	})

	if err := lab.Nodes[1].AddAddr(jobs.VIP); err != nil {
		t.Fatal(err)
	}
	wait("VIP on n1", func(s Sample) bool { return s.VIP == bit(1) })

	start(nil, nil, "GCL_APP=one")
	wait("a stray in the root namespace", func(s Sample) bool { return s.Stray == 1 })

	// Not a job: an unknown app, no GCL_APP.
	start(lab.Nodes[0], nil, "GCL_APP=other")
	start(lab.Nodes[0], nil)
	time.Sleep(100 * time.Millisecond) // ten scans, in which nothing may change
	if s := obs.Last(); s.Live[0] != both || s.Stray != 1 {
		t.Errorf("an unknown process counted: %+v", s)
	}
	if p := obs.Priority(); p == "normal" {
		t.Logf("the observer runs at normal priority (no SCHED_FIFO, no nice -10)")
	}
}
