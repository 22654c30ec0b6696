package state

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureLeaseKV opens or creates a bucket for fenced keys: leases, slots
// and anything else that is taken over by compare-and-set once its holder's
// TTL has run out.
//
// Such a bucket allows per-message TTLs but must not have subject delete
// markers. The server places a marker as a roll-up of the whole subject and
// decides to place it before it takes the stream lock to store it; a
// takeover write that lands in between (and takeovers happen right when
// the old record expires) is erased by the marker, after its writer was
// told it won. A second candidate then finds the key free and also wins:
// two leaders. Without markers an expired record is removed under the
// stream lock like any other removal, so a compare-and-set either sees the
// record or sees the key empty, never both. Candidates do not need the
// marker: they take over on their own clocks.
func EnsureLeaseKV(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := retryUnanswered(ctx, func(actx context.Context) error {
		var err error
		kv, err = openOrCreate(actx, js, jetstream.KeyValueConfig{
			Bucket: bucket, History: 1, Replicas: replicas, Storage: jetstream.FileStorage,
		})
		if err != nil {
			return err
		}
		// KeyValueConfig can only allow TTLs together with markers, so the
		// bucket is created plain and TTLs are switched on here. A crash
		// in between leaves a plain bucket, which the next start finishes.
		stream, err := js.Stream(actx, "KV_"+bucket)
		if err != nil {
			return err
		}
		cfg := stream.CachedInfo().Config
		if cfg.AllowMsgTTL && cfg.SubjectDeleteMarkerTTL == 0 {
			return nil
		}
		cfg.AllowMsgTTL, cfg.SubjectDeleteMarkerTTL = true, 0
		_, err = js.UpdateStream(actx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", bucket, err)
	}
	return kv, nil
}
