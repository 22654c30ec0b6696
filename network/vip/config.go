//go:build linux

package vip

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/vishvananda/netns"
)

const (
	defaultARPCount    = 3
	defaultARPInterval = 200 * time.Millisecond
)

// Config describes one virtual IP on one node.
type Config struct {
	// Address is the VIP with the prefix length it is added with, e.g.
	// 198.18.0.100/24. IPv4 or IPv6.
	Address netip.Prefix

	// Interface is the link to add the address to. Empty means infer it:
	// the up interface that has an address in the same subnet as Address.
	Interface string

	// ARPCount is the number of gratuitous ARPs (IPv4) or unsolicited
	// neighbour advertisements (IPv6) sent after adding; 0 means 3. More
	// than one because a single frame can be lost while switches are still
	// relearning after a failover.
	ARPCount int

	// ARPInterval is the gap between announcements; 0 means 200ms.
	ARPInterval time.Duration

	// ValidLifetime is the finite valid and preferred lifetime of the
	// address, so that a VIP left behind by a dead agent expires by itself.
	// 0 means no lifetime (the address stays until removed). The kernel
	// counts in whole seconds, so it is rounded up to a second.
	ValidLifetime time.Duration

	// Logger receives debug and warning records; nil means slog.Default().
	Logger *slog.Logger

	// Namespace, when set to an open handle (> 0), makes every netlink call
	// and every raw socket operate in that network namespace instead of the
	// caller's. It exists for tests and for agents managing a container's
	// namespace; the handle is borrowed, not closed by VIP.
	Namespace netns.NsHandle
}

// withDefaults validates cfg and fills in the defaults documented above.
func (cfg Config) withDefaults() (Config, error) {
	if !cfg.Address.IsValid() {
		return cfg, fmt.Errorf("%w: address %q is not a valid prefix", ErrInvalidConfig, cfg.Address)
	}
	// A 4-in-6 mapped address would be added as IPv6 and announced with the
	// wrong protocol; normalise it up front.
	if cfg.Address.Addr().Is4In6() {
		bits := cfg.Address.Bits() - 96
		if bits < 0 {
			return cfg, fmt.Errorf("%w: mapped address %s has prefix shorter than /96", ErrInvalidConfig, cfg.Address)
		}
		cfg.Address = netip.PrefixFrom(cfg.Address.Addr().Unmap(), bits)
	}
	a := cfg.Address.Addr()
	if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.Zone() != "" {
		return cfg, fmt.Errorf("%w: %s is not a usable unicast address", ErrInvalidConfig, cfg.Address)
	}
	if cfg.ARPCount < 0 || cfg.ARPInterval < 0 || cfg.ValidLifetime < 0 {
		return cfg, fmt.Errorf("%w: negative ARPCount, ARPInterval or ValidLifetime", ErrInvalidConfig)
	}
	if cfg.ARPCount == 0 {
		cfg.ARPCount = defaultARPCount
	}
	if cfg.ARPInterval == 0 {
		cfg.ARPInterval = defaultARPInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// lifetimeSeconds converts ValidLifetime to the kernel's whole seconds,
// rounding up so that a sub-second lifetime does not become "forever" (0).
func (cfg Config) lifetimeSeconds() int {
	if cfg.ValidLifetime <= 0 {
		return 0
	}
	return int((cfg.ValidLifetime + time.Second - 1) / time.Second)
}

// inNamespace reports whether a foreign namespace is configured.
func (cfg Config) inNamespace() bool { return cfg.Namespace > 0 }
