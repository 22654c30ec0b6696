//go:build linux

package vip

import (
	"fmt"
	"net"
	"net/netip"
	"sort"

	"github.com/vishvananda/netlink"
)

// InferInterface returns the name of the up, non-loopback interface in the
// caller's network namespace that has an address in the same subnet as p.
// It returns ErrNoInterface if there is none. When several match, the one
// with the lowest index wins so the choice is stable across restarts.
func InferInterface(p netip.Prefix) (string, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return "", fmt.Errorf("vip: netlink handle: %w", err)
	}
	defer h.Close()
	return inferInterface(h, p)
}

func inferInterface(h *netlink.Handle, p netip.Prefix) (string, error) {
	if !p.IsValid() {
		return "", fmt.Errorf("%w: invalid prefix %s", ErrInvalidConfig, p)
	}
	p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits())
	links, err := h.LinkList()
	if err != nil {
		return "", fmt.Errorf("vip: list links: %w", err)
	}
	sort.Slice(links, func(i, j int) bool { return links[i].Attrs().Index < links[j].Attrs().Index })
	for _, l := range links {
		attrs := l.Attrs()
		if attrs.Flags&net.FlagUp == 0 || attrs.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := h.AddrList(l, familyOf(p.Addr()))
		if err != nil {
			return "", fmt.Errorf("vip: list addresses of %s: %w", attrs.Name, err)
		}
		for _, a := range addrs {
			ap, ok := prefixOf(a)
			if !ok {
				continue
			}
			// Same subnet in either direction: the link's address inside the
			// VIP's subnet, or (for a /32 or /128 VIP) the VIP inside the
			// link's subnet.
			if p.Masked().Contains(ap.Addr()) || ap.Masked().Contains(p.Addr()) {
				return attrs.Name, nil
			}
		}
	}
	return "", fmt.Errorf("%w: no up interface has an address in %s", ErrNoInterface, p.Masked())
}
