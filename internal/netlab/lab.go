//go:build linux

// Package netlab builds a small multi-host network out of Linux network
// namespaces, for testing and benchmarking virtual-IP failover:
//
//	root namespace:  bridge <prefix>br  198.18.0.254/24 (the gateway)
//	                   |         |          |
//	node i:          eth0 198.18.0.(i+1)/24 ...
//	client:          eth0 198.18.0.200/24
//
// Every host is a named network namespace (so `ip netns exec NAME cmd`
// works), joined to the bridge by a veth pair whose inner end is called
// eth0, with loopback up and a default route via the gateway, so that a
// process in a namespace reaches a server (e.g. NATS) listening on the
// gateway address in the root namespace.
//
// Only one lab exists on a machine at a time: New takes an exclusive lock
// (flock on LockPath) for the lab's lifetime, because every lab uses the same
// subnet on a bridge in the root namespace. A second New, in this process or
// another, waits for the first lab's Close (or for ctx). Holding the lock
// also means any object carrying the name prefix is a leftover of a crashed
// run, which New removes before building (see Sweep).
//
// br_netfilter: where it is loaded (built in on the development machine,
// with bridge-nf-call-iptables/arptables=1), bridged frames are offered to
// the root namespace's iptables FORWARD chain. With no iptables or nftables
// tables loaded (the case there: /proc/net/ip_tables_names empty, conntrack
// empty during the tests) that is a no-op. The lab does not change the
// global setting (a per-bridge nf_call_iptables=0 cannot override it) and
// needs no iptables; a machine whose FORWARD policy drops (e.g. Docker's)
// would break host-to-host traffic, which TestTopology detects. Forwarding
// between bridge ports needs no ip_forward; the root namespace's
// ip_forward is left alone (off), so the lab cannot reach anything beyond
// the gateway.
package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	// NamePrefix starts the name of every link and namespace a lab makes;
	// Sweep removes whatever carries it. "gl" for go-cluster, "nl" for netlab.
	NamePrefix = "glnl"

	// LockPath is the file whose flock serialises labs on a machine.
	LockPath = "/run/go-cluster-netlab.lock"

	// NetnsDir is where named namespaces are bind-mounted (as by iproute2).
	NetnsDir = "/run/netns"

	// Iface is the name of each host's interface to the bridge.
	Iface = "eth0"

	// ClientOctet and GatewayOctet are the last octets of the client's and
	// the gateway's addresses; node i gets i+1.
	ClientOctet  = 200
	GatewayOctet = 254

	// MaxNodes keeps node addresses below the client's.
	MaxNodes = 64
)

// DefaultSubnet is the lab's IPv4 subnet unless Config.Subnet says otherwise
// (198.18.0.0/15 is reserved for benchmarking, RFC 2544).
var DefaultSubnet = netip.MustParsePrefix("198.18.0.0/24")

// Config describes a lab.
type Config struct {
	// Nodes is the number of node namespaces, 1..MaxNodes.
	Nodes int

	// Subnet is the IPv4 /24 the lab uses; zero means DefaultSubnet.
	Subnet netip.Prefix

	// IPv6 gives every host (and the gateway) an address in
	// fd00:6e6c::/64 as well, with duplicate address detection off. When
	// false, IPv6 is disabled on every lab interface, which also keeps
	// router solicitations and MLD reports off the bridge.
	IPv6 bool

	// failAfterHosts, when > 0, makes New fail after it has built that
	// many hosts: a test hook for the clean-up of a partial lab.
	failAfterHosts int
	// created, when set, is called with the lab as soon as it is
	// allocated: a test hook to learn the names of a lab New fails to make.
	created func(*Lab)
}

// ipv6Subnet is the lab's IPv6 prefix when Config.IPv6 is set.
var ipv6Subnet = netip.MustParsePrefix("fd00:6e6c::/64")

// Lab is a running topology. Its fields are read-only.
type Lab struct {
	// ID is the lab's unique part of every name: names start with
	// NamePrefix+ID.
	ID string
	// Bridge is the bridge's name in the root namespace.
	Bridge string
	// Gateway is the bridge's IPv4 address; Gateway6 its IPv6 address when
	// Config.IPv6 is set.
	Gateway, Gateway6 netip.Addr
	// Subnet is the IPv4 subnet.
	Subnet netip.Prefix
	// Nodes are the node hosts, in order; Client is the client host.
	Nodes  []*Host
	Client *Host

	cfg    Config
	lock   *os.File
	rootNS netns.NsHandle
	root   *netlink.Handle

	closeOnce sync.Once
	closeErr  error
}

