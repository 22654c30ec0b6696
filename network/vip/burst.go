//go:build linux

package vip

import (
	"context"
	"time"

	"github.com/vishvananda/netlink"
)

// announcer sends one announcement of the VIP (a gratuitous ARP or an
// unsolicited neighbour advertisement) on an already open socket.
type announcer interface {
	announce() error
	close() error
}

// burst is a running series of announcements. The first one is sent
// synchronously by startBurst so that Add returning means peers have been
// told at least once; the rest follow in the background so Add does not
// block for ARPCount*ARPInterval.
type burst struct {
	cancel chan struct{}
	done   chan struct{}
}

func startBurst(ctx context.Context, cfg Config, link *netlink.LinkAttrs) (*burst, error) {
	var (
		a   announcer
		err error
	)
	// The socket is opened here, in the caller's goroutine, so that it can
	// be created inside cfg.Namespace; the background goroutine then only
	// writes to it and needs no namespace switching.
	err = inConfiguredNamespace(cfg, func() error {
		var openErr error
		if cfg.Address.Addr().Is4() {
			a, openErr = newARPAnnouncer(cfg.Address.Addr(), link)
		} else {
			a, openErr = newNAAnnouncer(cfg.Address.Addr(), link)
		}
		return openErr
	})
	if err != nil {
		return nil, err
	}
	if err := a.announce(); err != nil {
		_ = a.close()
		return nil, err
	}
	b := &burst{cancel: make(chan struct{}), done: make(chan struct{})}
	log := cfg.Logger
	go func() {
		defer close(b.done)
		defer func() { _ = a.close() }()
		t := time.NewTicker(cfg.ARPInterval)
		defer t.Stop()
		for sent := 1; sent < cfg.ARPCount; sent++ {
			select {
			case <-b.cancel:
				return
			case <-t.C:
			}
			if err := a.announce(); err != nil {
				// Later announcements are best effort: the first one
				// succeeded, and a transient send error (e.g. a full queue)
				// must not tear down a VIP we already own.
				log.Warn("vip announcement failed", "n", sent+1, "err", err)
			}
		}
	}()
	_ = ctx // the burst deliberately outlives the Add call's context
	return b, nil
}

// stop cancels the burst and waits for its goroutine to close the socket,
// so that a restarted burst never overlaps the old one.
func (b *burst) stop() {
	close(b.cancel)
	<-b.done
}
