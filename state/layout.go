package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Layout names every bucket and subject a platform uses. All names live here
// so that the library, the agent and operators' tooling agree on them.
//
// Platform, app and node names are validated by ValidateName, so they never
// hold '.', wildcards or whitespace and can be used as subject tokens and in
// bucket names as they are.
type Layout struct{ Platform string }

// Buckets.
func (l Layout) NodesBucket() string        { return "gcl_" + l.Platform + "_nodes" }
func (l Layout) LeasesBucket() string       { return "gcl_" + l.Platform + "_leases" }
func (l Layout) ServicesBucket() string     { return "gcl_" + l.Platform + "_services" }
func (l Layout) KVBucket(app string) string { return "gcl_" + l.Platform + "_kv_" + app }
func (l Layout) LocksBucket(app string) string {
	return "gcl_" + l.Platform + "_locks_" + app
}

// AssignmentsBucket holds decisions that outlive any process: ring
// partition owners (RingKey). Entries have no TTL.
func (l Layout) AssignmentsBucket() string { return "gcl_" + l.Platform + "_assignments" }

// EventsStream is the activity feed: elections, ring moves, hook failures.
func (l Layout) EventsStream() string { return "gcl_" + l.Platform + "_events" }

// LeaseKey is the key of a lease in the leases bucket: one per singleton app
// ("<app>.leader") and one per pool slot ("<app>.slot.<n>").
func (l Layout) LeaseKey(app string) string { return app + ".leader" }
func (l Layout) SlotKey(app string, slot int) string {
	return fmt.Sprintf("%s.slot.%d", app, slot)
}

// RingKey is a ring app's assignment in the assignments bucket.
func (l Layout) RingKey(app string) string { return "ring." + app }

// RingMemberKey is a ring member's record in the nodes bucket: what it has
// seen and holds. It is TTL'd like presence, so a crashed member's record
// goes with it. RingMembers matches every member record of app.
func (l Layout) RingMemberKey(app, node string) string { return "ring." + app + "." + node }
func (l Layout) RingMembers(app string) string         { return "ring." + app + ".*" }

// RingCoordinatorKey is the lease of the member that decides a ring's
// assignment, in the leases bucket.
func (l Layout) RingCoordinatorKey(app string) string { return app + ".ring" }

// NodeKey is a node's presence record in the nodes bucket.
func (l Layout) NodeKey(node string) string { return "node." + node }

// ActiveKey records that app is active on node (nodes bucket); AwayFromApp
// watches it.
func (l Layout) ActiveKey(app, node string) string { return "active." + app + "." + node }

// ServiceKey is the key of one service instance record.
func (l Layout) ServiceKey(app, service, node string) string {
	return app + "." + service + "." + node
}

// Subjects.

// NodeProbeSubject is answered by a running platform for its node. A request
// that gets "no responders" proves the node's process (or its connection) is
// gone: the server drops a connection's subscriptions the moment it closes.
func (l Layout) NodeProbeSubject(node string) string {
	return "gcl." + l.Platform + ".node." + node + ".probe"
}

// Call subjects: a request names the method in a header. The leader subject
// is subscribed only by the active instance of a singleton; the any subject,
// in a queue group, by every active instance; the node subject by one node.
func (l Layout) CallLeaderSubject(app string) string {
	return "gcl." + l.Platform + ".call." + app + ".leader"
}
func (l Layout) CallAnySubject(app string) string {
	return "gcl." + l.Platform + ".call." + app + ".any"
}
func (l Layout) CallNodeSubject(app, node string) string {
	return "gcl." + l.Platform + ".call." + app + ".node." + node
}

// RingRebalanceSubject is answered by a ring's coordinator: a request makes
// it check its members now and rewrite the assignment.
func (l Layout) RingRebalanceSubject(app string) string {
	return "gcl." + l.Platform + ".ring." + app + ".rebalance"
}

// EventSubject is where an event of kind about app is published; the
// events stream captures EventSubjects.
func (l Layout) EventSubject(app, kind string) string {
	return "gcl." + l.Platform + ".events." + app + "." + kind
}
func (l Layout) EventSubjects() string { return "gcl." + l.Platform + ".events.>" }

// MarkerTTL is how long expiry and delete markers stay in TTL'd buckets:
// long enough for a watcher that reconnects to still see them.
const MarkerTTL = 5 * time.Second

// TTLBucketConfig is a KV bucket whose entries carry per-message TTLs and
// whose expiries leave markers that watchers are told about.
func TTLBucketConfig(bucket string, replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         bucket,
		History:        1,
		Replicas:       replicas,
		Storage:        jetstream.FileStorage,
		LimitMarkerTTL: MarkerTTL,
	}
}

// PutCAS writes value to key only if the key's last revision is rev (0: the
// key has no message), with a per-message TTL. It returns the new revision.
// jetstream.KeyValue.Update cannot carry a TTL, so we publish to the
// bucket's subject ourselves with the same expectation header it would use.
func PutCAS(ctx context.Context, js jetstream.JetStream, bucket, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(rev)}
	if ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(ServerTTL(ttl)))
	}
	ack, err := js.Publish(ctx, "$KV."+bucket+"."+key, value, opts...)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// ServerTTL rounds a TTL up to the whole seconds the server counts in (its
// minimum is 1s). Rounding up is the safe direction: the server must never
// expire an entry before its holder's own deadline.
func ServerTTL(ttl time.Duration) time.Duration {
	s := (ttl + time.Second - 1) / time.Second
	if s < 1 {
		s = 1
	}
	return s * time.Second
}

// IsCASFailure reports whether err is a failed compare-and-set: someone else
// wrote the key since we read it.
func IsCASFailure(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return errors.Is(err, jetstream.ErrKeyExists)
}

// PutTTL writes value to key unconditionally, with a per-message TTL.
func PutTTL(ctx context.Context, js jetstream.JetStream, bucket, key string, value []byte, ttl time.Duration) error {
	_, err := js.Publish(ctx, "$KV."+bucket+"."+key, value, jetstream.WithMsgTTL(ServerTTL(ttl)))
	return err
}

// SQLite replication (package replication): per app, a log stream, a
// snapshot object store and a request subject; per platform, a bucket of
// TTL'd status records, one per app and node.
func (l Layout) WALStream(app string) string            { return "gcl_" + l.Platform + "_wal_" + app }
func (l Layout) WALSubject(app string) string           { return "gcl." + l.Platform + ".wal." + app }
func (l Layout) SnapshotBucket(app string) string       { return "gcl_" + l.Platform + "_snap_" + app }
func (l Layout) ReplicationSubject(app string) string   { return "gcl." + l.Platform + ".repl." + app }
func (l Layout) ReplicationBucket() string              { return "gcl_" + l.Platform + "_replication" }
func (l Layout) ReplicationKey(app, node string) string { return app + "." + node }
