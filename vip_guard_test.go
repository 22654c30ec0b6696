//go:build linux

package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ozanturksever/go-cluster/election"
	"github.com/ozanturksever/go-cluster/state"
)

// The wiring test runs a whole platform (embedded NATS, one singleton app
// with a VIP) as a separate process in a network namespace of its own, so
// that it can be frozen like a real agent. The process is this test binary
// again, running TestVIPGuardAgentProcess with vipAgentEnv set.
const (
	vipAgentEnv   = "GCL_TEST_VIP_AGENT"
	vipAgentIf    = "gvip0"
	vipAgentAddr  = "198.18.0.100/24"
	vipAgentTTL   = 2 * time.Second
	vipAgentReady = "VIPAGENT ready"
)

// TestVIPGuardFrozenAgent: a leader whose agent is frozen (SIGSTOP) loses
// its VIP at its lease deadline, removed by the guard while the agent is
// still stopped; before that, the lease renewals keep the guard's deadline
// moving.
func TestVIPGuardFrozenAgent(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("needs root: network namespaces") // not skipped: see DESIGN.md, testing with real parts
	}
	cmd := exec.Command("/proc/self/exe", "-test.run=^TestVIPGuardAgentProcess$")
	cmd.Env = append(os.Environ(), vipAgentEnv+"=1")
	cmd.Stderr = os.Stderr
	// A new network namespace from the start, so that everything the
	// platform does (netlink, announcements, the guard it forks) happens
	// there; its own process group, so that SIGSTOP reaches it alone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	agent := cmd.Process.Pid
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill() // works on a stopped process too
		_ = cmd.Wait()
	})
	ready := make(chan bool, 1)
	var output []string // the agent's test output, for a failure message
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), vipAgentReady) {
				ready <- true
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
			output = append(output, sc.Text())
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("agent ended before it became active:\n%s", strings.Join(output, "\n"))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("agent not active within 60s")
	}

	ns, err := netns.GetFromPid(agent)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	present := func() bool {
		l, err := h.LinkByName(vipAgentIf)
		if err != nil {
			t.Fatalf("find %s: %v", vipAgentIf, err)
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			t.Fatalf("list addresses: %v", err)
		}
		for _, a := range addrs {
			if a.IPNet.String() == vipAgentAddr {
				return true
			}
		}
		return false
	}
	if !present() {
		t.Fatal("active, but the VIP is not on the link")
	}
	guard := childNamed(t, agent, "gcl-vip-guard")

	// Renewals keep moving the guard's deadline: the address outlives
	// several of them.
	for end := time.Now().Add(2 * vipAgentTTL); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if !present() {
			t.Fatal("VIP removed while the agent renews its lease")
		}
	}

	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	eventually(t, 5*time.Second, "the agent to stop", func() bool { return procStateOf(agent) == 'T' })
	// The deadline is less than a TTL after the last renewal, which came
	// before the stop.
	eventually(t, vipAgentTTL+3*time.Second, "the VIP to go while the agent is frozen", func() bool { return !present() })
	took := time.Since(frozen)
	if st := procStateOf(agent); st != 'T' {
		t.Fatalf("agent in state %c, want still stopped (T)", st)
	}
	// The guard did it: it has exited, unreaped, its parent being stopped.
	eventually(t, 5*time.Second, "the guard to exit", func() bool { return procStateOf(guard) == 'Z' })
	t.Logf("VIP removed %v after the agent was frozen (lease TTL %v)", took.Round(time.Millisecond), vipAgentTTL)
}

// TestVIPGuardAgentProcess is the agent of TestVIPGuardFrozenAgent; it
// does nothing unless started by it.
func TestVIPGuardAgentProcess(t *testing.T) {
	if os.Getenv(vipAgentEnv) == "" {
		t.Skip("the agent process of TestVIPGuardFrozenAgent")
	}
	// The namespace is new and empty: loopback for NATS, and a link for
	// the VIP (a veth pair with both ends here: dummy links need a module
	// that not every test machine has).
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: vipAgentIf}, PeerName: vipAgentIf + "p"}); err != nil {
		t.Fatal(err)
	}
	peer, err := netlink.LinkByName(vipAgentIf + "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(peer); err != nil {
		t.Fatal(err)
	}
	l, err := netlink.LinkByName(vipAgentIf)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(198, 18, 0, 1), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}

	srv, err := state.StartServer(context.Background(), state.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	active := make(chan struct{})
	app := NewApp("db", Singleton(), VIP(vipAgentAddr, vipAgentIf), VIPAnnouncements(1, 0))
	app.OnActive(func(context.Context) error { close(active); return nil })
	p := runPlatform(t, srv.ClientURL(), "vipguard", "n1", []*Application{app},
		WithLeaseTTL(vipAgentTTL), WithStateDir(filepath.Join(t.TempDir(), "state")))
	_ = p
	select {
	case <-active:
	case <-time.After(30 * time.Second):
		t.Fatal("not active within 30s")
	}
	fmt.Println(vipAgentReady)
	_, _ = io.Copy(io.Discard, os.Stdin) // until the test lets go (or kills us)
}

// childNamed finds the child of parent whose argv[0] is name.
func childNamed(t *testing.T, parent int, name string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.HasPrefix(string(cmdline), name+"\x00") {
			continue
		}
		if ppidOf(pid) == parent {
			return pid
		}
	}
	t.Fatalf("no %s child of %d", name, parent)
	return 0
}

// procStat is the part of /proc/pid/stat after the command name (which may
// contain anything), split into fields: state, ppid, ...
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// procStateOf is the state letter of pid (R, S, T, Z, ...), 0 when gone.
func procStateOf(pid int) byte {
	if f := procStat(pid); len(f) > 0 {
		return f[0][0]
	}
	return 0
}

func ppidOf(pid int) int {
	if f := procStat(pid); len(f) > 1 {
		n, _ := strconv.Atoi(f[1])
		return n
	}
	return 0
}

// With the default timing the kernel lifetime is a backstop: an address
// set while renewals still leave room expires before the term's stop-by
// time, even when the kernel expires it a second late, so a node whose
// processes all died (guard included) never holds the VIP beside a
// successor.
func TestVIPLifetimeExpiresBeforeStopBy(t *testing.T) {
	tm := election.DefaultTiming()
	lifetime, ok := kernelBackstop(tm)
	if !ok || lifetime != time.Second || vipLifetime(tm) != lifetime {
		t.Fatalf("default timing: backstop %v (%v), lifetime %v", lifetime, ok, vipLifetime(tm))
	}
	// Set right after a renewal sent at 0, the latest expiry is before
	// stop-by (TTL - margin).
	if latest, stopBy := tm.AttemptTimeout()+lifetime+time.Second, tm.TTL-tm.ClockMargin; latest >= stopBy {
		t.Fatalf("an address set after a renewal expires by %v, after stop-by %v", latest, stopBy)
	}
	short := election.Timing{TTL: time.Second}.WithDefaults()
	if _, ok := kernelBackstop(short); ok || vipLifetime(short) != 2*time.Second {
		t.Fatalf("TTL 1s: lifetime %v", vipLifetime(short))
	}
}
