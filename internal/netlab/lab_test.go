//go:build linux

package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func execCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// dialIn connects from inside h's namespace and returns the first line.
func dialIn(h *Host, target string) (string, error) {
	var c net.Conn
	err := h.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", target, 2*time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

// assertGone checks that nothing of the lab with prefix is left: no link in
// the root namespace, no mount point under /run/netns.
func assertGone(t *testing.T, prefix string) {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, prefix) {
			t.Errorf("link %s (%s) left behind", l.Attrs().Name, l.Type())
		}
	}
	entries, err := os.ReadDir(NetnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
}

func TestTopology(t *testing.T) {
	RequireLab(t)
	ctx := testCtx(t, time.Minute)
	lab := NewT(t, Config{Nodes: 2})
	prefix := lab.Prefix()

	if len(prefix) > 8 || len(lab.Bridge) >= syscall.IFNAMSIZ {
		t.Fatalf("names too long: prefix %q bridge %q", prefix, lab.Bridge)
	}
	for i, h := range lab.Nodes {
		if want := hostAddr(DefaultSubnet, i+1); h.Addr != want {
			t.Errorf("node %d addr %s, want %s", i, h.Addr, want)
		}
		if len(h.HostVeth) >= syscall.IFNAMSIZ {
			t.Errorf("veth name %q too long", h.HostVeth)
		}
	}
	if lab.Client.Addr != netip.MustParseAddr("198.18.0.200") || lab.Gateway != netip.MustParseAddr("198.18.0.254") {
		t.Fatalf("client %s gateway %s", lab.Client.Addr, lab.Gateway)
	}
	for _, h := range lab.Hosts() {
		if _, err := os.Stat(filepath.Join(NetnsDir, h.Name)); err != nil {
			t.Errorf("named namespace %s: %v", h.Name, err)
		}
		if ok, err := h.Holds(h.Addr); err != nil || !ok {
			t.Errorf("%s does not hold its address %s: %v", h.Label, h.Addr, err)
		}
		if ok, _ := h.Holds(lab.Gateway); ok {
			t.Errorf("%s holds the gateway address", h.Label)
		}
	}

	// A server on the gateway address in the root namespace (where NATS
	// will listen) is reachable from a node through the default route.
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(lab.Gateway, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "root:%s\n", c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}
	}()
	for _, h := range lab.Hosts() {
		got, err := dialIn(h, ln.Addr().String())
		if err != nil {
			t.Fatalf("%s -> gateway: %v", h.Label, err)
		}
		if want := "root:" + h.Addr.String(); got != want {
			t.Errorf("%s -> gateway: %q, want %q", h.Label, got, want)
		}
	}

	// Host to host across the bridge, both ways, with whoami servers made
	// in the namespaces.
	for _, h := range lab.Hosts() {
		stop, err := ServeWhoami(ctx, h, 7070, "i am "+h.Label)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
	}
	for _, from := range lab.Hosts() {
		for _, to := range lab.Hosts() {
			if from == to {
				continue
			}
			got, err := dialIn(from, netip.AddrPortFrom(to.Addr, 7070).String())
			if err != nil {
				t.Fatalf("%s -> %s: %v", from.Label, to.Label, err)
			}
			if want := "i am " + to.Label; got != want {
				t.Errorf("%s -> %s: %q, want %q", from.Label, to.Label, got, want)
			}
		}
	}
	// The namespace's own loopback works, and the root namespace does not
	// see the whoami servers (their sockets are in the namespaces).
	if got, err := dialIn(lab.Nodes[0], "127.0.0.1:7070"); err != nil || got != "i am n0" {
		t.Errorf("loopback in n0: %q, %v", got, err)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:7070", time.Second); err == nil {
		c.Close()
		t.Errorf("whoami port 7070 reachable on the root namespace's loopback")
	}

	// The client learnt node 0's MAC.
	mac, state, err := lab.Client.Neighbor(lab.Nodes[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	if mac.String() != lab.Nodes[0].MAC().String() || state&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE) == 0 {
		t.Errorf("client's neighbour n0 = %s state %#x, want %s", mac, state, lab.Nodes[0].MAC())
	}
	if _, _, err := lab.Client.Neighbor(netip.MustParseAddr("198.18.0.77")); !errors.Is(err, ErrNoNeighbor) {
		t.Errorf("neighbour of an unknown address: %v", err)
	}

	// Command runs inside the namespace.
	out, err := lab.Nodes[1].Command(ctx, "ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), lab.Nodes[1].Prefix.String()) {
		t.Errorf("ip netns exec: %v\n%s", err, out)
	}

	if err := lab.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := lab.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	assertGone(t, prefix)
}

