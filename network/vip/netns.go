//go:build linux

package vip

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// newHandle opens the netlink handle VIP uses for all address and link
// operations. A handle opened with NewHandleAt keeps its sockets in the
// target namespace, so later calls need no thread juggling.
func newHandle(cfg Config) (*netlink.Handle, error) {
	if cfg.inNamespace() {
		h, err := netlink.NewHandleAt(cfg.Namespace)
		if err != nil {
			return nil, fmt.Errorf("vip: netlink handle in namespace: %w", err)
		}
		return h, nil
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("vip: netlink handle: %w", err)
	}
	return h, nil
}

// doInNamespace runs fn on an OS thread that is switched into ns. A socket
// belongs to the namespace of the thread that created it, and stays there
// after the thread switches back, which is what we need for raw sockets.
//
// The goroutine is locked to its thread for the duration, because Go would
// otherwise migrate it to a thread in another namespace between setns and
// socket(2). If switching back fails the thread is left locked, so the
// runtime destroys it when the goroutine ends instead of reusing a thread in
// the wrong namespace.
func doInNamespace(ns netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("vip: get current namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("vip: enter namespace: %w", err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// Deliberately keep the thread locked: see above.
		return fmt.Errorf("vip: restore namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// inConfiguredNamespace runs fn in cfg.Namespace, or directly when none is
// configured.
func inConfiguredNamespace(cfg Config, fn func() error) error {
	if !cfg.inNamespace() {
		return fn()
	}
	return doInNamespace(cfg.Namespace, fn)
}
