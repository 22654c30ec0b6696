package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/state"
)

// NodeInfo is a node's presence record.
type NodeInfo struct {
	ID       string            `json:"id"`
	Instance string            `json:"instance"`
	Address  string            `json:"address"`
	Labels   map[string]string `json:"labels,omitempty"`
	Apps     []string          `json:"apps,omitempty"`
	Started  time.Time         `json:"started"`
	// Agent is the HTTP address of the gcl agent running this node, empty
	// for a program using the library on its own. The scheduler places
	// jobs on agents only.
	Agent string `json:"agent,omitempty"`
}

// recordTTL is the server-side TTL of presence, active and service records.
// The server expires per-message TTLs on a one-second wheel, so we ask for a
// second less than the presence TTL to have records gone within it.
func (p *Platform) recordTTL() time.Duration { return p.cfg.presenceTTL - time.Second }

func (p *Platform) nodeRecord() []byte {
	p.mu.Lock()
	info := NodeInfo{ID: p.node, Instance: p.instance, Address: p.address, Labels: p.cfg.labels, Started: time.Now().UTC(), Agent: p.cfg.agentHTTP}
	for _, a := range p.apps {
		info.Apps = append(info.Apps, a.name)
	}
	p.mu.Unlock()
	b, _ := json.Marshal(info)
	return b
}

// join claims this node's presence record and starts answering probes. A
// live process with the same node ID makes it fail with ErrNodeIDInUse; a
// record left by a crashed predecessor is taken over once a probe proves
// that process is gone.
func (p *Platform) join(ctx context.Context) error {
	key := p.layout.NodeKey(p.node)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	entry, err := p.nodes.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
	case err != nil:
		return fmt.Errorf("read presence of node %s: %w", p.node, err)
	default:
		var prev NodeInfo
		_ = json.Unmarshal(entry.Value(), &prev)
		alive, perr := p.probeNode(ctx, prev.Instance)
		if perr != nil {
			return fmt.Errorf("node ID %q: %w: a process registered %s ago does not answer probes but may be alive (%v); retry after %v",
				p.node, ErrNodeIDInUse, time.Since(entry.Created()).Round(time.Millisecond), perr, p.cfg.presenceTTL)
		}
		if alive {
			return fmt.Errorf("node ID %q: %w (address %s, started %s)", p.node, ErrNodeIDInUse, prev.Address, prev.Started.Format(time.RFC3339))
		}
		p.log.Info("taking over the presence record of a previous process that is gone", "previous_instance", prev.Instance)
	}
	// Subscribe before writing the record, so a second process that sees
	// our record always finds us answering.
	sub, err := state.ServeProbe(p.nc, p.layout.NodeProbeSubject(p.node), p.instance)
	if err != nil {
		return fmt.Errorf("serve probes: %w", err)
	}
	p.probeSub = sub
	// A CAS on what we saw keeps two processes starting at once from both
	// winning: exactly one write lands.
	var rev uint64
	if entry != nil {
		rev = entry.Revision()
	} else if last, err := p.lastRevision(ctx, key); err == nil {
		rev = last
	}
	p.ownedMu.Lock()
	_, err = state.PutCAS(ctx, p.js, p.nodes.Bucket(), key, p.nodeRecord(), rev, p.recordTTL())
	if err == nil {
		p.owned[ownedKey{p.nodes.Bucket(), key}] = p.nodeRecord()
	}
	p.ownedMu.Unlock()
	if err != nil {
		_ = sub.Unsubscribe()
		if state.IsCASFailure(err) {
			return fmt.Errorf("node ID %q: %w: another process registered it at the same moment", p.node, ErrNodeIDInUse)
		}
		return fmt.Errorf("register node %s: %w", p.node, err)
	}
	return nil
}

