//go:build linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Host is one namespace of the lab: a node or the client. Its fields are
// read-only; its methods are safe for concurrent use.
type Host struct {
	// Name is the namespace's name (ip netns exec Name ...).
	Name string
	// Label is the short name within the lab: "n0", "n1", ... or "c".
	Label string
	// Index is the node's index in Lab.Nodes, -1 for the client.
	Index int
	// Addr is the host's IPv4 address and Prefix the same with its /24.
	Addr   netip.Addr
	Prefix netip.Prefix
	// Addr6 is the host's IPv6 address when the lab has IPv6, else invalid.
	Addr6 netip.Addr
	// Iface is the interface to the bridge inside the namespace ("eth0").
	Iface string
	// HostVeth is the other end of the veth pair, on the bridge in the root
	// namespace.
	HostVeth string
	// NS is an open handle to the namespace, owned by the lab (valid until
	// Lab.Close). It can be given to network/vip's Config.Namespace.
	NS netns.NsHandle

	lab *Lab
	nl  *netlink.Handle // in NS
	mac net.HardwareAddr

	closeOnce sync.Once
}

func (h *Host) String() string { return h.Label }

func (h *Host) close() {
	h.closeOnce.Do(func() {
		if h.nl != nil {
			h.nl.Close()
		}
		if h.NS >= 0 {
			_ = h.NS.Close()
		}
	})
}

// Netlink returns the host's netlink handle, opened inside its namespace
// and owned by the lab.
func (h *Host) Netlink() *netlink.Handle { return h.nl }

// MAC returns the hardware address of the host's eth0.
func (h *Host) MAC() net.HardwareAddr { return h.mac }

// Do runs fn on an OS thread locked to the calling goroutine and switched
// into the host's namespace. Sockets created in fn belong to the namespace
// for their whole life, wherever they are used afterwards. fn must not start
// goroutines that expect to be in the namespace: they are not.
func (h *Host) Do(fn func() error) error { return doIn(h.NS, fn) }

// Command returns a command that runs name inside the host's namespace
// (through `ip netns exec`, which execs name: the process's pid is name's).
// It runs in a new process group; when ctx ends the whole group gets
// SIGKILL. Use Signal to signal the group yourself.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, ipPath(), append([]string{"netns", "exec", h.Name, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return Signal(cmd, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Signal sends sig to the process group of a command started by
// Host.Command.
func Signal(cmd *exec.Cmd, sig syscall.Signal) error {
	if cmd.Process == nil {
		return errors.New("netlab: command not started")
	}
	return syscall.Kill(-cmd.Process.Pid, sig)
}

var ipPathOnce = sync.OnceValue(func() string {
	if p, err := exec.LookPath("ip"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	return "ip"
})

func ipPath() string { return ipPathOnce() }

// HaveIP reports whether the iproute2 `ip` command is available.
func HaveIP() bool {
	_, err := exec.LookPath(ipPath())
	return err == nil
}

// Addrs lists the addresses configured on any interface of the host.
func (h *Host) Addrs() ([]netip.Addr, error) {
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.nl.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("netlab: list addresses in %s: %w", h.Name, err)
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

// Holds reports whether addr is configured on any interface of the host.
func (h *Host) Holds(addr netip.Addr) (bool, error) {
	addr = addr.Unmap()
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.nl.AddrList(nil, fam) })
	if err != nil {
		return false, fmt.Errorf("netlab: list addresses in %s: %w", h.Name, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			return true, nil
		}
	}
	return false, nil
}

// AddAddr adds p to the host's eth0 (IPv6 without duplicate address
// detection).
func (h *Host) AddAddr(p netip.Prefix) error {
	link, err := h.nl.LinkByName(h.Iface)
	if err != nil {
		return fmt.Errorf("netlab: find %s in %s: %w", h.Iface, h.Name, err)
	}
	if err := h.nl.AddrAdd(link, nlAddr(p)); err != nil {
		return fmt.Errorf("netlab: add %s in %s: %w", p, h.Name, err)
	}
	return nil
}

// DelAddr removes addr from every interface of the host that has it; it is
// not an error when none has.
func (h *Host) DelAddr(addr netip.Addr) error {
	addr = addr.Unmap()
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.nl.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("netlab: list addresses in %s: %w", h.Name, err)
	}
	var errs []error
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			link, err := h.nl.LinkByIndex(a.LinkIndex)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if err := h.nl.AddrDel(link, &a); err != nil {
				errs = append(errs, fmt.Errorf("netlab: delete %s in %s: %w", addr, h.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// SetLink sets the host's eth0 up or down (down simulates a host that
// dropped off the network without any process noticing).
func (h *Host) SetLink(up bool) error {
	link, err := h.nl.LinkByName(h.Iface)
	if err != nil {
		return fmt.Errorf("netlab: find %s in %s: %w", h.Iface, h.Name, err)
	}
	if up {
		err = h.nl.LinkSetUp(link)
	} else {
		err = h.nl.LinkSetDown(link)
	}
	if err != nil {
		return fmt.Errorf("netlab: set %s up=%v in %s: %w", h.Iface, up, h.Name, err)
	}
	return nil
}

// Neighbor returns the host's neighbour-table entry for ip: the link-layer
// address and the NUD state (netlink.NUD_REACHABLE, NUD_STALE, ...). An
// entry without a link-layer address (e.g. INCOMPLETE or FAILED) returns a
// nil MAC with its state. With no entry at all the error is ErrNoNeighbor.
func (h *Host) Neighbor(ip netip.Addr) (net.HardwareAddr, int, error) {
	ip = ip.Unmap()
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	neighs, err := retryDump(func() ([]netlink.Neigh, error) { return h.nl.NeighList(0, fam) })
	if err != nil {
		return nil, 0, fmt.Errorf("netlab: neighbours in %s: %w", h.Name, err)
	}
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip {
			return n.HardwareAddr, n.State, nil
		}
	}
	return nil, 0, fmt.Errorf("%w: %s in %s", ErrNoNeighbor, ip, h.Name)
}

// ErrNoNeighbor is returned by Host.Neighbor when the table has no entry.
var ErrNoNeighbor = errors.New("netlab: no neighbour entry")

// FlushNeighbor deletes the host's neighbour entry for ip, if any, so that
// the next packet to ip resolves it afresh.
func (h *Host) FlushNeighbor(ip netip.Addr) error {
	ip = ip.Unmap()
	link, err := h.nl.LinkByName(h.Iface)
	if err != nil {
		return fmt.Errorf("netlab: find %s in %s: %w", h.Iface, h.Name, err)
	}
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	err = h.nl.NeighDel(&netlink.Neigh{LinkIndex: link.Attrs().Index, Family: fam, IP: ip.AsSlice()})
	if err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("netlab: flush neighbour %s in %s: %w", ip, h.Name, err)
	}
	return nil
}

// retryDump retries a netlink dump interrupted by a concurrent change
// (netlink.ErrDumpInterrupted), which is common while addresses move.
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	var (
		out []T
		err error
	)
	for range 10 {
		out, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return out, err
}
