package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	cluster "github.com/ozanturksever/go-cluster"
	"github.com/ozanturksever/go-cluster/control"
	"github.com/ozanturksever/go-cluster/election"
	"github.com/ozanturksever/go-cluster/replication"
	"github.com/ozanturksever/go-cluster/scheduler"
	"github.com/ozanturksever/go-cluster/state"
)

// The views below are read-only pictures of the cluster assembled from
// NATS. The HTTP API serves them and the CLI prints them, so both always
// show the same thing.

// JobStatus is one job as `gcl job status` shows it.
type JobStatus struct {
	Name      string                    `json:"name"`
	Version   uint64                    `json:"version"`
	Mode      string                    `json:"mode"`
	Stopped   bool                      `json:"stopped"`
	Progress  *control.Progress         `json:"progress,omitempty"`
	Allocs    []scheduler.Alloc         `json:"allocations"`
	Instances []scheduler.InstanceState `json:"instances"`
}

// snapshot is what the views are made from.
type snapshot struct {
	jobs     []control.Job
	allocs   map[string]control.NodeAllocs
	reports  map[string]control.Report
	progress map[string]control.Progress
	nodes    []cluster.NodeInfo
	live     map[string]bool
}

func takeSnapshot(ctx context.Context, store *control.Store, js jetstream.JetStream) (*snapshot, error) {
	s := &snapshot{live: map[string]bool{}}
	var err error
	if s.jobs, err = store.Jobs(ctx); err != nil {
		return nil, err
	}
	if s.allocs, err = store.Allocs(ctx); err != nil {
		return nil, err
	}
	if s.reports, err = store.Reports(ctx); err != nil {
		return nil, err
	}
	if s.progress, err = store.Progresses(ctx); err != nil {
		return nil, err
	}
	if s.nodes, err = cluster.NodesOf(ctx, js, store.Layout().Platform); err != nil {
		return nil, err
	}
	for _, n := range s.nodes {
		s.live[n.ID] = true
	}
	return s, nil
}

func (s *snapshot) job(j control.Job) JobStatus {
	st := JobStatus{Name: j.Name, Version: j.Version, Mode: string(j.Spec.Mode), Stopped: j.Stopped}
	if p, ok := s.progress[j.Name]; ok {
		st.Progress = &p
	}
	for _, node := range sortedKeys(s.allocs) {
		for _, al := range s.allocs[node].Allocs {
			if al.Job == j.Name {
				st.Allocs = append(st.Allocs, al)
			}
		}
	}
	for _, node := range sortedKeys(s.reports) {
		if !s.live[node] {
			continue
		}
		for _, in := range s.reports[node].Instances {
			if in.Job == j.Name {
				st.Instances = append(st.Instances, in)
			}
		}
	}
	return st
}

// JobsView is every job's status.
func JobsView(ctx context.Context, store *control.Store, js jetstream.JetStream) ([]JobStatus, error) {
	s, err := takeSnapshot(ctx, store, js)
	if err != nil {
		return nil, err
	}
	out := []JobStatus{}
	for _, j := range s.jobs {
		out = append(out, s.job(j))
	}
	return out, nil
}

// JobView is one job's status.
func JobView(ctx context.Context, store *control.Store, js jetstream.JetStream, name string) (JobStatus, error) {
	j, err := store.Job(ctx, name)
	if err != nil {
		return JobStatus{}, err
	}
	s, err := takeSnapshot(ctx, store, js)
	if err != nil {
		return JobStatus{}, err
	}
	return s.job(j), nil
}

// NodeStatus is one node as `gcl node status` shows it.
type NodeStatus struct {
	cluster.NodeInfo
	Eligible  bool                      `json:"eligible"`
	Drain     bool                      `json:"drain"`
	Allocs    []scheduler.Alloc         `json:"allocations"`
	Instances []scheduler.InstanceState `json:"instances"`
}

// NodesView is every live node running an agent.
func NodesView(ctx context.Context, store *control.Store, js jetstream.JetStream) ([]NodeStatus, error) {
	s, err := takeSnapshot(ctx, store, js)
	if err != nil {
		return nil, err
	}
	controls, err := store.NodeControls(ctx)
	if err != nil {
		return nil, err
	}
	out := []NodeStatus{}
	for _, n := range agentNodes(s.nodes) {
		c := controls[n.ID]
		out = append(out, NodeStatus{
			NodeInfo: n, Eligible: !c.Ineligible, Drain: c.Drain,
			Allocs: s.allocs[n.ID].Allocs, Instances: s.reports[n.ID].Instances,
		})
	}
	return out, nil
}

// AppStatus is one app as `gcl app status` shows it.
type AppStatus struct {
	Name      string                    `json:"name"`
	Mode      string                    `json:"mode"`
	Leader    string                    `json:"leader,omitempty"`
	Epoch     uint64                    `json:"epoch,omitempty"`
	Standbys  []string                  `json:"standbys,omitempty"`
	Instances []scheduler.InstanceState `json:"instances"`
	Ring      *RingStatus               `json:"ring,omitempty"`
	// Replication is set for an app with an sqlite block.
	Replication *ReplicationView `json:"replication,omitempty"`
}

