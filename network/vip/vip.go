//go:build linux

package vip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VIP manages one virtual IP on one link. Its methods are safe for
// concurrent use; they are serialised, because interleaving an Add with a
// Remove would leave the link in an order-dependent state.
type VIP struct {
	cfg   Config
	iface string

	mu     sync.Mutex
	h      *netlink.Handle
	burst  *burst // running announcement burst, nil if none
	closed bool

	// The guard (HoldUntil) has its own lock, so that feeding it never
	// waits on a netlink call or an announcement. Lock order: mu, then gmu.
	gmu     sync.Mutex
	g       *guard // running guard, nil if none
	gclosed bool
}

// New validates cfg and resolves the interface. It returns ErrNoInterface
// when the named interface does not exist or none can be inferred.
func New(cfg Config) (*VIP, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h, err := newHandle(cfg)
	if err != nil {
		return nil, err
	}
	iface := cfg.Interface
	if iface == "" {
		iface, err = inferInterface(h, cfg.Address)
		if err != nil {
			h.Close()
			return nil, err
		}
	} else if _, err := h.LinkByName(iface); err != nil {
		h.Close()
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%w: %s: %w", ErrNoInterface, iface, err)
		}
		return nil, fmt.Errorf("vip: look up %s: %w", iface, err)
	}
	cfg.Logger = cfg.Logger.With("vip", cfg.Address.String(), "interface", iface)
	return &VIP{cfg: cfg, iface: iface, h: h}, nil
}

// Interface returns the resolved interface name.
func (v *VIP) Interface() string { return v.iface }

// Address returns the VIP.
func (v *VIP) Address() string { return v.cfg.Address.String() }

// Close stops a running announcement burst and releases the netlink handle.
// It leaves the address in place: whether to remove the VIP on shutdown is
// the caller's decision (Remove), and with a lifetime it expires anyway.
// The exception is an address under a guard that was not disarmed
// (HoldUntil without Remove or Disarm): nobody can feed that guard any
// more, so it removes the address at once, as it would had this process
// died.
func (v *VIP) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stopBurstLocked()
	v.closeGuard()
	if !v.closed {
		v.closed = true
		v.h.Close()
	}
	return nil
}

// link looks the interface up afresh on every call, because its index and
// state may change while the VIP object lives (e.g. a recreated bond).
func (v *VIP) link() (netlink.Link, error) {
	if v.closed {
		return nil, fmt.Errorf("vip: %s: use after Close", v.cfg.Address)
	}
	l, err := v.h.LinkByName(v.iface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%w: %s: %w", ErrNoInterface, v.iface, err)
		}
		return nil, fmt.Errorf("vip: look up %s: %w", v.iface, err)
	}
	return l, nil
}

// Present reports whether exactly this address with exactly this prefix
// length is on the link. It compares parsed addresses, never strings, so
// 198.18.0.10/24 is not mistaken for 198.18.0.100/24.
func (v *VIP) Present() (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	l, err := v.link()
	if err != nil {
		return false, err
	}
	return v.presentLocked(l)
}

func (v *VIP) presentLocked(l netlink.Link) (bool, error) {
	addrs, err := v.h.AddrList(l, familyOf(v.cfg.Address.Addr()))
	if err != nil {
		return false, fmt.Errorf("vip: list addresses of %s: %w", v.iface, err)
	}
	for _, a := range addrs {
		p, ok := prefixOf(a)
		if ok && p == v.cfg.Address {
			return true, nil
		}
	}
	return false, nil
}

// Add puts the address on the link and announces it. It refuses a link that
// is down (ErrLinkDown) and is idempotent. The first announcement is sent
// before Add returns; the rest of the burst runs in the background. Calling
// Add while a burst runs restarts the burst.
func (v *VIP) Add(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	l, err := v.link()
	if err != nil {
		return err
	}
	attrs := l.Attrs()
	if attrs.Flags&net.FlagUp == 0 || attrs.OperState == netlink.OperDown || attrs.OperState == netlink.OperLowerLayerDown {
		return fmt.Errorf("%w: %s (flags %v, oper %v)", ErrLinkDown, v.iface, attrs.Flags, attrs.OperState)
	}
	// AddrReplace creates the address or refreshes it (including its
	// lifetime) if it is already there, which is exactly the idempotence we
	// want; an EEXIST from an older kernel is tolerated as well.
	if err := v.h.AddrReplace(l, v.cfg.netlinkAddr()); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("vip: add %s to %s: %w", v.cfg.Address, v.iface, err)
	}
	v.cfg.Logger.DebugContext(ctx, "vip added", "lifetime", v.cfg.ValidLifetime)

	v.stopBurstLocked()
	b, err := startBurst(ctx, v.cfg, attrs)
	if err != nil {
		// The address is in place; only the announcement failed. Report it,
		// because peers may keep sending to the old owner until their
		// neighbour caches time out.
		return fmt.Errorf("vip: announce %s on %s: %w", v.cfg.Address, v.iface, err)
	}
	v.burst = b
	return nil
}

// Renew re-sets the valid lifetime of the address; call it with each lease
// renewal. It returns ErrNotOwned if the address is no longer on the link,
// rather than re-adding it, because losing the address means something else
// (expiry, an operator, another agent) has intervened and leadership
// handling must decide.
func (v *VIP) Renew(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	l, err := v.link()
	if err != nil {
		return err
	}
	ok, err := v.presentLocked(l)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s on %s", ErrNotOwned, v.cfg.Address, v.iface)
	}
	// There is a window between the check and the replace in which the
	// address could expire and be re-created by the replace; it is at most
	// one netlink round trip and the lifetime is meant to catch dead agents,
	// not live ones, so that is acceptable.
	if err := v.h.AddrReplace(l, v.cfg.netlinkAddr()); err != nil {
		return fmt.Errorf("vip: renew %s on %s: %w", v.cfg.Address, v.iface, err)
	}
	return nil
}

// Remove deletes the address from the link, stops a running burst and,
// once the address is gone, disarms the guard (see Disarm). It is
// idempotent: an address that is already gone is not an error. When the
// removal fails the guard stays armed and removes the address at its
// deadline.
func (v *VIP) Remove(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stopBurstLocked()
	l, err := v.link()
	if errors.Is(err, ErrNoInterface) {
		// The link is gone and took its addresses with it: nothing to remove.
		v.cfg.Logger.DebugContext(ctx, "vip interface gone; nothing to remove")
		return v.Disarm()
	}
	if err != nil {
		return err
	}
	err = v.h.AddrDel(l, v.cfg.netlinkAddr())
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("vip: remove %s from %s: %w", v.cfg.Address, v.iface, err)
	}
	v.cfg.Logger.DebugContext(ctx, "vip removed")
	// Only now: the guard must keep its deadline while the address may
	// still be there.
	return v.Disarm()
}

func (v *VIP) stopBurstLocked() {
	if v.burst != nil {
		v.burst.stop()
		v.burst = nil
	}
}