// Hosts returns the nodes followed by the client.
func (l *Lab) Hosts() []*Host {
	hs := append([]*Host(nil), l.Nodes...)
	if l.Client != nil {
		hs = append(hs, l.Client)
	}
	return hs
}

// Prefix returns the lab's name prefix, NamePrefix+ID.
func (l *Lab) Prefix() string { return NamePrefix + l.ID }

// New builds the lab. On failure it removes whatever it had made and
// returns the error. It waits (until ctx ends) for any other lab on the
// machine to close, then removes leftovers of crashed runs.
func New(ctx context.Context, cfg Config) (_ *Lab, err error) {
	if cfg.Nodes < 1 || cfg.Nodes > MaxNodes {
		return nil, fmt.Errorf("netlab: Nodes must be 1..%d, got %d", MaxNodes, cfg.Nodes)
	}
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = DefaultSubnet
	}
	cfg.Subnet = cfg.Subnet.Masked()
	if !cfg.Subnet.Addr().Is4() || cfg.Subnet.Bits() != 24 {
		return nil, fmt.Errorf("netlab: Subnet must be an IPv4 /24, got %s", cfg.Subnet)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("netlab: needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
	}

	lock, err := acquireLock(ctx, true)
	if err != nil {
		return nil, err
	}
	l := &Lab{
		ID:      newID(),
		Subnet:  cfg.Subnet,
		Gateway: hostAddr(cfg.Subnet, GatewayOctet),
		cfg:     cfg,
		lock:    lock,
		rootNS:  -1,
	}
	l.Bridge = l.Prefix() + "br"
	if cfg.IPv6 {
		l.Gateway6 = hostAddr6(GatewayOctet)
	}
	if cfg.created != nil {
		cfg.created(l)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()

	// Leftovers can only be from dead processes: we hold the lock.
	if err := sweepLocked(); err != nil {
		return nil, fmt.Errorf("netlab: sweep leftovers: %w", err)
	}

	if l.rootNS, err = netns.GetFromPath(fmt.Sprintf("/proc/%d/ns/net", os.Getpid())); err != nil {
		return nil, fmt.Errorf("netlab: open root namespace: %w", err)
	}
	if l.root, err = netlink.NewHandleAt(l.rootNS); err != nil {
		return nil, fmt.Errorf("netlab: netlink handle in root namespace: %w", err)
	}
	if err := l.makeBridge(); err != nil {
		return nil, err
	}
	for i := 0; i < cfg.Nodes; i++ {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		h, err := l.makeHost(fmt.Sprintf("n%d", i), i, hostAddr(cfg.Subnet, i+1))
		if h != nil {
			l.Nodes = append(l.Nodes, h) // appended even on error, for Close
		}
		if err != nil {
			return nil, err
		}
		if cfg.failAfterHosts > 0 && len(l.Nodes) >= cfg.failAfterHosts {
			return nil, errInjected
		}
	}
	h, err := l.makeHost("c", -1, hostAddr(cfg.Subnet, ClientOctet))
	l.Client = h
	if err != nil {
		return nil, err
	}
	return l, nil
}

var errInjected = errors.New("netlab: injected failure")

func hostAddr(subnet netip.Prefix, octet int) netip.Addr {
	b := subnet.Addr().As4()
	b[3] = byte(octet)
	return netip.AddrFrom4(b)
}

func hostAddr6(octet int) netip.Addr {
	b := ipv6Subnet.Addr().As16()
	b[15] = byte(octet)
	return netip.AddrFrom16(b)
}

// hostMAC is a fixed, locally administered MAC per host, so that captures
// and neighbour tables are readable: 02:6e:6c:00:00:<octet>.
func hostMAC(octet int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x6e, 0x6c, 0x00, 0x00, byte(octet)}
}

func newID() string {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on Linux; fall back to the pid anyway.
		return fmt.Sprintf("%04x", os.Getpid()&0xffff)
	}
	return hex.EncodeToString(b[:])
}

