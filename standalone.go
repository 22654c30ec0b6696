package cluster

import (
	"context"
	"errors"
	"fmt"
)

// Standalone is seed 001's one-app process: a platform and a single app.
// Its app methods (OnActive, OnStart, Handle, KV, Lock, ...) come from the
// embedded Application.
type Standalone struct {
	*Application
	nodeID, natsURL string
	platformName    string
	platformOpts    []PlatformOption
	platform        *Platform
}

// standaloneConfig is the platform of a Standalone, set by WithPlatform.
type standaloneConfig struct {
	name string
	opts []PlatformOption
}

// WithPlatform sets the platform name (default "default") and options of a
// seed-001 style constructor (New, Pool, NewRing).
func WithPlatform(name string, opts ...PlatformOption) Option {
	return func(a *Application) { a.standalone = &standaloneConfig{name: name, opts: opts} }
}

func newStandalone(name, nodeID, natsURL string, opts []Option) *Standalone {
	a := NewApp(name, opts...)
	s := &Standalone{Application: a, nodeID: nodeID, natsURL: natsURL, platformName: "default"}
	if a.standalone != nil {
		s.platformName, s.platformOpts = a.standalone.name, a.standalone.opts
	}
	return s
}

// New is seed 001's active-passive constructor: a singleton app on its own
// platform (named "default" unless WithPlatform says otherwise).
func New(name, nodeID, natsURL string, opts ...Option) *Standalone {
	return newStandalone(name, nodeID, natsURL, append([]Option{Singleton()}, opts...))
}

// Pool is seed 001's pool constructor: a Spread app unless Replicas is given.
func Pool(name, nodeID, natsURL string, opts ...Option) *Standalone {
	return newStandalone(name, nodeID, natsURL, append([]Option{Spread()}, opts...))
}

// NewRing is seed 001's cluster.Ring(name, node, url, ...) constructor. It
// cannot be called Ring in Go because Ring(n) is seed 000's ring option.
func NewRing(name, nodeID, natsURL string, opts ...Option) *Standalone {
	return newStandalone(name, nodeID, natsURL, append([]Option{Spread()}, opts...))
}

// Platform is the platform Run created (nil before Run).
func (s *Standalone) Platform() *Platform { return s.platform }

// Run connects, runs the app until ctx ends, and closes the connection.
func (s *Standalone) Run(ctx context.Context) error {
	p, err := NewPlatform(s.platformName, s.nodeID, s.natsURL, s.platformOpts...)
	if err != nil {
		return err
	}
	defer p.Close()
	s.platform = p
	if err := p.Register(s.Application); err != nil {
		return err
	}
	return p.Run(ctx)
}

// NodeFor returns the node owning key's ring partition.
func (s *Standalone) NodeFor(key string) (string, error) {
	if s.ringPartitions == 0 {
		return "", fmt.Errorf("app %s: %w: NodeFor needs WithPartitions", s.name, errors.ErrUnsupported)
	}
	return s.Ring().NodeFor(key)
}
