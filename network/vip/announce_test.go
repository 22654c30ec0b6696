//go:build linux

package vip

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// capture is a raw socket opened in the client namespace before the VIP is
// added, so no announcement can slip past it.
type capture struct{ fd int }

func openCapture(t testing.TB, ns netns.NsHandle, open func() (int, error)) *capture {
	t.Helper()
	fd, err := openInNamespace(ns, open)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	// A short receive timeout turns the blocking read into a poll that
	// honours the caller's deadline.
	tv := syscall.NsecToTimeval(int64(50 * time.Millisecond))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return &capture{fd: fd}
}

// count reads until the deadline and returns how many packets match. It
// stops early once want matches are seen plus a grace period passes, which
// is what lets the test notice extra packets without sleeping.
func (c *capture) count(t testing.TB, want int, within, grace time.Duration, match func([]byte) bool) int {
	t.Helper()
	buf := make([]byte, 2048)
	n := 0
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		r, _, err := syscall.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			t.Fatalf("recv: %v", err)
		}
		if match(buf[:r]) {
			n++
			if n == want {
				deadline = time.Now().Add(grace)
			}
		}
	}
	return n
}

func isGratuitousARP(vip netip.Addr, mac net.HardwareAddr) func([]byte) bool {
	ip := vip.As4()
	return func(f []byte) bool {
		if len(f) < ethHeaderLen+arpBodyLen || binary.BigEndian.Uint16(f[12:14]) != ethPARP {
			return false
		}
		a := f[ethHeaderLen:]
		return bytes.Equal(f[0:6], broadcastMAC[:]) &&
			binary.BigEndian.Uint16(a[6:8]) == arpOpRequest &&
			bytes.Equal(a[8:14], mac) &&
			bytes.Equal(a[14:18], ip[:]) &&
			bytes.Equal(a[24:28], ip[:])
	}
}

func neighMAC(t testing.TB, h *netlink.Handle, ifindex, family int, ip netip.Addr) net.HardwareAddr {
	t.Helper()
	ns, err := h.NeighList(ifindex, family)
	if err != nil {
		t.Fatalf("list neighbours: %v", err)
	}
	for _, n := range ns {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip {
			return n.HardwareAddr
		}
	}
	return nil
}

var wrongMAC = net.HardwareAddr{0x02, 0xde, 0xad, 0xbe, 0xef, 0x01}

func TestGratuitousARP(t *testing.T) {
	tp := newTopology(t)
	vipAddr := netip.MustParseAddr("198.18.0.100")
	// By default Linux only lets gratuitous ARP update entries it already
	// has; arp_accept=1 additionally lets it create them. We pre-seed an
	// entry anyway, but set arp_accept so the test does not depend on the
	// distinction (and on the kernel's arp_accept=2 semantics).
	writeSysctl(t, tp.client, "/proc/sys/net/ipv4/conf/"+clientIf+"/arp_accept", "1")

	cidx := tp.clientLink.Attrs().Index
	if err := tp.clientH.NeighSet(&netlink.Neigh{
		LinkIndex: cidx, Family: netlink.FAMILY_V4, State: netlink.NUD_STALE,
		IP: net.IP(vipAddr.AsSlice()), HardwareAddr: wrongMAC,
	}); err != nil {
		t.Fatalf("seed neighbour: %v", err)
	}
	if got := neighMAC(t, tp.clientH, cidx, netlink.FAMILY_V4, vipAddr); !bytes.Equal(got, wrongMAC) {
		t.Fatalf("seeded neighbour has %v", got)
	}

	capt := openCapture(t, tp.client, func() (int, error) {
		fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, int(htons(ethPARP)))
		if err != nil {
			return -1, err
		}
		if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(ethPARP), Ifindex: tp.clientLink.Attrs().Index}); err != nil {
			_ = syscall.Close(fd)
			return -1, err
		}
		return fd, nil
	})

	const count = 3
	v := newVIP(t, tp, Config{
		Address: netip.PrefixFrom(vipAddr, 24), Interface: nodeIf,
		ARPCount: count, ARPInterval: 50 * time.Millisecond,
	})
	if err := v.Add(context.Background()); err != nil {
		t.Fatalf("Add: %v", err)
	}
	eventually(t, 2*time.Second, "client neighbour entry to learn the node MAC", func() bool {
		return bytes.Equal(neighMAC(t, tp.clientH, cidx, netlink.FAMILY_V4, vipAddr), tp.nodeMAC())
	})
	if n := capt.count(t, count, 2*time.Second, 300*time.Millisecond, isGratuitousARP(vipAddr, tp.nodeMAC())); n != count {
		t.Fatalf("captured %d gratuitous ARPs, want %d", n, count)
	}
}