// Command's processes die with their whole process group when ctx ends,
// and Close kills whatever is still running in the namespaces.
func TestCommandKill(t *testing.T) {
	RequireLab(t)
	lab := NewT(t, Config{Nodes: 1})
	n := lab.Nodes[0]
	nsPath := filepath.Join(NetnsDir, n.Name)
	var target unix.Stat_t
	if err := unix.Stat(nsPath, &target); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cmd := n.Command(ctx, "sh", "-c", "sleep 300 & sleep 300 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "3 processes in the namespace", func() bool { return len(namespacePids(target)) == 3 })
	cancel()
	_ = cmd.Wait()
	waitFor(t, 10*time.Second, "no process in the namespace", func() bool { return len(namespacePids(target)) == 0 })

	// A straggler (not killed by anyone) is killed by Close.
	cmd = n.Command(context.Background(), "sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitFor(t, 10*time.Second, "sleep in the namespace", func() bool { return len(namespacePids(target)) == 1 })
	prefix := lab.Prefix()
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("process survived Close")
	}
	assertGone(t, prefix)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// New cleans up after itself when it fails midway.
func TestNewFailureCleansUp(t *testing.T) {
	RequireLab(t)
	for _, after := range []int{1, 2} {
		var prefix string
		_, err := New(testCtx(t, time.Minute), Config{
			Nodes:          3,
			failAfterHosts: after,
			created:        func(l *Lab) { prefix = l.Prefix() },
		})
		if !errors.Is(err, errInjected) {
			t.Fatalf("New: %v, want the injected failure", err)
		}
		if prefix == "" {
			t.Fatal("created hook not called")
		}
		assertGone(t, prefix)
	}
	// The lock was released: a lab can be made now.
	lab := NewT(t, Config{Nodes: 1})
	_ = lab
}

func TestConfigErrors(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	for _, cfg := range []Config{
		{Nodes: 0},
		{Nodes: MaxNodes + 1},
		{Nodes: 1, Subnet: netip.MustParsePrefix("10.0.0.0/16")},
		{Nodes: 1, Subnet: netip.MustParsePrefix("fd00::/64")},
	} {
		if l, err := New(ctx, cfg); err == nil {
			l.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// Sweep removes leftovers of a crashed run: namespaces (with processes in
// them), veths and bridges named with the prefix.
func TestSweep(t *testing.T) {
	RequireLab(t)
	ctx := testCtx(t, time.Minute)
	// Hold the lab lock like a live lab would, so no other lab can be
	// running while we plant and sweep "leftovers".
	lock, err := acquireLock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	prefix := NamePrefix + "dead"
	t.Cleanup(func() { _ = sweepLocked() })

	ip := func(args ...string) {
		t.Helper()
		if out, err := execCommand(ctx, ipPath(), args...); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("link", "add", prefix+"br", "type", "bridge")
	ip("netns", "add", prefix+"-n0")
	ip("link", "add", prefix+"n0", "type", "veth", "peer", "name", "eth0", "netns", prefix+"-n0")
	ip("link", "set", prefix+"n0", "master", prefix+"br")
	ip("link", "add", prefix+"x", "type", "veth", "peer", "name", prefix+"y")
	// An orphan process in the namespace, as a SIGKILLed test leaves.
	if out, err := execCommand(ctx, "sh", "-c", fmt.Sprintf("%s netns exec %s setsid sleep 300 >/dev/null 2>&1 &", ipPath(), prefix+"-n0")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var target unix.Stat_t
	if err := unix.Stat(filepath.Join(NetnsDir, prefix+"-n0"), &target); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "orphan in leftover namespace", func() bool { return len(namespacePids(target)) == 1 })

	if left := Leftovers(prefix); len(left) != 5 {
		t.Fatalf("planted leftovers: %v", left)
	}
	if err := sweepLocked(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, prefix)
	if pids := namespacePids(target); len(pids) != 0 {
		t.Errorf("processes %v survived the sweep", pids)
	}
	// Sweep itself does nothing while a lab (here: we) holds the lock.
	ip("link", "add", prefix+"br", "type", "bridge")
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	if left := Leftovers(prefix); !slices.Equal(left, []string{"bridge " + prefix + "br"}) {
		t.Errorf("Sweep with the lock held by a live lab: leftovers %v", left)
	}
}

func TestIPv6(t *testing.T) {
	RequireLab(t)
	ctx := testCtx(t, time.Minute)
	lab := NewT(t, Config{Nodes: 1, IPv6: true})
	n := lab.Nodes[0]
	if !n.Addr6.IsValid() || !lab.Gateway6.IsValid() {
		t.Fatal("no IPv6 addresses")
	}
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = net.Listen("tcp6", netip.AddrPortFrom(n.Addr6, 0).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			fmt.Fprintln(c, "v6")
			c.Close()
		}
	}()
	got, err := dialIn(lab.Client, ln.Addr().String())
	if err != nil || got != "v6" {
		t.Fatalf("client -> node over IPv6: %q %v", got, err)
	}
	// And the root namespace reaches the node through the bridge.
	c, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp6", netip.AddrPortFrom(n.Addr6, 9).String())
	if err == nil {
		c.Close()
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("root -> node over IPv6: %v (want connection refused: reachable, no listener)", err)
	}
}
