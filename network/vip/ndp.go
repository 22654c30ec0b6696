//go:build linux

package vip

import (
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	icmpv6NeighborAdvert = 136
	naFlagOverride       = 0x20 // O flag; R and S stay clear
	ndOptTargetLLAddr    = 2
	ndpHopLimit          = 255
)

var allNodes = netip.MustParseAddr("ff02::1")

// naAnnouncer sends unsolicited neighbour advertisements (RFC 4861 section
// 7.2.6) for the VIP to all nodes, the IPv6 equivalent of a gratuitous ARP.
type naAnnouncer struct {
	fd  int
	msg []byte
	to  *syscall.SockaddrInet6
}

func newNAAnnouncer(ip netip.Addr, link *netlink.LinkAttrs) (*naAnnouncer, error) {
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.IPPROTO_ICMPV6)
	if err != nil {
		return nil, fmt.Errorf("vip: open ICMPv6 socket: %w", err)
	}
	fail := func(what string, err error) (*naAnnouncer, error) {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("vip: ICMPv6 socket on %s: %s: %w", link.Name, what, err)
	}
	// Bound to the device so the advertisement goes out on this link only.
	if err := unix.BindToDevice(fd, link.Name); err != nil {
		return fail("bind to device", err)
	}
	// Receivers drop neighbour discovery messages whose hop limit is not
	// 255; it proves the sender is on-link.
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_HOPS, ndpHopLimit); err != nil {
		return fail("multicast hops", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_UNICAST_HOPS, ndpHopLimit); err != nil {
		return fail("unicast hops", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_IF, link.Index); err != nil {
		return fail("multicast interface", err)
	}
	// Source the advertisement from the VIP itself. Otherwise the kernel
	// picks the link-local address, which right after the link came up may
	// still be tentative; the VIP is usable at once thanks to NODAD.
	if err := syscall.Bind(fd, &syscall.SockaddrInet6{Addr: ip.As16(), ZoneId: uint32(link.Index)}); err != nil {
		return fail("bind to "+ip.String(), err)
	}
	to := &syscall.SockaddrInet6{Addr: allNodes.As16(), ZoneId: uint32(link.Index)}
	return &naAnnouncer{fd: fd, msg: unsolicitedNA(ip, link.HardwareAddr), to: to}, nil
}

// unsolicitedNA builds the ICMPv6 message. The checksum is left zero: for
// IPPROTO_ICMPV6 raw sockets the kernel always computes it (RFC 3542 3.1),
// since it covers the IPv6 pseudo-header we do not build.
func unsolicitedNA(ip netip.Addr, mac []byte) []byte {
	n := 24
	if len(mac) > 0 {
		n += (2 + len(mac) + 7) / 8 * 8
	}
	m := make([]byte, n)
	m[0] = icmpv6NeighborAdvert
	m[1] = 0 // code
	// m[2:4] checksum, filled in by the kernel
	m[4] = naFlagOverride // override existing cache entries: the VIP moved
	t := ip.As16()
	copy(m[8:24], t[:])
	if len(mac) > 0 {
		m[24] = ndOptTargetLLAddr
		m[25] = byte((n - 24) / 8)
		copy(m[26:], mac)
	}
	return m
}

func (a *naAnnouncer) announce() error {
	if err := syscall.Sendto(a.fd, a.msg, 0, a.to); err != nil {
		return fmt.Errorf("vip: send neighbour advertisement: %w", err)
	}
	return nil
}

func (a *naAnnouncer) close() error { return syscall.Close(a.fd) }