func (l *Lab) makeBridge() error {
	off := false
	br := &netlink.Bridge{
		LinkAttrs: netlink.LinkAttrs{
			Name: l.Bridge,
			// A fixed MAC: otherwise the bridge takes its lowest port's MAC
			// and changes it as ports come and go.
			HardwareAddr: hostMAC(GatewayOctet),
		},
		// VRRP and ARP are link-local or broadcast anyway; no snooping
		// makes every multicast flood, which is what a lab wants.
		MulticastSnooping: &off,
	}
	if err := l.root.LinkAdd(br); err != nil {
		return fmt.Errorf("netlab: create bridge %s: %w", l.Bridge, err)
	}
	link, err := l.root.LinkByName(l.Bridge)
	if err != nil {
		return fmt.Errorf("netlab: find bridge: %w", err)
	}
	if err := l.rootSysctlIPv6(l.Bridge); err != nil {
		return err
	}
	addrs := []netip.Prefix{netip.PrefixFrom(l.Gateway, 24)}
	if l.cfg.IPv6 {
		addrs = append(addrs, netip.PrefixFrom(l.Gateway6, ipv6Subnet.Bits()))
	}
	for _, a := range addrs {
		if err := l.root.AddrAdd(link, nlAddr(a)); err != nil {
			return fmt.Errorf("netlab: add %s to bridge: %w", a, err)
		}
	}
	if err := l.root.LinkSetUp(link); err != nil {
		return fmt.Errorf("netlab: set bridge up: %w", err)
	}
	return nil
}

// rootSysctlIPv6 enables or disables IPv6 on a root-namespace interface.
func (l *Lab) rootSysctlIPv6(iface string) error {
	val := "1"
	if l.cfg.IPv6 {
		val = "0"
	}
	return doIn(l.rootNS, func() error {
		return writeSysctl("net/ipv6/conf/"+iface+"/disable_ipv6", val)
	})
}

func nlAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// makeHost creates a named namespace and its veth pair. It returns a non-nil
// host as soon as the namespace exists, so that Close can remove it.
func (l *Lab) makeHost(label string, index int, addr netip.Addr) (*Host, error) {
	octet := int(addr.As4()[3])
	h := &Host{
		Name:     l.Prefix() + "-" + label,
		Label:    label,
		Index:    index,
		Addr:     addr,
		Prefix:   netip.PrefixFrom(addr, 24),
		Iface:    Iface,
		HostVeth: l.Prefix() + label,
		NS:       -1,
		lab:      l,
	}
	if l.cfg.IPv6 {
		h.Addr6 = hostAddr6(octet)
	}
	ns, err := newNamedNS(h.Name)
	if err != nil {
		return nil, fmt.Errorf("netlab: create namespace %s: %w", h.Name, err)
	}
	h.NS = ns
	if h.nl, err = netlink.NewHandleAt(ns); err != nil {
		return h, fmt.Errorf("netlab: netlink handle in %s: %w", h.Name, err)
	}

	// IPv6 switches must be set before eth0 appears: "default" is copied
	// into each new interface.
	v6 := "1"
	if l.cfg.IPv6 {
		v6 = "0"
	}
	err = h.Do(func() error {
		for _, kv := range [][2]string{
			{"net/ipv6/conf/all/disable_ipv6", v6},
			{"net/ipv6/conf/default/disable_ipv6", v6},
			{"net/ipv6/conf/all/accept_dad", "0"},
			{"net/ipv6/conf/default/accept_dad", "0"},
		} {
			if err := writeSysctl(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return h, fmt.Errorf("netlab: sysctl in %s: %w", h.Name, err)
	}

	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: h.HostVeth},
		PeerName:         Iface,
		PeerHardwareAddr: hostMAC(octet),
		PeerNamespace:    netlink.NsFd(ns),
	}
	if err := l.root.LinkAdd(veth); err != nil {
		return h, fmt.Errorf("netlab: create veth %s: %w", h.HostVeth, err)
	}
	outer, err := l.root.LinkByName(h.HostVeth)
	if err != nil {
		return h, fmt.Errorf("netlab: find %s: %w", h.HostVeth, err)
	}
	if err := l.rootSysctlIPv6(h.HostVeth); err != nil {
		return h, err
	}
	br, err := l.root.LinkByName(l.Bridge)
	if err != nil {
		return h, fmt.Errorf("netlab: find bridge: %w", err)
	}
	if err := l.root.LinkSetMaster(outer, br); err != nil {
		return h, fmt.Errorf("netlab: attach %s to bridge: %w", h.HostVeth, err)
	}
	if err := l.root.LinkSetUp(outer); err != nil {
		return h, fmt.Errorf("netlab: set %s up: %w", h.HostVeth, err)
	}

	if lo, err := h.nl.LinkByName("lo"); err != nil {
		return h, fmt.Errorf("netlab: find lo in %s: %w", h.Name, err)
	} else if err := h.nl.LinkSetUp(lo); err != nil {
		return h, fmt.Errorf("netlab: set lo up in %s: %w", h.Name, err)
	}
	inner, err := h.nl.LinkByName(Iface)
	if err != nil {
		return h, fmt.Errorf("netlab: find %s in %s: %w", Iface, h.Name, err)
	}
	addrs := []netip.Prefix{h.Prefix}
	if h.Addr6.IsValid() {
		addrs = append(addrs, netip.PrefixFrom(h.Addr6, ipv6Subnet.Bits()))
	}
	for _, a := range addrs {
		if err := h.nl.AddrAdd(inner, nlAddr(a)); err != nil {
			return h, fmt.Errorf("netlab: add %s in %s: %w", a, h.Name, err)
		}
	}
	if err := h.nl.LinkSetUp(inner); err != nil {
		return h, fmt.Errorf("netlab: set %s up in %s: %w", Iface, h.Name, err)
	}
	gws := []netip.Addr{l.Gateway}
	if l.Gateway6.IsValid() {
		gws = append(gws, l.Gateway6)
	}
	for _, gw := range gws {
		r := &netlink.Route{LinkIndex: inner.Attrs().Index, Gw: gw.AsSlice()}
		if gw.Is6() {
			r.Family = netlink.FAMILY_V6
		}
		if err := h.nl.RouteAdd(r); err != nil {
			return h, fmt.Errorf("netlab: default route via %s in %s: %w", gw, h.Name, err)
		}
	}
	if inner, err = h.nl.LinkByName(Iface); err == nil {
		h.mac = inner.Attrs().HardwareAddr
	}
	return h, nil
}

// Close removes every namespace, veth and the bridge of the lab, killing
// any process still running in its namespaces, and releases the machine
// lock. It is safe after a partial New and on repeated calls.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	var errs []error
	for _, h := range l.Hosts() {
		if err := killNamespaceProcs(filepath.Join(NetnsDir, h.Name)); err != nil {
			errs = append(errs, err)
		}
		h.close()
	}
	if l.root != nil {
		for _, h := range l.Hosts() {
			errs = append(errs, delLink(l.root, h.HostVeth))
		}
		errs = append(errs, delLink(l.root, l.Bridge))
		l.root.Close()
	}
	for _, h := range l.Hosts() {
		errs = append(errs, deleteNamedNS(h.Name))
	}
	if l.rootNS >= 0 {
		_ = l.rootNS.Close()
	}
	if l.lock != nil {
		_ = l.lock.Close() // releases the flock
	}
	return errors.Join(errs...)
}

func delLink(h *netlink.Handle, name string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("netlab: find %s: %w", name, err)
	}
	if err := h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("netlab: delete %s: %w", name, err)
	}
	return nil
}

// Sweep removes leftovers of crashed runs: namespaces under NetnsDir and
// root-namespace links whose names start with NamePrefix, after killing the
// processes still running in those namespaces (e.g. keepalived), and the
// temporary keepalived directories. It only acts when no lab is
// alive on the machine (it takes the lab lock without waiting); when one is,
// it does nothing and returns nil, since that lab swept when it started.
func Sweep() error {
	if os.Geteuid() != 0 {
		return nil
	}
	lock, err := acquireLock(context.Background(), false)
	if errors.Is(err, errLocked) {
		return nil
	}
	if err != nil {
		return err
	}
	defer lock.Close()
	return sweepLocked()
}

