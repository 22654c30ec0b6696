//go:build linux

package vip

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Test topology: two anonymous network namespaces, "node" (where the VIP is
// managed) and "client" (a peer on the same segment), joined by a veth pair.
// Anonymous namespaces die with their last file descriptor, so nothing is
// left behind in /var/run/netns even if the test binary is killed, and the
// host's own links are never touched: every netlink call goes through a
// handle opened inside one of the two namespaces.
const (
	nodeIf   = "vn0"
	clientIf = "vc0"
)

type topology struct {
	node, client   netns.NsHandle
	nodeH, clientH *netlink.Handle
	nodeLink       netlink.Link
	clientLink     netlink.Link
}

// newNamespace creates an anonymous network namespace and returns a handle
// to it, leaving the calling thread in its original namespace.
//
// netns.New unshares the *current OS thread*, so the goroutine is locked to
// its thread while it is switched: otherwise the Go scheduler could run
// other goroutines on the thread in the new namespace, or move this one to
// a thread still in the old namespace. If restoring fails the thread stays
// locked, so the runtime discards it when the goroutine exits.
func newNamespace(t testing.TB) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("get current namespace: %v", err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		runtime.UnlockOSThread()
		// Not skipped on purpose: CI runs as root and must exercise the
		// kernel paths; a skip would hide a broken environment.
		t.Fatalf("create network namespace (tests need root / CAP_SYS_ADMIN): %v", err)
	}
	if err := netns.Set(orig); err != nil {
		_ = ns.Close()
		t.Fatalf("restore namespace: %v", err) // thread stays locked and is discarded
	}
	runtime.UnlockOSThread()
	t.Cleanup(func() { _ = ns.Close() })
	return ns
}

// writeSysctl writes a /proc/sys value as seen from namespace ns. The
// /proc/sys/net tree resolves against the network namespace of the thread
// that opens the file, hence doInNamespace.
func writeSysctl(t testing.TB, ns netns.NsHandle, path, value string) {
	t.Helper()
	err := doInNamespace(ns, func() error {
		return os.WriteFile(path, []byte(value), 0o644)
	})
	if err != nil {
		t.Fatalf("sysctl %s=%s: %v", path, value, err)
	}
}

func newTopology(t testing.TB) *topology {
	t.Helper()
	tp := &topology{node: newNamespace(t), client: newNamespace(t)}
	var err error
	if tp.nodeH, err = netlink.NewHandleAt(tp.node); err != nil {
		t.Fatalf("netlink handle in node: %v", err)
	}
	t.Cleanup(tp.nodeH.Close)
	if tp.clientH, err = netlink.NewHandleAt(tp.client); err != nil {
		t.Fatalf("netlink handle in client: %v", err)
	}
	t.Cleanup(tp.clientH.Close)

	// IPv6 may be disabled by default in a fresh namespace (it inherits
	// net.ipv6.conf.default from init_net on some distributions); enable it
	// before the veth exists so both ends get IPv6 state.
	for _, ns := range []netns.NsHandle{tp.node, tp.client} {
		writeSysctl(t, ns, "/proc/sys/net/ipv6/conf/all/disable_ipv6", "0")
		writeSysctl(t, ns, "/proc/sys/net/ipv6/conf/default/disable_ipv6", "0")
	}

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: nodeIf},
		PeerName:      clientIf,
		PeerNamespace: netlink.NsFd(tp.client),
	}
	if err := tp.nodeH.LinkAdd(veth); err != nil {
		t.Fatalf("create veth: %v", err)
	}
	// Deleting one end deletes both; namespaces going away would do it
	// too, but explicit deletion makes failures visible.
	t.Cleanup(func() {
		if l, err := tp.nodeH.LinkByName(nodeIf); err == nil {
			_ = tp.nodeH.LinkDel(l)
		}
	})

	tp.nodeLink = tp.setupEnd(t, tp.nodeH, nodeIf, "198.18.0.1/24", "fd00::1/64")
	tp.clientLink = tp.setupEnd(t, tp.clientH, clientIf, "198.18.0.2/24", "fd00::2/64")
	return tp
}

func (tp *topology) setupEnd(t testing.TB, h *netlink.Handle, name, v4, v6 string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("find %s: %v", name, err)
	}
	for _, s := range []string{v4, v6} {
		a, err := netlink.ParseAddr(s)
		if err != nil {
			t.Fatal(err)
		}
		if a.IP.To4() == nil {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(l, a); err != nil {
			t.Fatalf("add %s to %s: %v", s, name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatalf("set %s up: %v", name, err)
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		_ = h.LinkSetUp(lo)
	}
	// Re-read so attributes (MAC, flags) are current.
	if l, err = h.LinkByName(name); err != nil {
		t.Fatalf("find %s: %v", name, err)
	}
	return l
}

func (tp *topology) nodeMAC() net.HardwareAddr   { return tp.nodeLink.Attrs().HardwareAddr }
func (tp *topology) clientMAC() net.HardwareAddr { return tp.clientLink.Attrs().HardwareAddr }

// hasAddr reports whether the exact prefix is on the node's veth, read
// independently of the package under test.
func (tp *topology) hasAddr(t testing.TB, prefix string) bool {
	t.Helper()
	addrs, err := tp.nodeH.AddrList(tp.nodeLink, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatalf("list addresses: %v", err)
	}
	for _, a := range addrs {
		if a.IPNet.String() == prefix {
			return true
		}
	}
	return false
}

// openInNamespace runs open inside ns and returns the file descriptor.
func openInNamespace(ns netns.NsHandle, open func() (int, error)) (int, error) {
	fd := -1
	err := doInNamespace(ns, func() error {
		var err error
		fd, err = open()
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("open socket in namespace: %w", err)
	}
	if fd < 0 {
		return -1, errors.New("no socket")
	}
	return fd, nil
}