// TestAddRestartsBurst checks that a second Add during a burst replaces it:
// with a long interval, Add+Add yields one frame from the first burst and a
// full burst from the second, not two interleaved bursts.
func TestAddRestartsBurst(t *testing.T) {
	tp := newTopology(t)
	vipAddr := netip.MustParseAddr("198.18.0.100")
	capt := openCapture(t, tp.client, func() (int, error) {
		fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, int(htons(ethPARP)))
		if err != nil {
			return -1, err
		}
		if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(ethPARP), Ifindex: tp.clientLink.Attrs().Index}); err != nil {
			_ = syscall.Close(fd)
			return -1, err
		}
		return fd, nil
	})
	v := newVIP(t, tp, Config{Address: netip.PrefixFrom(vipAddr, 24), Interface: nodeIf, ARPCount: 2, ARPInterval: 700 * time.Millisecond})
	ctx := context.Background()
	if err := v.Add(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v.Add(ctx); err != nil {
		t.Fatal(err)
	}
	if n := capt.count(t, 3, 3*time.Second, time.Second, isGratuitousARP(vipAddr, tp.nodeMAC())); n != 3 {
		t.Fatalf("captured %d announcements, want 3 (1 from the cancelled burst, 2 from the restarted one)", n)
	}
	// Remove stops a running burst: nothing more arrives afterwards.
	if err := v.Add(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if n := capt.count(t, 2, 1500*time.Millisecond, 0, isGratuitousARP(vipAddr, tp.nodeMAC())); n != 1 {
		t.Fatalf("captured %d announcements after Add+Remove, want only the synchronous one", n)
	}
}

func TestIPv6UnsolicitedNA(t *testing.T) {
	tp := newTopology(t)
	vipPrefix := netip.MustParsePrefix("fd00::100/64")
	vipAddr := vipPrefix.Addr()
	cidx := tp.clientLink.Attrs().Index

	if err := tp.clientH.NeighSet(&netlink.Neigh{
		LinkIndex: cidx, Family: netlink.FAMILY_V6, State: netlink.NUD_STALE,
		IP: net.IP(vipAddr.AsSlice()), HardwareAddr: wrongMAC,
	}); err != nil {
		t.Fatalf("seed neighbour: %v", err)
	}

	capt := openCapture(t, tp.client, func() (int, error) {
		fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.IPPROTO_ICMPV6)
		if err != nil {
			return -1, err
		}
		if err := unix.BindToDevice(fd, clientIf); err != nil {
			_ = syscall.Close(fd)
			return -1, err
		}
		return fd, nil
	})

	const count = 3
	v := newVIP(t, tp, Config{Address: vipPrefix, Interface: nodeIf, ARPCount: count, ARPInterval: 50 * time.Millisecond})
	if err := v.Add(context.Background()); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if !mustPresent(t, v) {
		t.Fatal("not present after Add")
	}
	addrs, err := tp.nodeH.AddrList(tp.nodeLink, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range addrs {
		if a.IPNet.String() == vipPrefix.String() {
			found = true
			if a.Flags&unix.IFA_F_NODAD == 0 || a.Flags&unix.IFA_F_TENTATIVE != 0 {
				t.Fatalf("address flags %#x: want NODAD and not tentative", a.Flags)
			}
		}
	}
	if !found {
		t.Fatal("VIP not in the node's address list")
	}

	target := vipAddr.As16()
	mac := tp.nodeMAC()
	isNA := func(m []byte) bool {
		// Raw IPv6 sockets deliver the ICMPv6 message without the IP header.
		return len(m) >= 32 && m[0] == icmpv6NeighborAdvert && m[1] == 0 &&
			m[4]&naFlagOverride != 0 && m[4]&0x40 == 0 && // O set, S clear
			bytes.Equal(m[8:24], target[:]) &&
			m[24] == ndOptTargetLLAddr && bytes.Equal(m[26:32], mac)
	}
	if n := capt.count(t, count, 2*time.Second, 300*time.Millisecond, isNA); n != count {
		t.Fatalf("captured %d unsolicited NAs for %s, want %d", n, vipAddr, count)
	}
	eventually(t, 2*time.Second, "client IPv6 neighbour entry to learn the node MAC", func() bool {
		return bytes.Equal(neighMAC(t, tp.clientH, cidx, netlink.FAMILY_V6, vipAddr), mac)
	})
	if err := v.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mustPresent(t, v) {
		t.Fatal("present after Remove")
	}
}
