//go:build linux

package vip

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// familyOf maps an address to the netlink family constant.
func familyOf(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// prefixOf converts a netlink address to a netip.Prefix, keeping the host
// bits (it is the address with its length, not the network).
func prefixOf(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := a.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap()
	if ip.Is4() && bits == 128 {
		ones -= 96
	}
	return netip.PrefixFrom(ip, ones), true
}

// netlinkAddr builds the netlink address for the VIP with the configured
// lifetime.
func (cfg Config) netlinkAddr() *netlink.Addr {
	a := cfg.Address.Addr()
	bits := 32
	if a.Is6() {
		bits = 128
	}
	addr := &netlink.Addr{
		IPNet: &net.IPNet{
			IP:   net.IP(a.AsSlice()),
			Mask: net.CIDRMask(cfg.Address.Bits(), bits),
		},
	}
	if lft := cfg.lifetimeSeconds(); lft > 0 {
		// Valid and preferred alike: a VIP that is valid but deprecated
		// would not be chosen as a source address, which is surprising and
		// serves no purpose here.
		addr.ValidLft = lft
		addr.PreferedLft = lft
	}
	if a.Is6() {
		// Skip duplicate address detection: the VIP is supposed to move
		// between nodes, DAD would keep it tentative (unusable) for a second
		// or more after each failover, and a "duplicate" found during a
		// handover would disable it for good.
		addr.Flags = unix.IFA_F_NODAD
	}
	return addr
}
