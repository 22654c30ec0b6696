package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ozanturksever/go-cluster/lock"
	"github.com/ozanturksever/go-cluster/state"
)

// DefaultLockTTL is how long a lock outlives a holder that stopped renewing it.
const DefaultLockTTL = 15 * time.Second

// Lock is a distributed lock of an app. While held it is renewed in the
// background; Unlock releases it only if it is still ours.
type Lock struct {
	app  *Application
	name string
	ttl  time.Duration

	mu sync.Mutex
	l  *lock.Lock
}

// LockOption configures a Lock.
type LockOption func(*Lock)

// LockTTL sets this lock's TTL (at least 1s). Each lock has its own TTL.
func LockTTL(d time.Duration) LockOption { return func(l *Lock) { l.ttl = d } }

// Lock returns the app's lock called name.
func (a *Application) Lock(name string, opts ...LockOption) *Lock {
	l := &Lock{app: a, name: name, ttl: DefaultLockTTL}
	for _, o := range opts {
		o(l)
	}
	return l
}

func (l *Lock) get(ctx context.Context) (*lock.Lock, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.l != nil {
		return l.l, nil
	}
	if err := state.ValidateName("lock name", l.name); err != nil {
		return nil, fmt.Errorf("app %s: %w: %w", l.app.name, ErrInvalidName, err)
	}
	p, err := l.app.getPlatform()
	if err != nil {
		return nil, err
	}
	if p.initErr != nil {
		return nil, p.initErr
	}
	kv, err := state.EnsureKV(ctx, p.js, lock.BucketConfig(p.layout.LocksBucket(l.app.name), p.cfg.replicas))
	if err != nil {
		return nil, err
	}
	ll, err := lock.New(p.js, kv, l.name, lock.Options{TTL: l.ttl, Owner: p.node, Logger: p.log})
	if err != nil {
		return nil, fmt.Errorf("app %s lock %s: %w", l.app.name, l.name, err)
	}
	l.l = ll
	return ll, nil
}

// TryLock makes one attempt and reports whether the lock is now held. Use
// Acquire to see why an attempt failed.
func (l *Lock) TryLock(ctx context.Context) bool {
	ok, err := l.Acquire(ctx)
	if err != nil {
		if p, perr := l.app.getPlatform(); perr == nil {
			p.log.Warn("TryLock failed", "app", l.app.name, "lock", l.name, "err", err)
		}
	}
	return ok
}

// Acquire makes one attempt: false with a nil error means someone else holds it.
func (l *Lock) Acquire(ctx context.Context) (bool, error) {
	ll, err := l.get(ctx)
	if err != nil {
		return false, err
	}
	return ll.TryLock(ctx)
}

// Lock blocks until the lock is held or ctx ends.
func (l *Lock) Lock(ctx context.Context) error {
	ll, err := l.get(ctx)
	if err != nil {
		return err
	}
	return ll.Lock(ctx)
}

// Unlock releases the lock if it is still ours; ErrLockNotHeld otherwise.
// It never removes another holder's lock.
func (l *Lock) Unlock(ctx context.Context) error {
	ll, err := l.get(ctx)
	if err != nil {
		return err
	}
	if err := ll.Unlock(ctx); err != nil {
		if errors.Is(err, lock.ErrNotHeld) {
			return fmt.Errorf("app %s lock %s: %w", l.app.name, l.name, ErrLockNotHeld)
		}
		return err
	}
	return nil
}

// Held reports whether this process holds the lock now.
func (l *Lock) Held() bool {
	l.mu.Lock()
	ll := l.l
	l.mu.Unlock()
	return ll != nil && ll.Held()
}

// Token is the fencing token of the current hold (0 when not held): it grows
// with every new holder, so a resource can refuse a stale holder's writes.
func (l *Lock) Token() uint64 {
	l.mu.Lock()
	ll := l.l
	l.mu.Unlock()
	if ll == nil {
		return 0
	}
	return ll.Token()
}

// Lost is closed when a held lock is lost (expired without renewal).
func (l *Lock) Lost() <-chan struct{} {
	l.mu.Lock()
	ll := l.l
	l.mu.Unlock()
	if ll == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return ll.Lost()
}