func sweepLocked() error {
	var errs []error
	entries, err := os.ReadDir(NetnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), NamePrefix) {
			continue
		}
		errs = append(errs, killNamespaceProcs(filepath.Join(NetnsDir, e.Name())))
		errs = append(errs, deleteNamedNS(e.Name()))
	}
	// Temporary keepalived directories of dead labs.
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), keepalivedTempPattern+"*"))
	for _, d := range dirs {
		errs = append(errs, os.RemoveAll(d))
	}
	links, err := netlink.LinkList()
	if err != nil {
		errs = append(errs, fmt.Errorf("netlab: list links: %w", err))
	}
	// veths first: deleting them cannot race with a bridge deletion.
	for _, bridges := range []bool{false, true} {
		for _, link := range links {
			name := link.Attrs().Name
			if !strings.HasPrefix(name, NamePrefix) || (link.Type() == "bridge") != bridges {
				continue
			}
			if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("netlab: delete %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

var errLocked = errors.New("netlab: another lab holds the lock")

// acquireLock takes the machine-wide lab lock, waiting for it until ctx ends
// when wait is set.
func acquireLock(ctx context.Context, wait bool) (*os.File, error) {
	f, err := os.OpenFile(LockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("netlab: open lock: %w", err)
	}
	const poll = 20 * time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("netlab: lock %s: %w", LockPath, err)
		}
		if !wait {
			f.Close()
			return nil, errLocked
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("netlab: waiting for another lab to close (%s): %w", LockPath, ctx.Err())
		case <-t.C:
		}
	}
}

// newNamedNS creates a named namespace like `ip netns add` and returns a
// handle to it, leaving the calling thread in its own namespace.
func newNamedNS(name string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	defer orig.Close()
	ns, nsErr := netns.NewNamed(name)
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime discards it when this
		// goroutine ends, instead of reusing a thread in the wrong namespace.
		if nsErr == nil {
			_ = ns.Close()
		}
		return -1, fmt.Errorf("restore namespace: %w", err)
	}
	runtime.UnlockOSThread()
	if nsErr != nil {
		// NewNamed leaves an empty mount point behind when the bind mount
		// fails; remove it (and the mount, if any) so that a retry works.
		_ = deleteNamedNS(name)
		return -1, nsErr
	}
	return ns, nil
}

func deleteNamedNS(name string) error {
	p := filepath.Join(NetnsDir, name)
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("netlab: unmount %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("netlab: remove %s: %w", p, err)
	}
	return nil
}

// killNamespaceProcs SIGKILLs every process (other than this one) whose
// network namespace is the one bind-mounted at nsPath, and waits for them to
// go, so that deleting the namespace really frees it and its interfaces.
func killNamespaceProcs(nsPath string) error {
	var target unix.Stat_t
	if err := unix.Stat(nsPath, &target); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("netlab: stat %s: %w", nsPath, err)
	}
	pids := namespacePids(target)
	for _, pid := range pids {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	// The processes are ours or orphans; either way the kernel reaps them
	// soon after SIGKILL (our own children are reaped by their exec.Cmd).
	deadline := time.Now().Add(5 * time.Second)
	for len(pids) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling for a condition with a deadline
		pids = namespacePids(target)
	}
	if len(pids) > 0 {
		return fmt.Errorf("netlab: processes %v still in %s after SIGKILL", pids, nsPath)
	}
	return nil
}

func namespacePids(target unix.Stat_t) []int {
	dir, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range dir {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == self || fmt.Sprint(pid) != e.Name() {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil {
			continue
		}
		if st.Dev == target.Dev && st.Ino == target.Ino && !isZombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

// writeSysctl writes /proc/sys/<key>; under net/ it applies to the network
// namespace of the calling thread.
func writeSysctl(key, val string) error {
	return os.WriteFile(filepath.Join("/proc/sys", key), []byte(val), 0o644)
}

// doIn runs fn on a locked OS thread switched into ns. Sockets created in fn
// stay in ns. If the thread cannot be switched back it stays locked, so the
// runtime destroys it when the goroutine ends instead of reusing it.
func doIn(ns netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: get current namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: enter namespace: %w", err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		return errors.Join(fnErr, fmt.Errorf("netlab: restore namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// Leftovers lists what of this lab still exists: namespaces under NetnsDir
// and root-namespace links whose names start with the lab's prefix. It is
// empty after a successful Close.
func (l *Lab) Leftovers() []string { return Leftovers(l.Prefix()) }

// Leftovers lists the namespaces under NetnsDir and the root-namespace
// links whose names start with prefix (NamePrefix for every lab's).
func Leftovers(prefix string) []string {
	var out []string
	entries, _ := os.ReadDir(NetnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, "netns "+e.Name())
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		return append(out, "links: "+err.Error())
	}
	for _, link := range links {
		if name := link.Attrs().Name; strings.HasPrefix(name, prefix) {
			out = append(out, link.Type()+" "+name)
		}
	}
	return out
}
