//go:build linux

package vip

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
)

const (
	ethPARP      = 0x0806
	ethPIPv4     = 0x0800
	arpHwEther   = 1
	arpOpRequest = 1
	ethHeaderLen = 14
	arpBodyLen   = 28
)

// htons converts to network byte order, as AF_PACKET expects the protocol
// number in both socket(2) and sockaddr_ll.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// arpAnnouncer sends gratuitous ARPs through an AF_PACKET raw socket bound
// to the link, so the frame leaves exactly that interface regardless of
// routing and of which addresses the link already has.
//
// The socket lives only for one burst. Opened with ETH_P_ARP it also
// receives the link's ARP traffic, which we never read; a short-lived socket
// keeps that queue bounded. The price is that bind and close of a packet
// socket each wait for an RCU grace period (synchronize_net), roughly 10ms
// apiece, which is irrelevant at failover frequency.
type arpAnnouncer struct {
	fd    int
	frame []byte
	to    *syscall.SockaddrLinklayer
}

func newARPAnnouncer(ip netip.Addr, link *netlink.LinkAttrs) (*arpAnnouncer, error) {
	if len(link.HardwareAddr) != 6 {
		return nil, fmt.Errorf("vip: %s has no Ethernet address (%d bytes), cannot send ARP", link.Name, len(link.HardwareAddr))
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, int(htons(ethPARP)))
	if err != nil {
		return nil, fmt.Errorf("vip: open AF_PACKET socket: %w", err)
	}
	bind := &syscall.SockaddrLinklayer{Protocol: htons(ethPARP), Ifindex: link.Index}
	if err := syscall.Bind(fd, bind); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("vip: bind AF_PACKET socket to %s: %w", link.Name, err)
	}
	to := &syscall.SockaddrLinklayer{Protocol: htons(ethPARP), Ifindex: link.Index, Halen: 6}
	copy(to.Addr[:], broadcastMAC[:])
	return &arpAnnouncer{fd: fd, frame: gratuitousARP(ip, link.HardwareAddr), to: to}, nil
}

var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// gratuitousARP builds a broadcast Ethernet frame carrying an ARP request
// with sender IP = target IP = the VIP and sender MAC = the link's MAC.
//
// Request rather than reply: Linux updates an existing neighbour entry from
// either form (both count as gratuitous when sender IP equals target IP), but
// a reply is only treated as gratuitous when its target MAC equals its sender
// MAC, and some other stacks and switches only learn from requests (RFC 5227
// section 3 recommends the request form for announcements). The target MAC
// is zero, as RFC 5227 prescribes for requests.
func gratuitousARP(ip netip.Addr, mac []byte) []byte {
	f := make([]byte, ethHeaderLen+arpBodyLen)
	copy(f[0:6], broadcastMAC[:])
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:14], ethPARP)
	a := f[ethHeaderLen:]
	binary.BigEndian.PutUint16(a[0:2], arpHwEther)
	binary.BigEndian.PutUint16(a[2:4], ethPIPv4)
	a[4] = 6 // hardware address length
	a[5] = 4 // protocol address length
	binary.BigEndian.PutUint16(a[6:8], arpOpRequest)
	ip4 := ip.As4()
	copy(a[8:14], mac)     // sender hardware address
	copy(a[14:18], ip4[:]) // sender protocol address
	// a[18:24]: target hardware address, zero
	copy(a[24:28], ip4[:]) // target protocol address
	return f
}

func (a *arpAnnouncer) announce() error {
	if err := syscall.Sendto(a.fd, a.frame, 0, a.to); err != nil {
		return fmt.Errorf("vip: send gratuitous ARP: %w", err)
	}
	return nil
}

func (a *arpAnnouncer) close() error { return syscall.Close(a.fd) }