// lastRevision is the last stream sequence of key in the nodes bucket,
// including delete markers (0 when the subject is empty).
func (p *Platform) lastRevision(ctx context.Context, key string) (uint64, error) {
	s, err := p.js.Stream(ctx, "KV_"+p.nodes.Bucket())
	if err != nil {
		return 0, err
	}
	m, err := s.GetLastMsgForSubject(ctx, "$KV."+p.nodes.Bucket()+"."+key)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// probeNode asks whether the process with instance ID instance still runs
// this node. An error means we cannot tell.
func (p *Platform) probeNode(ctx context.Context, instance string) (bool, error) {
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	msg, err := p.nc.RequestWithContext(rctx, p.layout.NodeProbeSubject(p.node), nil)
	if errors.Is(err, nats.ErrNoResponders) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return string(msg.Data) == instance, nil
}

// heartbeat keeps this process's records alive until ctx ends.
func (p *Platform) heartbeat(ctx context.Context) error {
	t := time.NewTicker(p.cfg.presenceTTL / 5)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, p.cfg.presenceTTL/5)
		if err := p.refreshOwned(hctx); err != nil && ctx.Err() == nil {
			p.log.Warn("presence heartbeat failed", "err", err)
		}
		cancel()
	}
}

// leave removes this node's records so other nodes see it go at once.
func (p *Platform) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p.ownedMu.Lock()
	for k := range p.owned {
		if kv := p.bucketFor(k.bucket); kv != nil {
			_ = kv.Delete(ctx, k.key)
		}
		delete(p.owned, k)
	}
	p.ownedMu.Unlock()
	if p.probeSub != nil {
		_ = p.probeSub.Unsubscribe()
	}
}

func (p *Platform) bucketFor(name string) jetstream.KeyValue {
	p.replMu.Lock()
	repl := p.replStatus
	p.replMu.Unlock()
	for _, kv := range []jetstream.KeyValue{p.nodes, p.services, repl} {
		if kv != nil && kv.Bucket() == name {
			return kv
		}
	}
	return nil
}

// Nodes lists the nodes present now, sorted by ID.
func (p *Platform) Nodes(ctx context.Context) ([]NodeInfo, error) {
	if p.initErr != nil {
		return nil, p.initErr
	}
	return listNodes(ctx, p.js, p.nodes)
}

// NodesOf lists the nodes present now on platform, sorted by ID, for
// tools that are not members themselves (the gcl CLI): no Platform needed.
func NodesOf(ctx context.Context, js jetstream.JetStream, platform string) ([]NodeInfo, error) {
	kv, err := js.KeyValue(ctx, state.Layout{Platform: platform}.NodesBucket())
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil // no node ever joined
	}
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return listNodes(ctx, js, kv)
}

func listNodes(ctx context.Context, js jetstream.JetStream, nodes jetstream.KeyValue) ([]NodeInfo, error) {
	entries, err := state.ListEntries(ctx, js, nodes, "node.>")
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var out []NodeInfo
	for _, e := range entries {
		var n NodeInfo
		if json.Unmarshal(e.Value(), &n) == nil {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// NodeEvent is a change in presence: Left is true when the node went away
// (clean shutdown or expiry of a crashed node's record).
type NodeEvent struct {
	Node NodeInfo
	Left bool
}

// WatchNodes reports presence changes, starting with the nodes present now,
// until ctx ends. Expiry of a crashed node arrives as a Left event: the
// server tells watchers through an expiry marker.
func (p *Platform) WatchNodes(ctx context.Context) (<-chan NodeEvent, error) {
	if p.initErr != nil {
		return nil, p.initErr
	}
	w, err := p.nodes.Watch(ctx, "node.*")
	if err != nil {
		return nil, fmt.Errorf("watch nodes: %w", err)
	}
	out := make(chan NodeEvent, 16)
	go func() {
		defer close(out)
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				ev := NodeEvent{Node: NodeInfo{ID: strings.TrimPrefix(e.Key(), "node.")}}
				if e.Operation() == jetstream.KeyValuePut {
					_ = json.Unmarshal(e.Value(), &ev.Node)
				} else {
					ev.Left = true
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// advertiseAddress picks the address other nodes reach this node at.
func advertiseAddress(configured string) (string, error) {
	if configured != "" {
		if net.ParseIP(configured) == nil {
			if _, err := net.LookupHost(configured); err != nil {
				return "", fmt.Errorf("%w: advertise address %q is neither an IP nor a resolvable name", ErrInvalidOption, configured)
			}
		}
		return configured, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil && !ipn.IP.IsLinkLocalUnicast() {
				return ipn.IP.String(), nil
			}
		}
	}
	return "127.0.0.1", nil
}
