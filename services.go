package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/state"
)

// ServiceConfig describes a service an app's active instances expose.
type ServiceConfig struct {
	Port     int               `json:"port"`
	Protocol string            `json:"protocol,omitempty"` // "http", "grpc", "tcp", ...
	Path     string            `json:"path,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// ServiceInstance is one registered instance of a service.
type ServiceInstance struct {
	App     string `json:"app"`
	Name    string `json:"name"`
	Node    string `json:"node"`
	Address string `json:"address"` // the node's advertised address
	ServiceConfig
}

// Endpoint is "address:port".
func (s ServiceInstance) Endpoint() string { return fmt.Sprintf("%s:%d", s.Address, s.Port) }

// ExposeService publishes a service record while this instance is active.
// The record goes away when the instance stops, loses leadership, or its
// node dies (the record's TTL lapses).
func (a *Application) ExposeService(name string, cfg ServiceConfig) error {
	if err := state.ValidateName("service name", name); err != nil {
		return fmt.Errorf("app %s: %w: %w", a.name, ErrInvalidName, err)
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return fmt.Errorf("app %s service %s: %w: port %d out of range 1-65535", a.name, name, ErrInvalidOption, cfg.Port)
	}
	a.mu.Lock()
	a.services[name] = cfg
	a.mu.Unlock()
	return nil
}

func (a *Application) serviceConfigs() map[string]ServiceConfig {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]ServiceConfig, len(a.services))
	for k, v := range a.services {
		out[k] = v
	}
	return out
}

func (p *Platform) publishServices(ctx context.Context, a *Application) error {
	for name, cfg := range a.serviceConfigs() {
		rec, _ := json.Marshal(ServiceInstance{App: a.name, Name: name, Node: p.node, Address: p.address, ServiceConfig: cfg})
		if err := p.own(ctx, p.services.Bucket(), p.layout.ServiceKey(a.name, name, p.node), rec); err != nil {
			return fmt.Errorf("publish service %s: %w", name, err)
		}
	}
	return nil
}

func (p *Platform) unpublishServices(ctx context.Context, a *Application) error {
	var firstErr error
	for name := range a.serviceConfigs() {
		if err := p.disown(ctx, p.services, p.layout.ServiceKey(a.name, name, p.node)); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// Services lists the registered instances of app's service name, sorted by node.
func (p *Platform) Services(ctx context.Context, app, name string) ([]ServiceInstance, error) {
	if p.initErr != nil {
		return nil, p.initErr
	}
	entries, err := state.ListEntries(ctx, p.js, p.services, app+"."+name+".*")
	if err != nil {
		return nil, fmt.Errorf("list services %s/%s: %w", app, name, err)
	}
	set := map[string]ServiceInstance{}
	for _, e := range entries {
		applyService(set, e)
	}
	return sortedServices(set), nil
}

// WatchServices sends the full, current set of instances of app's service
// name each time it changes, until ctx ends.
func (p *Platform) WatchServices(ctx context.Context, app, name string) (<-chan []ServiceInstance, error) {
	if p.initErr != nil {
		return nil, p.initErr
	}
	w, err := p.services.Watch(ctx, app+"."+name+".*")
	if err != nil {
		return nil, fmt.Errorf("watch services %s/%s: %w", app, name, err)
	}
	out := make(chan []ServiceInstance, 4)
	go func() {
		defer close(out)
		defer w.Stop()
		set := map[string]ServiceInstance{}
		initial := true
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					initial = false
				} else {
					applyService(set, e)
				}
				if initial {
					continue
				}
				select {
				case out <- sortedServices(set):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

func applyService(set map[string]ServiceInstance, e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		delete(set, e.Key())
		return
	}
	var s ServiceInstance
	if json.Unmarshal(e.Value(), &s) == nil {
		set[e.Key()] = s
	}
}

func sortedServices(set map[string]ServiceInstance) []ServiceInstance {
	out := make([]ServiceInstance, 0, len(set))
	for _, s := range set {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return strings.Compare(out[i].Node, out[j].Node) < 0 })
	return out
}
