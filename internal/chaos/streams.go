//go:build linux

package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/state"
)

// platform is the agents' platform name (they run with the default).
const platform = "default"

// leaseStreamPrefixes name the JetStream streams that leases and
// activation depend on: the KV streams of the leases bucket and of the
// nodes bucket (presence and active markers). They are prefixes so that
// buckets split per app or per node, should the layout grow them, are
// found too.
func leaseStreamPrefixes() []string {
	lay := state.Layout{Platform: platform}
	return []string{"KV_" + lay.LeasesBucket(), "KV_" + lay.NodesBucket()}
}

// StreamState is one stream's cluster as its leader reports it.
type StreamState struct {
	Name     string
	Replicas int
	Leader   string // server name, which is the node ID; "" while there is none
	// Behind lists the replicas that are not current, with their lag.
	Behind []string
}

// LeaseStreams reports the lease and activation streams (see
// leaseStreamPrefixes), by name.
func (l *Lab) LeaseStreams(ctx context.Context) ([]StreamState, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	js, err := jetstream.New(l.nc)
	if err != nil {
		return nil, err
	}
	var names []string
	lister := js.StreamNames(ctx)
	for name := range lister.Name() {
		for _, p := range leaseStreamPrefixes() {
			if strings.HasPrefix(name, p) {
				names = append(names, name)
			}
		}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("chaos: list streams: %w", err)
	}
	slices.Sort(names)
	var out []StreamState
	for _, name := range names {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("chaos: stream %s: %w", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("chaos: stream %s info: %w", name, err)
		}
		st := StreamState{Name: name, Replicas: info.Config.Replicas}
		if c := info.Cluster; c != nil {
			st.Leader = c.Leader
			for _, r := range c.Replicas {
				if !r.Current || r.Offline || r.Lag > 0 {
					st.Behind = append(st.Behind, fmt.Sprintf("%s(current=%v offline=%v lag=%d)", r.Name, r.Current, r.Offline, r.Lag))
				}
			}
		}
		out = append(out, st)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("chaos: no stream starts with %v", leaseStreamPrefixes())
	}
	return out, nil
}

// StepStreamLeader asks the stream's leader to step down in favour of
// preferred (a server name), through the JetStream API.
func (l *Lab) StepStreamLeader(ctx context.Context, stream, preferred string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	body, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": preferred}})
	msg, err := l.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, body)
	if err != nil {
		return fmt.Errorf("chaos: step down the leader of %s: %w", stream, err)
	}
	var resp struct {
		Success bool `json:"success"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("chaos: step down the leader of %s: %w: %s", stream, err, msg.Data)
	}
	if !resp.Success {
		desc := string(msg.Data)
		if resp.Error != nil {
			desc = resp.Error.Description
		}
		return fmt.Errorf("chaos: step down the leader of %s to %s: %s", stream, preferred, desc)
	}
	return nil
}

// streamsLedBy names the streams whose leader is node.
func streamsLedBy(streams []StreamState, node string) []string {
	var out []string
	for _, s := range streams {
		if s.Leader == node {
			out = append(out, s.Name)
		}
	}
	return out
}

// current reports whether every stream has a leader and no replica behind.
func current(streams []StreamState) bool {
	for _, s := range streams {
		if s.Leader == "" || len(s.Behind) > 0 {
			return false
		}
	}
	return true
}

func describeStreams(streams []StreamState) string {
	var parts []string
	for _, s := range streams {
		parts = append(parts, fmt.Sprintf("%s R%d leader %s", s.Name, s.Replicas, s.Leader))
	}
	return strings.Join(parts, ", ")
}