// ReplicationView is the replication of an app's SQLite database: every
// instance's status record, the leader first.
type ReplicationView struct {
	Path  string            `json:"path"`
	Nodes []ReplicationNode `json:"nodes"`
	// Error says why the records could not be read.
	Error string `json:"error,omitempty"`
}

// ReplicationNode is one instance's replication status as it last wrote
// it (Updated is when its figures last changed, not when it was written:
// an idle leader's is old), with its backlog in log bytes behind the
// leader's (0 on the leader, on a standby at the leader's seq, or when no
// leader reports).
type ReplicationNode struct {
	cluster.ReplicationStatus
	BytesBehind uint64 `json:"bytes_behind"`
}

// RingStatus is a ring app's current assignment.
type RingStatus struct {
	Partitions  int               `json:"partitions"`
	Version     uint64            `json:"version"`
	Coordinator string            `json:"coordinator"`
	Owners      map[string]string `json:"owners"` // node → partition ranges
}

// AppView is the status of app name: leader and standbys, instances, ring
// ownership.
func AppView(ctx context.Context, store *control.Store, js jetstream.JetStream, name string) (AppStatus, error) {
	j, err := store.Job(ctx, name)
	if err != nil {
		return AppStatus{}, err
	}
	s, err := takeSnapshot(ctx, store, js)
	if err != nil {
		return AppStatus{}, err
	}
	st := AppStatus{Name: name, Mode: string(j.Spec.Mode), Instances: s.job(j).Instances}
	l := store.Layout()
	if leases, err := js.KeyValue(ctx, l.LeasesBucket()); err == nil {
		if e, err := leases.Get(ctx, l.LeaseKey(name)); err == nil {
			var rec election.Record
			if json.Unmarshal(e.Value(), &rec) == nil {
				st.Leader, st.Epoch = rec.Holder, rec.Epoch
				if st.Epoch == 0 {
					st.Epoch = e.Revision()
				}
			}
		}
	}
	if st.Mode == "singleton" {
		for _, in := range st.Instances {
			if in.Node != st.Leader {
				st.Standbys = append(st.Standbys, in.Node)
			}
		}
	}
	if j.Spec.SQLite != nil {
		st.Replication = &ReplicationView{Path: j.Spec.SQLite.Path, Nodes: []ReplicationNode{}}
		if nodes, err := ReplicationNodes(ctx, js, l, name); err != nil {
			st.Replication.Error = err.Error()
		} else {
			st.Replication.Nodes = nodes
		}
	}
	if st.Mode == "ring" {
		if kv, err := js.KeyValue(ctx, l.AssignmentsBucket()); err == nil {
			if e, err := kv.Get(ctx, l.RingKey(name)); err == nil {
				var rec state.RingAssignmentRecord
				if json.Unmarshal(e.Value(), &rec) == nil {
					st.Ring = &RingStatus{Partitions: rec.Partitions, Version: e.Revision(), Coordinator: rec.Coordinator, Owners: rec.Owners}
				}
			}
		}
	}
	return st, nil
}

// ReplicationNodes lists the replication status records of app's
// instances, the leader first, then by node; none when no app of the
// platform ever replicated a database.
func ReplicationNodes(ctx context.Context, js jetstream.JetStream, l state.Layout, app string) ([]ReplicationNode, error) {
	kv, err := js.KeyValue(ctx, l.ReplicationBucket())
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return []ReplicationNode{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replication status: %w", err)
	}
	list, err := replication.ListStatuses(ctx, js, kv, app)
	if err != nil {
		return nil, fmt.Errorf("replication status: %w", err)
	}
	return replicationNodes(list), nil
}

// replicationNodes orders statuses, the leader first, and works out each
// one's backlog behind the leader.
func replicationNodes(list []cluster.ReplicationStatus) []ReplicationNode {
	slices.SortFunc(list, func(a, b cluster.ReplicationStatus) int {
		if (a.Role == replication.RoleLeader) != (b.Role == replication.RoleLeader) {
			if a.Role == replication.RoleLeader {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Node, b.Node)
	})
	var leader *cluster.ReplicationStatus
	for i := range list {
		if list[i].Role == replication.RoleLeader && (leader == nil || list[i].Epoch > leader.Epoch) {
			leader = &list[i]
		}
	}
	out := make([]ReplicationNode, 0, len(list))
	for _, s := range list {
		n := ReplicationNode{ReplicationStatus: s}
		// A standby that applied the leader's last transaction is not
		// behind, whatever its byte count says (a replica reopened after a
		// restart reports none until it applies the next entry).
		if leader != nil && s.Role != replication.RoleLeader && s.Seq < leader.Seq && leader.Bytes > s.Bytes {
			n.BytesBehind = leader.Bytes - s.Bytes
		}
		out = append(out, n)
	}
	return out
}

func isNotFound(err error) bool {
	return errors.Is(err, control.ErrJobNotFound) || errors.Is(err, control.ErrVersionNotFound)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var _ = fmt.Errorf
