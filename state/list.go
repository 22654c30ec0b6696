package state

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// ListEntries returns the current entry of every live key of kv matching
// filter (NATS wildcards; ">" for all).
//
// nats.go's watcher-based listings (ListKeys, Keys, a Watch's initial
// values) are not safe on a bucket whose keys are rewritten all the time,
// like presence heartbeats: the watcher counts messages, not keys, against
// the number pending when it started, so a key rewritten during the pass
// is delivered twice and ends the count early, and a key that comes later
// in the stream is never listed. A scheduler once saw a live node missing
// that way. They also end quietly when ctx ends, a truncated list looking
// complete.
//
// Here the keys come from the stream's subject list, a snapshot the server
// takes at once, and each is then read on its own: a key rewritten since
// is read at its latest value, a key deleted since is left out, and any
// other failure fails the listing.
func ListEntries(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, filter string) ([]jetstream.KeyValueEntry, error) {
	prefix := "$KV." + kv.Bucket() + "."
	fail := func(err error) ([]jetstream.KeyValueEntry, error) {
		return nil, fmt.Errorf("list %s %s: %w", kv.Bucket(), filter, err)
	}
	stream, err := js.Stream(ctx, "KV_"+kv.Bucket())
	if err != nil {
		return fail(err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(prefix+filter))
	if err != nil {
		return fail(err)
	}
	out := make([]jetstream.KeyValueEntry, 0, len(info.State.Subjects))
	for subject := range info.State.Subjects {
		e, err := kv.Get(ctx, strings.TrimPrefix(subject, prefix))
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue // deleted, purged or expired: not live
		}
		if err != nil {
			return fail(err)
		}
		out = append(out, e)
	}
	return out, nil
}
